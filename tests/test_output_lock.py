"""One run per output folder: a second is refused in one line naming the first; a dead holder leaves no lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgen_ray.architectures.gate import FittedGate
from hgen_ray.architectures.h_cnn.network import BaseCNN
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig
from hgen_ray.hdnn import save_hdnn
from hgen_ray.output_lock import HOLDER_FILE, holding

REPO = Path(__file__).resolve().parents[1]
HOLD = "import sys, time; from pathlib import Path; from hgen_ray.output_lock import holding\n" \
       "with holding(Path(sys.argv[1]), 'search'):\n    print('held', flush=True); time.sleep(120)\n"


def _held_elsewhere(folder: Path) -> subprocess.Popen[str]:
    """Another process holding ``folder``, as a running search would."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_naming_the_holder_and_the_folder_is_free_once_it_dies(tmp_path: Path) -> None:
    holder = _held_elsewhere(tmp_path)
    try:
        with pytest.raises(ConfigError, match=rf"^{tmp_path}: in use by `hgen-ray search` \(pid {holder.pid} on "), \
                holding(tmp_path, "search --resume"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean exit: the kernel releases the lock
        holder.wait()
    with holding(tmp_path, "export"):
        assert "`hgen-ray export`" in (tmp_path / HOLDER_FILE).read_text()
    assert not (tmp_path / HOLDER_FILE).exists()


@pytest.mark.parametrize("command", [["search", "--resume"], ["export"]])
def test_the_cli_refuses_a_folder_another_run_holds_in_one_line_with_exit_2(tmp_path: Path,
                                                                          command: list[str]) -> None:
    held = tmp_path / "run"
    held.mkdir()
    holder = _held_elsewhere(held)
    try:
        if command == ["export"]:  # export writes into --out; the H-DNN it reads may be anywhere
            saved = save_hdnn(tmp_path / "hdnn", BaseCNN((4, 8), 16).eval(), FittedGate(), Candidate(),
                              ExperimentConfig(), (1, 28, 28))
            arguments = ["export", str(saved), "--out", str(held)]
        else:
            arguments = [*command, str(held)]
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "hgen_ray.cli", *arguments], capture_output=True, text=True,
                                timeout=120, cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert f"in use by `hgen-ray search` (pid {holder.pid}" in result.stderr and time.perf_counter() - started < 100

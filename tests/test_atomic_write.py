"""Atomic writes: old or new, never half; the umask's mode, not mkstemp's 0600; the temporary file never left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hgen_ray.atomic_write import replaced_atomically, write_text_atomic


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_written_file_has_the_mode_a_plain_open_would_give(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "trials.csv", "a,b\n")
        (tmp_path / "plain.csv").write_text("a,b\n")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "trials.csv").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.csv").stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), replaced_atomically(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.md"]

"""Tune's saved state: a whole copy is kept aside, never replaced by a damaged one, and put back on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hgen_ray.config import ConfigError
from hgen_ray.search.tune_state import WHOLE_COPY_DIR, keep_whole_copy, recorded_trial_ids

STATE = "experiment_state-2026-12-04_10-00-00.json"
SEARCHER = "searcher-state-2026-12-04_10-00-00.pkl"


def _save(tune_dir: Path, trial_ids: list[str], searcher: bytes) -> None:
    """What Tune writes: trial_data entries are [trial JSON, runtime metadata JSON]."""
    entries = [[json.dumps({"trial_id": t}), "{}"] for t in trial_ids]
    (tune_dir / STATE).write_text(json.dumps({"trial_data": entries, "runner_data": {}}))
    (tune_dir / SEARCHER).write_bytes(searcher)


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def test_a_whole_state_is_copied_and_a_damaged_one_never_replaces_the_copy(tmp_path: Path) -> None:
    _save(tmp_path, ["a", "b"], b"searcher after b")
    assert keep_whole_copy(tmp_path)
    _save(tmp_path, ["a", "b", "c"], b"searcher after c")
    _cut_short(tmp_path / STATE)  # the disk filled while Tune saved c
    assert not keep_whole_copy(tmp_path)
    copy = tmp_path / WHOLE_COPY_DIR
    assert json.loads((copy / STATE).read_text())["trial_data"][1][0] == json.dumps({"trial_id": "b"})
    assert (copy / SEARCHER).read_bytes() == b"searcher after b"  # the searcher matches the trials it saw


def test_resume_puts_the_whole_copy_back_over_a_damaged_state(tmp_path: Path) -> None:
    _save(tmp_path, ["a", "b"], b"searcher after b")
    keep_whole_copy(tmp_path)
    _save(tmp_path, ["a", "b", "c"], b"searcher after c")
    _cut_short(tmp_path / STATE)
    assert recorded_trial_ids(tmp_path) == {"a", "b"}
    assert (tmp_path / SEARCHER).read_bytes() == b"searcher after b"
    assert (tmp_path / (STATE + ".damaged")).stat().st_size == 20  # kept, not thrown away
    assert recorded_trial_ids(tmp_path) == {"a", "b"}  # whole now: read as it is


def test_a_damaged_state_without_a_whole_copy_is_refused_in_one_line(tmp_path: Path) -> None:
    _save(tmp_path, ["a"], b"searcher")
    _cut_short(tmp_path / STATE)
    with pytest.raises(ConfigError, match=f"Tune's state {STATE} is damaged .* and has no whole copy"):
        recorded_trial_ids(tmp_path)
    assert (tmp_path / STATE).stat().st_size == 20  # left as it was
    with pytest.raises(ConfigError, match="no Tune experiment state"):
        recorded_trial_ids(tmp_path / "empty")

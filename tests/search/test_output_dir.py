"""A resume unpickles Tune's state: it is refused where someone else could have written that state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hgen_ray.config import ConfigError
from hgen_ray.search.output_dir import SEARCH_CONFIG_FILE, SEARCH_FORMAT, SEARCH_FORMAT_FILE, TUNE_DIR
from hgen_ray.search.output_dir import prepare_output_dir


@pytest.fixture()
def searched(tmp_path: Path) -> Path:
    """A search folder as a resume finds it: config, format mark and Tune's folder with a pickle."""
    out = tmp_path / "run"
    (out / TUNE_DIR).mkdir(parents=True)
    (out / SEARCH_CONFIG_FILE).write_text("model: {name: h_cnn}\n")
    (out / SEARCH_FORMAT_FILE).write_text(json.dumps(SEARCH_FORMAT))
    (out / TUNE_DIR / "tuner.pkl").write_bytes(b"state")
    (out / TUNE_DIR / "experiment_state-2026-12-04_10-00-00.json").write_text(json.dumps({"trial_data": []}))
    for path in (out, out / TUNE_DIR):
        path.chmod(0o755)
    for state in (out / TUNE_DIR).iterdir():
        state.chmod(0o644)
    return out


def test_a_search_only_its_owner_could_write_resumes(searched: Path) -> None:
    assert prepare_output_dir(searched, resume=True) == searched.resolve()


@pytest.mark.parametrize("spoil", ["group_writable_pickle", "world_writable_folder", "someone_elses_pickle"])
def test_state_someone_else_could_write_is_refused_in_one_line_unless_trusted(searched: Path, spoil: str) -> None:
    pickle = searched / TUNE_DIR / "tuner.pkl"
    if spoil == "group_writable_pickle":
        pickle.chmod(0o664)
    elif spoil == "world_writable_folder":
        (searched / TUNE_DIR).chmod(0o757)
    else:
        os.chown(pickle, os.getuid() + 1234, -1)  # the tests run as root here, which may give a file away
    with pytest.raises(ConfigError, match=r"^--resume .*: .*(writable|belongs to user id).*, or pass --trust$"):
        prepare_output_dir(searched, resume=True)
    assert prepare_output_dir(searched, resume=True, trust=True) == searched.resolve()


def test_state_in_object_storage_is_resumed_only_when_trusted(searched: Path) -> None:
    (searched / SEARCH_CONFIG_FILE).write_text("search: {storage_path: 's3://bucket/hgen'}\n")
    (searched / SEARCH_FORMAT_FILE).write_text(json.dumps({**SEARCH_FORMAT,
                                                           "tune_location": "s3://bucket/hgen/run-0a1b2c3d"}))
    with pytest.raises(ConfigError, match=r"object storage \(s3://bucket/hgen/run-0a1b2c3d\).*pass --trust"):
        prepare_output_dir(searched, resume=True)
    assert prepare_output_dir(searched, resume=True, trust=True) == searched.resolve()


def test_shared_storage_state_is_found_where_it_was_recorded_even_after_out_moved(searched: Path,
                                                                                  tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "run-0a1b2c3d"
    (searched / TUNE_DIR).rename(shared.parent.mkdir() or shared)
    (searched / SEARCH_CONFIG_FILE).write_text(f"search: {{storage_path: '{shared.parent}'}}\n")
    (searched / SEARCH_FORMAT_FILE).write_text(json.dumps({**SEARCH_FORMAT, "tune_location": str(shared)}))
    moved = searched.rename(tmp_path / "moved")
    assert prepare_output_dir(moved, resume=True) == moved.resolve()
    (moved / SEARCH_FORMAT_FILE).write_text(json.dumps(SEARCH_FORMAT))  # without the record: computed from out
    with pytest.raises(ConfigError, match="no search to resume there"):
        prepare_output_dir(moved, resume=True)

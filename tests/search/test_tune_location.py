"""Where Tune's state goes: DIR/tune by default, a folder of its own under search.storage_path otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from hgen_ray.config import ConfigError
from hgen_ray.search.tune_location import check_storage_path, local_tune_dir, tune_location, tune_run_place


def test_without_storage_the_state_is_in_the_output_folder() -> None:
    assert tune_location(Path("/runs/q1"), None) == "/runs/q1/tune"


def test_two_searches_of_the_same_name_get_their_own_folder_under_one_storage() -> None:
    first = tune_location(Path("/home/a/runs/q1"), "s3://bucket/hgen/")
    second = tune_location(Path("/home/b/runs/q1"), "s3://bucket/hgen")
    assert first.startswith("s3://bucket/hgen/q1-") and second.startswith("s3://bucket/hgen/q1-")
    assert first != second and first == tune_location(Path("/home/a/runs/q1"), "s3://bucket/hgen")
    assert tune_run_place(first) == ("s3://bucket/hgen", first.rsplit("/", 1)[1])


def test_only_a_file_system_location_is_a_local_folder() -> None:
    assert local_tune_dir("/mnt/nfs/hgen/q1-0a1b2c3d") == Path("/mnt/nfs/hgen/q1-0a1b2c3d")
    assert local_tune_dir("gs://bucket/q1-0a1b2c3d") is None


@pytest.mark.parametrize("storage_path", [None, "/mnt/nfs/hgen", "s3://bucket/prefix"])
def test_absolute_folders_and_uris_are_accepted(storage_path: str | None) -> None:
    check_storage_path(storage_path)


def test_a_relative_storage_folder_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^search.storage_path: 'runs/shared' is relative.*allowed: an absolute"):
        check_storage_path("runs/shared")

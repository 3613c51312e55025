"""A search's output dir: checked before anything is written, and made ready for a resume."""

from __future__ import annotations

import csv
import json
import logging
import os
import stat
from pathlib import Path

import yaml

from hgen_ray.config import ConfigError
from hgen_ray.report import write_csv_atomic
from hgen_ray.search.tune_location import TUNE_DIR, local_tune_dir, tune_location
from hgen_ray.search.tune_state import WHOLE_COPY_DIR, recorded_trial_ids

__all__ = ["SEARCH_CONFIG_FILE", "SEARCH_FORMAT", "SEARCH_FORMAT_FILE", "TUNE_DIR", "UNRECORDED_TRIALS_FILE",
           "check_only_we_could_write", "create_output_dir", "keep_unrecorded_trials", "prepare_output_dir"]

log = logging.getLogger(__name__)
SEARCH_CONFIG_FILE = "search.yaml"
# Marks a search that scores on validation and reports on test; one made before has none and is not resumed.
SEARCH_FORMAT_FILE = "search-format.json"
# Format 3: the space has a gate step and the human step proposes a share d; the controller's saved state differs.
SEARCH_FORMAT = {"format": 3, "scored_on": "validation", "reported_on": "test"}
UNRECORDED_TRIALS_FILE = "trials-unrecorded.csv"  # see keep_unrecorded_trials


def keep_unrecorded_trials(out: Path, recorded: set[str]) -> None:
    """Move aside the rows of finished trials that Tune's state missed, before the resume rewrites trials.csv.

    A trial that finished just before the disk filled is in trials.csv (see TrialsTable) but can be
    missing from Tune's state, whose save needed the disk; the resume then runs a new trial in its
    place. Its row is the only record of its results in ``out``, so it is kept in UNRECORDED_TRIALS_FILE.
    """
    table = out / "trials.csv"
    if not table.is_file():
        return
    with open(table, newline="", encoding="utf-8") as handle:
        unrecorded = [row for row in csv.DictReader(handle) if row["trial_id"] not in recorded]
    if not unrecorded:
        return
    kept = out / UNRECORDED_TRIALS_FILE
    if kept.is_file():  # an earlier resume kept some already
        with open(kept, newline="", encoding="utf-8") as handle:
            earlier = list(csv.DictReader(handle))
        kept_ids = {row["trial_id"] for row in earlier}
        unrecorded = earlier + [row for row in unrecorded if row["trial_id"] not in kept_ids]
    write_csv_atomic(kept, unrecorded)
    log.warning("%d finished trial(s) are missing from Tune's saved state (it could not be written); their rows are "
                "kept in %s and new trials take their place", len(unrecorded), kept)


def prepare_output_dir(out: Path, resume: bool, trust: bool = False) -> Path:
    """Check the output dir before anything is written.

    Raises:
        ConfigError: Unwritable, or (without resume) it already holds a search, or (with resume) it holds none,
            or (with resume, unless ``trust``) someone else could have changed the state it would unpickle.
    """
    out = out.resolve()
    if resume:
        tune_dir = local_tune_dir(saved_tune_location(out)) if (out / SEARCH_CONFIG_FILE).is_file() else None
        if not (out / SEARCH_CONFIG_FILE).is_file() or (tune_dir is not None and not tune_dir.is_dir()):
            raise ConfigError(f"--resume {out}: no search to resume there (no {SEARCH_CONFIG_FILE} and Tune's state "
                              f"{tune_dir or TUNE_DIR + '/'})")
        if not (out / SEARCH_FORMAT_FILE).is_file():
            raise ConfigError(f"--resume {out}: this search was made before hgen-ray scored on validation and "
                              "reported on test; its trials cannot be mixed with new ones: start a new search")
        if _saved_format(out) != SEARCH_FORMAT["format"]:
            raise ConfigError(f"--resume {out}: this search was made by an earlier hgen-ray whose search space had no "
                              "gate step; its controller cannot go on in today's space: start a new search")
        if not trust:
            check_only_we_could_write(out, tune_dir)
        if tune_dir is not None:
            keep_unrecorded_trials(out, recorded_trial_ids(tune_dir))
        return out
    if (out / SEARCH_CONFIG_FILE).exists():
        raise ConfigError(f"--out {out}: already holds a search; use --resume {out} or choose another --out")
    return create_output_dir(out)


def saved_tune_location(out: Path) -> str:
    """Where the search in ``out`` keeps Tune's state: ``out/tune`` (wherever ``out`` now is), or the place under
    ``search.storage_path`` recorded when it began (so a moved or remounted ``out`` still finds it)."""
    try:
        recorded = json.loads((out / SEARCH_FORMAT_FILE).read_text()).get("tune_location")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded:
        return str(recorded)
    document = yaml.safe_load((out / SEARCH_CONFIG_FILE).read_text(encoding="utf-8")) or {}
    return tune_location(out, (document.get("search") or {}).get("storage_path"))


def check_only_we_could_write(out: Path, tune: Path | None) -> None:
    """Refuse to resume from state another user could have written: a resume unpickles Tune's state (the
    searcher, the trials), and unpickling runs whatever code the pickle names.

    Checks the folder, Tune's state folder ``tune`` and everything directly in it (Tune's pickles live there), and
    the last whole copy of that state (a resume may put it back). State in object storage (``tune`` None) is
    guarded by the store's own permissions, which this cannot read: it is refused.

    Raises:
        ConfigError: One of them is not the current user's, or is group- or world-writable.
    """
    if tune is None:
        raise ConfigError(f"--resume {out}: Tune's state is in object storage ({saved_tune_location(out)}), where who "
                          "could write it cannot be checked; resuming unpickles it, which can run code: pass --trust "
                          "if only you can write there")
    copy = tune / WHOLE_COPY_DIR
    for path in [out, tune, *sorted(tune.iterdir()), *(sorted(copy.iterdir()) if copy.is_dir() else [])]:
        info = path.lstat()
        shown = path.relative_to(out.parent) if path.is_relative_to(out.parent) else path
        if info.st_uid != os.getuid():
            raise ConfigError(f"--resume {out}: {shown} belongs to user id {info.st_uid}, not you; resuming unpickles "
                              "Tune's state, which can run code: resume only your own searches, or pass --trust")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"--resume {out}: {shown} is group- or world-writable (mode {stat.S_IMODE(info.st_mode):o}); "
                              "resuming unpickles Tune's state, which can run code: chmod go-w it, or pass --trust")


def _saved_format(out: Path) -> int | None:
    try:
        return int(json.loads((out / SEARCH_FORMAT_FILE).read_text())["format"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def create_output_dir(out: Path) -> Path:
    """Create ``out`` (and its parents), or say in one line why it cannot be written.

    Raises:
        ConfigError: It cannot be created or written.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {out}: cannot create it ({error.strerror})") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: not writable")
    return out

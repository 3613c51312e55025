"""A search's output dir: checked before anything is written, and made ready for a resume."""

from __future__ import annotations

import csv
import json
import logging
import os
import stat
from pathlib import Path

from hgen_ray.config import ConfigError
from hgen_ray.report import write_csv_atomic
from hgen_ray.search.tune_state import WHOLE_COPY_DIR, recorded_trial_ids

__all__ = ["SEARCH_CONFIG_FILE", "SEARCH_FORMAT", "SEARCH_FORMAT_FILE", "TUNE_DIR", "UNRECORDED_TRIALS_FILE",
           "check_only_we_could_write", "create_output_dir", "keep_unrecorded_trials", "prepare_output_dir"]

log = logging.getLogger(__name__)
SEARCH_CONFIG_FILE = "search.yaml"
# Marks a search that scores on validation and reports on test; one made before has none and is not resumed.
SEARCH_FORMAT_FILE = "search-format.json"
# Format 3: the space has a gate step and the human step proposes a share d; the controller's saved state differs.
SEARCH_FORMAT = {"format": 3, "scored_on": "validation", "reported_on": "test"}
TUNE_DIR = "tune"
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
        if not (out / SEARCH_CONFIG_FILE).is_file() or not (out / TUNE_DIR).is_dir():
            raise ConfigError(f"--resume {out}: no search to resume there (no {SEARCH_CONFIG_FILE} and {TUNE_DIR}/)")
        if not (out / SEARCH_FORMAT_FILE).is_file():
            raise ConfigError(f"--resume {out}: this search was made before hgen-ray scored on validation and "
                              "reported on test; its trials cannot be mixed with new ones: start a new search")
        if _saved_format(out) != SEARCH_FORMAT["format"]:
            raise ConfigError(f"--resume {out}: this search was made by an earlier hgen-ray whose search space had no "
                              "gate step; its controller cannot go on in today's space: start a new search")
        if not trust:
            check_only_we_could_write(out)
        keep_unrecorded_trials(out, recorded_trial_ids(out / TUNE_DIR))
        return out
    if (out / SEARCH_CONFIG_FILE).exists():
        raise ConfigError(f"--out {out}: already holds a search; use --resume {out} or choose another --out")
    return create_output_dir(out)


def check_only_we_could_write(out: Path) -> None:
    """Refuse to resume from state another user could have written: a resume unpickles Tune's state (the
    searcher, the trials), and unpickling runs whatever code the pickle names.

    Checks the folder, its ``tune/`` folder and everything directly in it (Tune's pickles live there), and the
    last whole copy of that state (a resume may put it back).

    Raises:
        ConfigError: One of them is not the current user's, or is group- or world-writable.
    """
    tune, copy = out / TUNE_DIR, out / TUNE_DIR / WHOLE_COPY_DIR
    for path in [out, tune, *sorted(tune.iterdir()), *(sorted(copy.iterdir()) if copy.is_dir() else [])]:
        info = path.lstat()
        shown = path.relative_to(out.parent)
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

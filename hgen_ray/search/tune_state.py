"""Tune's saved state in ``DIR/tune``: which trials it recorded, and a last whole copy of it.

Tune rewrites ``experiment_state-<session>.json`` and ``searcher-state-<session>.pkl``
in place. A disk that fills while it writes leaves them cut short, and Tune,
resuming from a damaged state, would log the damage and silently start a new
search. So after every finished trial (before Tune saves again) the whole
state is copied aside, atomically, into ``DIR/tune/.last-whole-state/``; a
resume that finds the newest state damaged puts that copy back, keeps the
damaged file aside, and goes on from there. Trials that finished after the
copy are missing from it; the resume keeps their rows aside and runs new
trials in their place (see ``search._keep_unrecorded_trials``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hgen_ray.config import ConfigError

__all__ = ["KeepWholeState", "recorded_trial_ids"]

log = logging.getLogger(__name__)
WHOLE_COPY_DIR = ".last-whole-state"
_STATE_PATTERNS = ("experiment_state-*.json", "searcher-state-*.pkl", "search_gen_state-*.json")


def _trial_ids(state_file: Path) -> set[str] | None:
    """The trial ids in an experiment state, or None when it is not whole."""
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        return {json.loads(entry[0])["trial_id"] for entry in state["trial_data"]}
    except (OSError, ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return None


def _state_files(folder: Path) -> list[Path]:
    return sorted(p for pattern in _STATE_PATTERNS for p in folder.glob(pattern))


def _newest_state(folder: Path) -> Path | None:
    states = sorted(folder.glob("experiment_state-*.json"))  # Tune resumes from the newest, by name
    return states[-1] if states else None


def keep_whole_copy(tune_dir: Path) -> bool:
    """Copy Tune's state aside if its experiment state is whole; the old copy stays until the new one is complete.

    Returns whether a new copy was made.
    """
    newest = _newest_state(tune_dir)
    if newest is None or _trial_ids(newest) is None:
        return False  # nothing saved yet, or damaged: keep the copy there is
    target = tune_dir / WHOLE_COPY_DIR
    copied = target / newest.name
    if copied.is_file() and copied.stat().st_mtime_ns == newest.stat().st_mtime_ns:
        return False  # Tune has not saved since the last copy (copy2 keeps the time): the copy is current
    staging = Path(tempfile.mkdtemp(dir=tune_dir, prefix=f"{WHOLE_COPY_DIR}."))
    try:
        for source in _state_files(tune_dir):
            shutil.copy2(source, staging / source.name)
        if _trial_ids(staging / newest.name) is None:  # Tune rewrote it while we copied
            return False
        previous = tune_dir / f"{WHOLE_COPY_DIR}.old"
        shutil.rmtree(previous, ignore_errors=True)
        if target.exists():
            os.replace(target, previous)
        os.replace(staging, target)
        shutil.rmtree(previous, ignore_errors=True)
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _put_whole_copy_back(tune_dir: Path, damaged: Path) -> set[str] | None:
    """Restore the whole copy over a damaged state; the trial ids it records, or None without a usable copy."""
    copy = tune_dir / WHOLE_COPY_DIR
    if not copy.is_dir():  # stopped between moving the old copy away and the new one in
        copy = tune_dir / f"{WHOLE_COPY_DIR}.old"
    ids = _trial_ids(copy / damaged.name)
    if ids is None:
        return None
    os.replace(damaged, damaged.with_name(damaged.name + ".damaged"))
    for source in _state_files(copy):
        shutil.copy2(source, tune_dir / source.name)
    log.warning("Tune's state %s was cut short (a disk that filled while it was written); resuming from its last "
                "whole copy, which records %d trial(s); the damaged file is kept as %s.damaged", damaged.name,
                len(ids), damaged.name)
    return ids


def recorded_trial_ids(tune_dir: Path) -> set[str]:
    """The trials Tune's newest saved state knows, the ones a resume will keep.

    A damaged newest state is replaced by its last whole copy first.

    Raises:
        ConfigError: There is no state, or it is damaged and there is no whole copy of it.
    """
    newest = _newest_state(tune_dir)
    if newest is None:
        raise ConfigError(f"--resume {tune_dir.parent}: no Tune experiment state in {tune_dir}")
    ids = _trial_ids(newest)
    if ids is None:
        ids = _put_whole_copy_back(tune_dir, newest)
    if ids is None:
        raise ConfigError(f"--resume {tune_dir.parent}: Tune's state {newest.name} is damaged (cut short, as when "
                          "the disk filled while it was written) and has no whole copy; the trials finished before "
                          f"are in {tune_dir.parent / 'trials.csv'}")
    return ids


class KeepWholeState(Callback):
    """After each finished trial, copies Tune's state aside while it is whole (see the module's docstring)."""

    def __init__(self, tune_dir: Path) -> None:
        self.tune_dir = tune_dir

    def _keep(self) -> None:
        try:
            keep_whole_copy(self.tune_dir)
        except OSError as error:  # a full disk: the old copy stays whole, and the output guard stops the search
            log.warning("could not copy Tune's state aside (%s); the previous copy stays", error.strerror or error)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._keep()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._keep()

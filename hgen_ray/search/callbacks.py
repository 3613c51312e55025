"""Tune callbacks of a search: progress lines, a guard on the output dir, and trials.csv kept current."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune import Callback, TuneError
from ray.tune.experiment import Trial

from hgen_ray.report import last_error_line, trial_rows, write_csv_atomic

__all__ = ["OutputGuard", "Progress", "TrialsTable"]

log = logging.getLogger(__name__)


class Progress(Callback):
    """One line per finished trial: how many are done and the best reward so far."""

    def __init__(self, planned: int) -> None:
        self.planned = planned
        self.done = 0
        self.best = float("-inf")

    def _line(self, trial: Any, outcome: str) -> None:
        self.done += 1
        log.info("trial %d/%d %s %s (best reward so far %.4f)", self.done, self.planned, trial.trial_id, outcome,
                 self.best)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        reward = (trial.last_result or {}).get("reward")
        if reward is not None:
            self.best = max(self.best, float(reward))
        feasible = "feasible" if (trial.last_result or {}).get("feasible") else "infeasible"
        self._line(trial, f"reward {reward:.4f}, {feasible}" if reward is not None else "no result")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, "FAILED (scored as infeasible)")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = trial.get_error()  # Tune hands recover callbacks no exception; it keeps it in the trial's error file
        reason = last_error_line(error) if error else "no reason given"
        log.info("trial %s failed (%s); running it again (retry %d of %d)", trial.trial_id, reason,
                 trial.num_failures, trial.max_failures)


class OutputGuard(Callback):
    """Ends the search as soon as its output dir cannot be written (a full disk, read-only, permissions).

    Tune takes a trial that could not save its checkpoint for a failed trial and would fail every
    later one the same way. So after each trial the guard writes and removes a probe file; if that
    fails, its OSError ends the run. Everything written so far stays whole, and
    ``hgen-ray search --resume`` continues once there is room, as after a killed driver.
    """

    PROBE_BYTES = 1 << 20  # a write of a real size: a full disk may still take a few bytes

    def __init__(self, out: Path) -> None:
        self.out = out

    def _probe(self) -> None:
        probe = self.out / ".write-probe"
        try:
            with open(probe, "wb") as handle:
                handle.write(bytes(self.PROBE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())  # tmpfs and some network filesystems report ENOSPC only here
        finally:
            probe.unlink(missing_ok=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._probe()


class TrialsTable(Callback):
    """Rewrites trials.csv, atomically, each time a trial finishes.

    A search that dies (a full disk, a killed driver) then still leaves a whole, readable table of
    every trial it finished. The final report writes the same table once more, from Tune's results.
    """

    def __init__(self, out: Path, failed_reward: float) -> None:
        self.out = out
        self.failed_reward = failed_reward

    def _write(self, trials: list, trial: Any, failed: bool) -> None:
        done = {t.trial_id: t.status == Trial.ERROR for t in trials if t.status in (Trial.TERMINATED, Trial.ERROR)}
        done[trial.trial_id] = failed  # Tune calls back before it sets the trial's final status
        results = [tune.Result(metrics={**(t.last_result or {}), "config": t.config},
                               checkpoint=None if done[t.trial_id] else t.checkpoint,
                               error=(t.get_error() or TuneError("failed")) if done[t.trial_id] else None,
                               path=t.path)
                   for t in trials if t.trial_id in done]
        write_csv_atomic(self.out / "trials.csv", trial_rows(results, self.failed_reward))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trials, trial, failed=True)

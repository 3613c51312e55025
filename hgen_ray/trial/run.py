"""The Ray Tune trainable: one candidate in, its measures and reward out.

Each trial evaluates one candidate with the core evaluation. It reports DESIGN.md's
measures plus ``reward``, ``feasible``, ``violation`` and the trial process's peak memory
(``peak_rss_mb``; a reused trial process carries its peak over), and a checkpoint holding the
compressed H-DNN, so that the search can keep the best one without evaluating it
again. An exception (an NNI speedup error, OOM) or a lost process or node makes Tune run
the trial again ``search.trial_retries`` times; if it fails each time, Tune marks it ERROR,
the searcher scores it as infeasible and the search goes on.

The trial gets its :class:`TrialContext` through a :class:`ContextHandle`. Tune's
``with_parameters`` fetches a trainable's arguments from the object store again for
every trial, and the context's tensors (the fine-tuning and validation images) are
copied out on each fetch: 0.2-0.6 s a trial for the quickstart's data, measured
here. A reused trial process now fetches it once and keeps it.
"""

from __future__ import annotations

import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from hgen_ray.config import ExperimentConfig, config_to_candidate
from hgen_ray.hdnn import save_hdnn
from hgen_ray.human import HumanPool
from hgen_ray.metric import infeasible_reason, score
from hgen_ray.trial.evaluation import evaluate_candidate

__all__ = ["ContextHandle", "TrialContext", "run_trial"]


@dataclass
class TrialContext:
    """What every trial shares, shipped once through Ray's object store."""

    experiment: ExperimentConfig  # paths already absolute: trials run in their own directories
    data: Any  # the architecture's data: train images or canvases cut to the fine-tuning subset, and validation
    pool: HumanPool  # the search's people; actor handles travel with it
    input_shape: tuple[int, ...]  # one sample's, saved with every H-DNN


class ContextHandle:
    """A :class:`TrialContext` put once in Ray's object store, fetched once per process however many trials it runs.

    Call in a driver with Ray up; the handle pickles (it holds an object reference) and keeps the context alive.
    """

    def __init__(self, context: TrialContext) -> None:
        self.ref = ray.put(context)

    def get(self) -> TrialContext:
        """The context; fetched from the object store only the first time this process asks for this one."""
        global _fetched
        key = self.ref.hex()
        if _fetched is None or _fetched[0] != key:
            _fetched = None  # a new search's context replaces the old one, never both in memory
            _fetched = (key, ray.get(self.ref))
        return _fetched[1]


_fetched: tuple[str, TrialContext] | None = None  # this process's copy of the newest context, by object id


def run_trial(config: dict[str, Any], handle: ContextHandle) -> None:
    """Evaluate the candidate in ``config`` with the search's shared context and report to Tune."""
    context = handle.get()
    torch.set_num_threads(max(1, int(context.experiment.search.cpus_per_trial)))
    candidate = config_to_candidate(config)
    evaluation = evaluate_candidate(context.experiment, candidate, data=context.data, pool=context.pool)
    result = score(evaluation.metrics, context.experiment.constraints, context.experiment.reward)
    metrics = {**evaluation.metrics, "reward": result.reward, "feasible": result.feasible,
               "violation": result.violation,
               "infeasible_reason": infeasible_reason(evaluation.metrics, context.experiment.constraints),
               "node_id": ray.get_runtime_context().get_node_id(),
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux reports KiB
    with tempfile.TemporaryDirectory() as folder:
        save_hdnn(Path(folder), evaluation.model, evaluation.gate, evaluation.candidate, context.experiment,
                  context.input_shape)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

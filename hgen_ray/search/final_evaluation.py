"""After a search: the H-DNNs it chose, and the references, measured once on the test split.

A search scores every trial on validation challenge images. Only when it is
over are the test images read, for:

- the validation-best H-DNN (``search.test_evaluation: best``), or it and every
  member of the validation Pareto front (``pareto``, the default), each measured
  from the network its trial saved, not compressed again;
- the references (``original``, ``human_only``), compressed (not at all) and
  fine-tuned the same way as every candidate.

Chosen rows gain ``test/<measure>`` columns; every other row has none, so no
test figure exists for an H-DNN the search did not choose.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hgen_ray.architectures import architecture_for
from hgen_ray.config import ExperimentConfig
from hgen_ray.data.splits import EVALUATED_CATEGORIES
from hgen_ray.hdnn import load_hdnn
from hgen_ray.human import HumanPool
from hgen_ray.metric import infeasible_reason, pareto_front, score
from hgen_ray.report import TEST_PREFIX, best_row
from hgen_ray.trial import evaluate_candidate, load_split_data, measure_network

__all__ = ["REFERENCE_NAMES", "TEST_PREFIX", "chosen_rows", "evaluate_references", "risk_coverage_curves",
           "with_test_columns"]

log = logging.getLogger(__name__)
REFERENCE_NAMES = ("original", "human_only")
_TEST_MEASURES = ("accuracy", "accuracy_clean", "dnn_accuracy", "dnn_latency_ms", "latency_ms",
                  "human_turnaround_s_p95", "human_wait_s_p95", "pool_utilisation", "energy_mj", "energy_source",
                  "storage_mb", "labor_s_per_1k", "deferral_rate", "deferral_precision", "errors_caught", "gate_aurc",
                  "gate_score", "gate_tau", *(f"{measure}/{c}" for c in EVALUATED_CATEGORIES
                                              for measure in ("accuracy", "dnn_accuracy", "errors_caught")))


def chosen_rows(rows: Sequence[Mapping[str, Any]], how: str) -> list[Mapping[str, Any]]:
    """The validation-best finished row, then (``pareto``) the rest of the validation Pareto front."""
    best = best_row(rows)
    if best is None:
        return []
    if how == "best":
        return [best]
    finished = [r for r in rows if r["status"] == "TERMINATED" and "accuracy" in r]
    return [best] + [r for r in pareto_front(finished) if r is not best]


def _scored(config: ExperimentConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
    result = score(metrics, config.constraints, config.reward)
    return {**metrics, "reward": result.reward, "feasible": result.feasible,
            "infeasible_reason": infeasible_reason(metrics, config.constraints)}


def with_test_columns(config: ExperimentConfig, rows: list[dict[str, Any]], pool: HumanPool,
                      data: Any | None = None) -> list[dict[str, Any]]:
    """``rows`` with ``test/`` columns on the chosen ones, each measured from its saved network."""
    chosen = {id(r) for r in chosen_rows(rows, config.search.test_evaluation)}
    if not chosen:
        return rows
    data = load_split_data(config, "test", data)
    for row in rows:
        if id(row) not in chosen:
            continue
        log.info("measuring trial %s on the test split", row["trial_id"])
        hdnn = load_hdnn(row["checkpoint"])
        measured = measure_network(config, hdnn.model, hdnn.gate, hdnn.candidate, split="test", data=data,
                                   pool=pool).metrics
        scored = _scored(config, measured)
        row.update({TEST_PREFIX + k: scored[k] for k in (*_TEST_MEASURES, "reward", "feasible", "infeasible_reason")
                    if k in scored})  # a detector has no per-sample gate quality
    return rows


def evaluate_references(config: ExperimentConfig, data: Any, pool: HumanPool, splits: tuple[str, ...] = ("test",),
                        names: tuple[str, ...] = REFERENCE_NAMES) -> dict[str, dict[str, dict[str, Any]]]:
    """Per split, then per reference: measures, reward and feasibility.

    Each reference is compressed and fine-tuned once, then measured on every split asked for.
    """
    candidates = architecture_for(config).reference_candidates(config)
    loaded = {split: load_split_data(config, split, data) for split in splits}
    references: dict[str, dict[str, dict[str, Any]]] = {split: {} for split in splits}
    for name in names:
        log.info("evaluating the %s reference on %s", name, " and ".join(splits))
        first = evaluate_candidate(config, candidates[name], data=loaded[splits[0]], pool=pool, split=splits[0])
        references[splits[0]][name] = _scored(config, first.metrics)
        for split in splits[1:]:
            measured = measure_network(config, first.model, first.gate, first.candidate, split=split,
                                       data=loaded[split], pool=pool)
            references[split][name] = _scored(config, measured.metrics)
    return references


def risk_coverage_curves(config: ExperimentConfig, rows: list[dict[str, Any]],
                         data: Any | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The best H-DNN's network with every gate score its architecture has, each fitted on validation, on the
    test split's 12 challenges: per score, confidence and correctness ({} for a detector or no finished trial)."""
    best = best_row(rows)
    if best is None:
        return {}
    architecture = architecture_for(config)
    try:
        model = load_hdnn(best["checkpoint"]).model
        return architecture.gate_curves(config, model, load_split_data(config, "test", data),
                                        architecture.usable_scores(config, model))
    except Exception as error:  # a plot is not worth losing the report of a finished search for
        log.warning("no risk-coverage plot: %s", error)
        return {}

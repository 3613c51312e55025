"""The controller learns where the real objective's shape makes it hard: a feasibility cliff and a labour trade-off.

A synthetic H-CNN world, scored by the real reward (:func:`hgen_ray.metric.score`):
compressing a conv costs accuracy (Taylor least), factorising fc1 costs little, int8
costs a little, and every cut makes the network faster; people add accuracy in
proportion to the share they see, more with more people, at labour the limit caps.
Accuracy must stay above A_d = 0.60, 2 points below the untouched network's: cutting
too much falls off the cliff unless people catch it. The same 60 trials, 5 seeds,
hgen against random search, both without the storage projection (no storage limit).
"""

from __future__ import annotations

import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn
from hgen_ray.config import Candidate, Constraints, ModelConfig, RewardConfig, SearchConfig, config_to_candidate
from hgen_ray.controller import HGenSearcher, RandomSearcher, SearchSpace, describe_layers
from hgen_ray.controller.space import kept_fraction
from hgen_ray.metric import score

BUDGET = 60
SEEDS = range(5)
LIMITS = Constraints(accuracy_min=0.60, labor_s_per_1k_max=700.0)
UNTOUCHED_ACCURACY = 0.62
CONV_COST = {"none": 0.0, "l1": 0.12, "l2": 0.12, "fpgm": 0.10, "taylor": 0.06}  # accuracy lost at ratio 1, x r^2
FC_COST = 0.06  # x r^4: fc1's rank is mostly redundant
INT8_COST = 0.002
PERSON_S = 2.5  # seconds per look
UNTOUCHED_LATENCY_MS = 0.4


def _space() -> SearchSpace:
    specs = describe_layers(build_h_cnn(ModelConfig()), COMPRESSIBLE_LAYERS, torch.rand(1, 1, 28, 28))
    return SearchSpace(specs, LIMITS, {"storage_mb": 1.69, "energy_mj": 0.2})


def measures(candidate: Candidate, space: SearchSpace) -> dict[str, float]:
    accuracy, flops = UNTOUCHED_ACCURACY, 0.0
    for spec in space.layers:
        choice = candidate.layers[spec.name]
        cost = CONV_COST[choice.technique] * choice.ratio**2 if spec.kind == "conv" else (
            FC_COST * choice.ratio**4 if choice.technique == "svd" else 0.0)
        accuracy -= cost + (INT8_COST if choice.bits == 8 else 0.0)
        flops += spec.flops * kept_fraction(spec, choice.technique, choice.ratio)
    human, labour = candidate.human, 0.0
    if human.asks_people:
        accuracy += 0.3 * human.tau * (1 - 0.5**human.k)
        labour = PERSON_S * human.k * human.tau * 1000 * (0.8 if human.mechanism == "sequential" else 1.0)
    latency = UNTOUCHED_LATENCY_MS * flops / space.total_flops
    return {"accuracy": accuracy, "dnn_latency_ms": latency, "latency_ms": latency, "energy_mj": 0.1,
            "storage_mb": 1.0, "labor_s_per_1k": labour, "human_turnaround_s_p95": 0.0, "pool_utilisation": 0.1}


def result_of(candidate: Candidate, space: SearchSpace) -> dict[str, float]:
    measured = measures(candidate, space)
    scored = score(measured, LIMITS, RewardConfig())
    return {**measured, "reward": scored.reward, "violation": scored.violation}


def _best(searcher, space: SearchSpace) -> float:  # type: ignore[no-untyped-def]
    best = -np.inf
    for index in range(BUDGET):
        result = result_of(config_to_candidate(searcher.suggest(f"t{index}")), space)
        searcher.on_trial_complete(f"t{index}", result)
        best = max(best, result["reward"])
    return best


def _hgen_best(seed: int) -> float:
    torch.set_num_threads(1)
    space = _space()
    settings = SearchConfig(trials=BUDGET, warmup_trials=8, updates_per_trial=16)
    return _best(HGenSearcher(space, RewardConfig(), settings, seed), space)


def test_hgen_beats_random_on_a_cliff_with_a_labour_trade_off() -> None:
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as workers:
        hgen = list(workers.map(_hgen_best, SEEDS))
    space = _space()
    random = [_best(RandomSearcher(space, seed), space) for seed in SEEDS]
    assert statistics.median(hgen) > statistics.median(random) + 0.01

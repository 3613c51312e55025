"""The controller's own seconds: a fresh searcher fed a search's results, one suggestion per result."""

from __future__ import annotations

import torch

from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn
from hgen_ray.bench.system import controller_seconds
from hgen_ray.config import Constraints, ModelConfig, RewardConfig, SearchConfig
from hgen_ray.controller import HGenSearcher, SearchSpace, describe_layers


def test_the_replayed_controller_suggests_and_learns_once_per_result() -> None:
    specs = describe_layers(build_h_cnn(ModelConfig()), COMPRESSIBLE_LAYERS, torch.rand(1, 1, 28, 28))
    space = SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2}, pool_size=2)
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=8, warmup_trials=2, updates_per_trial=4), 0)
    measures = {"accuracy": 0.6, "dnn_latency_ms": 0.3, "latency_ms": 0.3, "energy_mj": 0.1, "storage_mb": 0.5,
                "labor_s_per_1k": 0.0, "human_turnaround_s_p95": 0.0, "pool_utilisation": 0.0, "violation": 0.0}
    results = [{**measures, "reward": 0.1 * index} for index in range(8)]  # 40 steps: past one batch of 32
    seconds = controller_seconds(searcher, results)
    assert searcher.suggested == 8 and searcher.rewards == [r["reward"] for r in results]
    assert searcher.discrete_agent.updates > 0 and seconds > 0

"""The searcher's learned state survives save/restore and pickling (what --resume relies on)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from hgen_ray.config import Constraints, ModelConfig, RewardConfig, SearchConfig
from hgen_ray.controller import HGenSearcher, SearchSpace, describe_layers
from hgen_ray.controller.state_digest import state_digest
from hgen_ray.metric import failed_reward
from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn


@pytest.fixture(scope="module")
def trained() -> HGenSearcher:
    specs = describe_layers(build_h_cnn(ModelConfig()), COMPRESSIBLE_LAYERS, torch.rand(1, 1, 28, 28))
    space = SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2})
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=40, warmup_trials=5, updates_per_trial=4), 3)
    for index in range(20):
        config = searcher.suggest(f"t{index}")
        searcher.on_trial_complete(f"t{index}", {"reward": config["layers"]["conv2"]["ratio"]})
    searcher.suggest("in-flight")
    return searcher


def _weights(searcher: HGenSearcher) -> list[torch.Tensor]:
    return [p.detach().clone() for p in searcher.discrete_agent.module.parameters()] + [
        p.detach().clone() for p in searcher.continuous_agent.module.parameters()]


def test_save_and_restore_bring_back_weights_buffers_and_the_greedy_policy(trained: HGenSearcher, tmp_path) -> None:
    trained.save(str(tmp_path / "state.pkl"))
    fresh = pickle.loads(pickle.dumps(trained))  # Tune pickles the searcher into tuner.pkl
    fresh.restore(str(tmp_path / "state.pkl"))
    assert all(torch.equal(a, b) for a, b in zip(_weights(trained), _weights(fresh)))
    assert len(fresh.discrete_agent.episodes) >= 20  # every trial, and any duplicate whose reward was reused
    assert fresh.continuous_agent.env_steps == trained.continuous_agent.env_steps == 4 * len(trained.agent_rewards)
    assert fresh.rewards == trained.rewards and "in-flight" in fresh.pending
    assert fresh.greedy_candidate() == trained.greedy_candidate()


def test_learning_continues_after_restore(trained: HGenSearcher, tmp_path) -> None:
    trained.save(str(tmp_path / "state.pkl"))
    fresh = pickle.loads(pickle.dumps(trained))
    fresh.restore(str(tmp_path / "state.pkl"))
    updates = fresh.discrete_agent.updates
    fresh.on_trial_complete("in-flight", {"reward": 0.5})
    assert fresh.discrete_agent.updates == updates + 4
    assert not np.isnan(fresh.rewards[-1])


def test_an_errored_trial_is_scored_as_the_worst_infeasible(trained: HGenSearcher) -> None:
    trained.suggest("crashes")
    trained.on_trial_complete("crashes", None, error=True)
    assert trained.rewards[-1] == failed_reward(RewardConfig())


def test_the_state_digest_survives_save_and_restore_and_tracks_learning(trained: HGenSearcher, tmp_path) -> None:
    trained.save(str(tmp_path / "state.pkl"))
    with open(tmp_path / "state.pkl", "rb") as handle:
        on_disk = state_digest(pickle.load(handle))
    fresh = pickle.loads(pickle.dumps(trained))
    fresh.restore(str(tmp_path / "state.pkl"))
    assert fresh.state_digest() == trained.state_digest() == on_disk  # weights, optimizers, buffers all back
    fresh.suggest("one-more")
    fresh.on_trial_complete("one-more", {"reward": 0.1})
    assert fresh.state_digest() != on_disk  # and the digest sees a single learning step

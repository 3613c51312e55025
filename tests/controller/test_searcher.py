"""hgen's searcher: no candidate measured twice, exploration that ends at its floor, actions never aliased."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn
from hgen_ray.config import Candidate, ConfigError, Constraints, HumanChoice, LayerChoice, ModelConfig, RewardConfig
from hgen_ray.config import SearchConfig, build_dataclass, config_to_candidate
from hgen_ray.controller import HGenSearcher, SearchSpace, describe_layers
from hgen_ray.controller.reward_model import MIN_MEASURED_TO_IMAGINE
from hgen_ray.controller.reward_ranks import centred_ranks


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    specs = describe_layers(build_h_cnn(ModelConfig()), COMPRESSIBLE_LAYERS, torch.rand(1, 1, 28, 28))
    return SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2}, pool_size=2)


def test_a_candidate_already_measured_is_not_run_again_and_its_reward_is_learned(space: SearchSpace) -> None:
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=20, warmup_trials=5), seed=0)
    would_run = copy.deepcopy(searcher).suggest("t0")
    searcher.finished[space.canonical(config_to_candidate(would_run))] = 0.3
    suggested = searcher.suggest("t0")
    assert suggested != would_run and searcher.suggested == 1
    assert searcher.agent_rewards == [0.3] and len(searcher.discrete_agent.episodes) == 1


def test_the_same_network_and_people_are_one_candidate_on_the_grid() -> None:
    whole = Candidate(layers={"conv1": LayerChoice("none", 0.37), "fc1": LayerChoice("svd", 0.0)})
    untouched = Candidate(layers={"conv1": LayerChoice("l1", 0.0), "fc1": LayerChoice("none", 0.8)},
                          human=HumanChoice("majority", 0.0, 2))
    assert SearchSpace.canonical(whole) == SearchSpace.canonical(untouched)  # nothing removed, nobody asked
    near = Candidate(layers={"conv1": LayerChoice("l1", 0.5012)}, human=HumanChoice("sequential", 0.3011, 2))
    same = Candidate(layers={"conv1": LayerChoice("l1", 0.4991)}, human=HumanChoice("sequential", 0.2998, 2))
    assert SearchSpace.canonical(near) == SearchSpace.canonical(same)
    int8 = Candidate(layers={"conv1": LayerChoice("l1", 0.5, bits=8)}, human=HumanChoice("sequential", 0.3, 2))
    assert SearchSpace.canonical(int8) != SearchSpace.canonical(same)


def test_epsilon_is_one_after_the_warm_up_and_falls_to_its_floor_over_half_the_rest(space: SearchSpace) -> None:
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=28, warmup_trials=8, epsilon_floor=0.15), 0)
    seen = {}
    for suggested in (0, 8, 13, 18, 28):
        searcher.suggested = suggested
        seen[suggested] = searcher.epsilon()
    assert seen == {0: 1.0, 8: 1.0, 13: 0.5, 18: 0.15, 28: 0.15}


def test_each_step_acts_only_among_its_own_options_equally_often_when_exploring(space: SearchSpace) -> None:
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=20, warmup_trials=0), seed=0)
    observation = space.observation(space.human_step, [0] * space.human_step, [0.0] * space.human_step)
    options = len(space.options(space.human_step))  # off and the chains of at most 2 people: 4
    rng = np.random.default_rng(0)
    drawn = np.bincount([searcher.discrete_agent.act(observation, options, 1.0, rng) for _ in range(4000)])
    assert len(drawn) == options and drawn.min() > 0.9 * 1000  # no option drawn twice as often as another
    greedy = {searcher.discrete_agent.act(observation, options, 0.0, rng) for _ in range(5)}
    assert greedy <= set(range(options))


@pytest.mark.parametrize("key, value", [("updates_per_trial", -1), ("epsilon_floor", 1.5), ("epsilon_floor", -0.1),
                                        ("imagined_per_trial", -1)])
def test_bad_learning_settings_are_refused_by_name(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^search.{key}: {value} is out of range"):
        build_dataclass(SearchConfig, {key: value}, "search")


def test_imagined_episodes_join_once_enough_are_measured_ranked_by_the_model_among_the_measured(
        space: SearchSpace) -> None:
    settings = SearchConfig(trials=40, warmup_trials=0, updates_per_trial=1, imagined_per_trial=4)
    searcher = HGenSearcher(space, RewardConfig(), settings, seed=0)
    measured = 16
    for _ in range(measured):  # the policy's own (exploring) rollouts; the earlier a conv1 option, the better
        episode = searcher.rollout()
        searcher.learn(episode, shaped_reward=-float(episode.discrete[0]))
    imagined = 4 * (measured - MIN_MEASURED_TO_IMAGINE + 1)
    assert len(searcher.discrete_agent.episodes) == len(searcher.continuous_agent.episodes) == measured + imagined
    assert sum(searcher.imagined_order) == len(searcher.imagined_features) == imagined
    ranks = searcher.episode_ranks()
    was_imagined = np.array(searcher.imagined_order)
    assert np.allclose(ranks[~was_imagined], centred_ranks(searcher.agent_rewards))  # imagination moves none of them
    first_option = np.array([episode[1][0] for episode in searcher.discrete_agent.episodes])[was_imagined]
    assert spearmanr(ranks[was_imagined], -first_option).statistic > 0.5  # the model learned what was measured


def test_without_imagination_the_agents_hold_only_measured_episodes(space: SearchSpace) -> None:
    searcher = HGenSearcher(space, RewardConfig(), SearchConfig(trials=20, warmup_trials=2, updates_per_trial=1), 0)
    for index in range(MIN_MEASURED_TO_IMAGINE + 2):
        searcher.learn(searcher.rollout(), shaped_reward=0.1 * index)
    assert len(searcher.discrete_agent.episodes) == MIN_MEASURED_TO_IMAGINE + 2 and not any(searcher.imagined_order)

"""The learned reward model: it ranks unmeasured candidates as their true rewards do, and distrusts far ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from hgen_ray.controller.reward_model import MIN_MEASURED_TO_IMAGINE, RewardModel, candidate_features
from hgen_ray.controller.space import NUM_DISCRETE_ACTIONS


def _world(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Candidates of 4 steps; reward falls with the option chosen at step 0 and with each continuous value."""
    discrete = rng.integers(0, 4, size=(count, 4))
    continuous = rng.uniform(-1, 1, size=(count, 4))
    features = np.stack([candidate_features(d, c) for d, c in zip(discrete, continuous)])
    return features, -0.3 * discrete[:, 0] - continuous.sum(axis=1) * 0.2


def test_features_are_each_steps_option_one_hot_and_its_value() -> None:
    features = candidate_features([2, 0], [0.5, -1.0]).reshape(2, NUM_DISCRETE_ACTIONS + 1)
    assert features[0, 2] == 1 and features[0].sum() == pytest.approx(1.5)
    assert features[1, 0] == 1 and features[1, -1] == -1.0


def test_unmeasured_candidates_are_ranked_as_their_true_rewards_are() -> None:
    rng = np.random.default_rng(0)
    measured, rewards = _world(30, rng)
    unseen, truth = _world(200, rng)
    scores = RewardModel(seed=0).scores(measured, rewards, unseen)
    assert spearmanr(scores, truth).statistic > 0.6  # 0.70 here; a model that learned nothing: about 0


def test_pessimism_marks_down_a_candidate_unlike_any_measured_one() -> None:
    rng = np.random.default_rng(1)
    measured, rewards = _world(30, rng)
    model = RewardModel(seed=0)
    near, far = measured[:1], np.full_like(measured[:1], 3.0)  # every feature off every measured one
    spread = {name: model.scores(measured, rewards, row, pessimism=0.0) - model.scores(measured, rewards, row)
              for name, row in (("near", near), ("far", far))}
    assert spread["far"][0] > spread["near"][0] >= 0.0


def test_too_few_measured_candidates_are_refused() -> None:
    features, rewards = _world(MIN_MEASURED_TO_IMAGINE - 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs 5 measured candidates, got 4"):
        RewardModel(seed=0).scores(features, rewards, features)

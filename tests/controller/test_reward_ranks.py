"""Rewards as ranks within the search: order kept, scale fixed, ties shared."""

from __future__ import annotations

import numpy as np

from hgen_ray.controller.reward_ranks import centred_ranks, ranks_among


def test_ranks_span_minus_one_to_one_in_the_rewards_order() -> None:
    assert centred_ranks([0.7, -26.0, 0.69]).tolist() == [1.0, -1.0, 0.0]  # a failed trial's -26 is just the lowest


def test_equal_rewards_share_their_mean_rank_and_one_reward_is_zero() -> None:
    assert np.allclose(centred_ranks([0.5, 0.5, 0.9]), [-0.5, -0.5, 1.0])
    assert centred_ranks([0.4]).tolist() == [0.0]


def test_an_imagined_reward_ranks_among_the_measured_without_moving_them() -> None:
    measured = [0.7, -26.0, 0.69, 0.69]  # centred ranks: 1, -1, 0, 0 (the tie shares 1/3's place)
    assert np.allclose(ranks_among([0.695, 0.8, -30.0, 0.69], measured), [0.5, 1.0, -1.0, 0.0])
    assert ranks_among([0.3, 0.9], [0.5]).tolist() == [0.0, 0.0]  # one measured value ranks everything at 0

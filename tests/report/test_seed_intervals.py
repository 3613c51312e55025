"""Bootstrap intervals over seeds, checked against distributions worked out by hand."""

from __future__ import annotations

import math

import pytest

from hgen_ray.report.seed_intervals import Interval, bootstrap_mean_interval, paired_difference_interval


def test_three_values_against_the_hand_computed_bootstrap() -> None:
    # Resampling [0, 0, 3] three times: the mean is k, the count of 3s drawn, k ~ Binomial(3, 1/3):
    # P(k) = 8/27, 12/27, 6/27, 1/27, so the cumulative is 0.296, 0.741, 0.963, 1.
    assert bootstrap_mean_interval([0, 0, 3]) == Interval(1.0, 0.0, 3.0, 3)  # 0.975 is reached only at k = 3
    assert bootstrap_mean_interval([3, 0, 0], level=0.90) == Interval(1.0, 0.0, 2.0, 3)  # 0.95 is reached at k = 2
    assert bootstrap_mean_interval([0, 3, 0], level=0.40) == Interval(1.0, 1.0, 1.0, 3)  # 0.3 and 0.7 both at k = 1


def test_two_values_against_the_hand_computed_bootstrap() -> None:
    # Resamples of [1, 2]: means 1 (1/4), 1.5 (1/2), 2 (1/4).
    assert bootstrap_mean_interval([1, 2]) == Interval(1.5, 1.0, 2.0, 2)
    assert bootstrap_mean_interval([2, 1], level=0.40) == Interval(1.5, 1.5, 1.5, 2)


def test_a_paired_difference_resamples_seeds_in_pairs() -> None:
    # Differences seed by seed are [0, 0, 3]: the hand-computed case above. Unpaired, the
    # two sides' spreads (1..4 and 1..2) would give a different, wider interval.
    assert paired_difference_interval([1, 2, 4], [1, 2, 1]) == Interval(1.0, 0.0, 3.0, 3)
    with pytest.raises(ValueError, match="equal counts"):
        paired_difference_interval([1, 2], [1])


def test_many_values_use_seeded_resamples_that_repeat() -> None:
    values = [float(v) for v in range(12)]
    first, again = bootstrap_mean_interval(values), bootstrap_mean_interval(values)
    assert first == again and first.mean == pytest.approx(5.5)
    assert 3.0 < first.low < 5.5 < first.high < 8.0  # about mean +- 1.96 * 3.45 / sqrt(12)
    assert bootstrap_mean_interval([4.0] * 12) == Interval(4.0, 4.0, 4.0, 12)


def test_a_claim_needs_five_seeds_and_an_interval_past_the_bar() -> None:
    assert Interval(0.1, 0.02, 0.2, 5).clears_above(0.0)
    assert not Interval(0.1, -0.01, 0.2, 5).clears_above(0.0)
    assert not Interval(0.1, 0.02, 0.2, 4).clears_above(0.0)  # too few seeds, however clear
    assert Interval(0.2, 0.1, 0.25, 5).clears_below(0.25) and not Interval(0.2, 0.1, 0.26, 5).clears_below(0.25)
    empty = bootstrap_mean_interval([])
    assert empty.n == 0 and math.isnan(empty.mean) and not empty.clears_above(-1.0) and empty.text() == "-"

"""Fitting people from recorded answers: intervals that hold the constants the answers came from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hgen_ray.config import ConfigError
from hgen_ray.human.answer_fit import calibration_block, fit_categories, wilson
from hgen_ray.human.calibration import (
    FASHION_MNIST_CALIBRATION,
    HARD_IMAGE_SLOWDOWN,
    doubt,
    majority_of_3_accuracy,
)

# what the simulated answers are drawn from: one person's accuracy and lognormal time per (category, severity)
TRUTH = {("clean", 0): (0.80, 2.5, 0.45), ("fog", 5): (0.50, 4.0, 0.6), ("gaussian_noise", 3): (0.65, 3.2, 0.5),
         ("rotation", 2): (0.75, 2.8, 0.4)}
ANSWERS = 400


def _simulated_rows(seed: int = 7) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for (category, severity), (accuracy, median_s, sigma) in TRUTH.items():
        for n in range(ANSWERS):
            right = rng.random() < accuracy
            rows.append({"request_id": f"calibration-{category}-{n}", "person": f"person-{n % 3 + 1}",
                         "label": "4" if right else "5", "true_label": "4", "category": category,
                         "severity": str(severity), "seconds": str(rng.lognormal(math.log(median_s), sigma))})
    rows.append({"request_id": "abc", "person": "person-1", "label": "3", "true_label": "", "category": "",
                 "severity": "", "seconds": "2.0"})  # a real request's answer: no known label, not fitted
    return rows


def test_each_category_is_fitted_from_its_own_known_answers() -> None:
    fits = fit_categories(_simulated_rows())
    assert [(f.category, f.severity) for f in fits] == [("clean", 0), ("fog", 5), ("gaussian_noise", 3),
                                                        ("rotation", 2)]
    for fit in fits:
        accuracy, median_s, sigma = TRUTH[(fit.category, fit.severity)]
        assert fit.answers == ANSWERS and fit.people == 3
        assert fit.accuracy.estimate == pytest.approx(accuracy, abs=0.07)
        assert fit.median_s.estimate == pytest.approx(median_s, rel=0.12)
        assert fit.sigma.estimate == pytest.approx(sigma, rel=0.12)
        assert fit.accuracy.high - fit.accuracy.low < 0.12  # 400 answers pin a share to about +-5 points


def test_every_fitted_figure_lands_within_its_interval_at_the_stated_rate() -> None:
    """Each 95% interval holds its constant in about 95 of 100 independent draws (seen: 92 to 99)."""
    held = []
    for seed in range(100):
        row = []
        for fit in fit_categories(_simulated_rows(seed)):
            accuracy, median_s, sigma = TRUTH[(fit.category, fit.severity)]
            row += [fit.accuracy.holds(accuracy), fit.median_s.holds(median_s), fit.sigma.holds(sigma)]
        held.append(row)
    coverage = np.mean(held, axis=0)
    assert coverage.shape == (12,)
    assert np.all(coverage >= 0.88) and coverage.mean() == pytest.approx(0.95, abs=0.025), coverage


def test_the_block_inverts_the_simulator_s_own_model() -> None:
    calibration = FASHION_MNIST_CALIBRATION
    clean, sure_median = 0.80, 2.0
    rows, rng = [], np.random.default_rng(3)
    for category, severity in (("clean", 0), ("fog", 5), ("motion_blur", 3)):
        retention = {"clean": 1.0, "fog": 0.4, "motion_blur": 0.7}[category]
        lost = 0.0 if category == "clean" else (1 - retention) * severity / 5
        accuracy = calibration.chance + (clean - calibration.chance) * (1 - lost)
        median = sure_median * (1 + HARD_IMAGE_SLOWDOWN * float(doubt(accuracy, calibration)))
        for n in range(4000):
            right = rng.random() < accuracy
            rows.append({"person": "p", "label": "1" if right else "2", "true_label": "1", "category": category,
                         "severity": str(severity), "seconds": str(rng.lognormal(math.log(median), 0.5))})
    block = calibration_block(fit_categories(rows), calibration, "simulated.csv")
    assert block["clean_majority_of_3_accuracy"] == pytest.approx(majority_of_3_accuracy(clean), abs=0.02)
    retention = block["retention_at_severity_5"]
    assert isinstance(retention, dict)
    assert retention["fog"] == pytest.approx(0.4, abs=0.06) and retention["motion_blur"] == pytest.approx(0.7, abs=0.1)
    assert retention["rotation"] == calibration.retention_at_severity_5["rotation"]  # unmeasured: kept
    assert block["answer_median_s"] == pytest.approx(sure_median, rel=0.05)
    assert block["answer_sigma"] == pytest.approx(0.5, abs=0.03)


def test_wilson_stays_inside_zero_and_one() -> None:
    assert wilson(0, 5).low == 0.0 and wilson(5, 5).high == 1.0 and 0 < wilson(0, 5).high < 0.6


def test_people_at_chance_on_clean_images_give_no_block() -> None:
    rows = [{"person": "p", "label": str(n % 10), "true_label": "0", "category": "clean", "severity": "0",
             "seconds": "2.0"} for n in range(200)]
    with pytest.raises(ConfigError, match="at chance"):
        calibration_block(fit_categories(rows), FASHION_MNIST_CALIBRATION, "chance.csv")

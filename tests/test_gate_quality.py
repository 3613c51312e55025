"""Gate quality on hand-built cases: precision, errors caught, risk-coverage and its area, and where they show."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hgen_ray.architectures import CategoryOutcome
from hgen_ray.config import CHALLENGE_CATEGORIES
from hgen_ray.data.splits import EVALUATED_CATEGORIES
from hgen_ray.gate_quality import GATE_MEASURES, aurc, deferral_precision, errors_caught, is_gate_measure, risk_coverage
from hgen_ray.report import format_measures_table, plot_risk_coverage, summary_table
from hgen_ray.trial.measures import gate_measures

T, F = True, False


def test_precision_is_the_share_of_deferred_samples_the_network_got_wrong() -> None:
    deferred = np.array([T, T, T, T, F, F])
    correct = np.array([F, T, T, T, F, T])
    assert deferral_precision(deferred, correct) == pytest.approx(1 / 4)  # only sample 0 of the 4 deferred was wrong
    assert errors_caught(deferred, correct) == pytest.approx(1 / 2)  # errors at 0 and 4; only 0 was deferred


def test_precision_and_errors_caught_are_undefined_without_deferrals_or_errors() -> None:
    assert math.isnan(deferral_precision(np.zeros(3, bool), np.array([F, T, F])))
    assert errors_caught(np.zeros(3, bool), np.array([F, T, F])) == 0.0  # errors, none deferred: none caught
    assert math.isnan(errors_caught(np.array([T, F, F]), np.ones(3, bool)))
    assert deferral_precision(np.array([T, F, F]), np.ones(3, bool)) == 0.0
    with pytest.raises(ValueError, match="one value per sample"):
        deferral_precision(np.array([T, F]), np.array([T, F, T]))


def test_risk_keeps_the_most_confident_samples_first() -> None:
    confidence = np.array([0.9, 0.2, 0.8, 0.1, 0.5])
    correct = np.array([T, F, T, T, F])  # in decreasing confidence: right, right, wrong, wrong, right
    coverage, risk = risk_coverage(confidence, correct)
    np.testing.assert_allclose(coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(risk, [0.0, 0.0, 1 / 3, 2 / 4, 2 / 5])
    assert aurc(confidence, correct) == pytest.approx((1 / 3 + 1 / 2 + 2 / 5) / 5)


@pytest.mark.parametrize(("n", "errors"), [(4, 1), (10, 3), (7, 7)])
def test_a_perfect_ranking_reaches_the_closed_form_and_a_reversed_one_is_worse(n: int, errors: int) -> None:
    correct = np.arange(n) >= errors  # the first `errors` samples are the network's mistakes
    perfect = np.arange(n, dtype=float)  # the mistakes scored lowest
    optimum = sum((i - n + errors) / i for i in range(n - errors + 1, n + 1)) / n
    assert aurc(perfect, correct) == pytest.approx(optimum)
    reversed_ = sum(min(i, errors) / i for i in range(1, n + 1)) / n  # the mistakes kept first
    assert aurc(-perfect, correct) == pytest.approx(reversed_)
    assert aurc(-perfect, correct) > aurc(perfect, correct) or errors == n


def test_ties_are_averaged_so_the_order_samples_came_in_does_not_matter() -> None:
    correct = np.array([T, F, T, T])
    _, risk = risk_coverage(np.array([1.0, 0.5, 0.5, 0.0]), correct)
    np.testing.assert_allclose(risk, [0.0, 0.5 / 2, 1 / 3, 1 / 4])  # half of the tied pair's error at coverage 2/4
    _, swapped = risk_coverage(np.array([1.0, 0.5, 0.5, 0.0]), np.array([T, T, F, T]))
    np.testing.assert_allclose(swapped, risk)
    assert aurc(np.full(5, 0.7), np.array([T, F, T, T, F])) == pytest.approx(2 / 5)  # no ranking: the error rate


def test_the_curve_refuses_what_cannot_be_ranked() -> None:
    with pytest.raises(ValueError, match="NaN"):
        risk_coverage(np.array([0.1, np.nan]), np.array([T, F]))
    with pytest.raises(ValueError, match="one value per sample"):
        aurc(np.array([0.1, 0.2]), np.array([T]))
    assert math.isnan(aurc(np.zeros(0), np.zeros(0, bool)))


def _outcome(deferred: list[bool], correct: list[bool] | None, confidence: list[float] | None) -> CategoryOutcome:
    n = len(deferred)
    return CategoryOutcome(accuracy=0.5, dnn_accuracy=0.5, deferred=np.array(deferred), labor_s=np.zeros(n),
                           latency_s=np.zeros(n), wait_s=np.zeros(n),
                           dnn_correct=None if correct is None else np.array(correct),
                           gate_confidence=None if confidence is None else np.array(confidence))


def _outcomes() -> dict[str, CategoryOutcome]:
    """Every challenge: 1 of 2 deferred samples wrong, 1 of its 2 errors deferred.

    Clean defers only a right answer (precision 0); the first challenge defers nothing (precision undefined).
    """
    gate = [0.1, 0.2, 0.8, 0.9]  # the two lowest deferred (tau 0.5)
    challenge = _outcome([T, T, F, F], [F, T, F, T], gate)  # kept in order right, wrong, right, wrong
    outcomes = {category: challenge for category in CHALLENGE_CATEGORIES}
    outcomes["clean"] = _outcome([T, F, F, F], [T, T, T, F], gate)
    outcomes[CHALLENGE_CATEGORIES[0]] = _outcome([F, F, F, F], [F, T, T, T], gate)
    return outcomes


def test_gate_measures_per_category_and_their_mean_over_the_challenges() -> None:
    metrics = gate_measures(_outcomes())
    challenge_aurc = (0 + 1 / 2 + 1 / 3 + 2 / 4) / 4  # risks kept in order right, wrong, right, wrong
    first = CHALLENGE_CATEGORIES[0]
    assert set(metrics) == {*GATE_MEASURES, *(f"{m}/{c}" for m in GATE_MEASURES for c in EVALUATED_CATEGORIES)}
    assert metrics["deferral_precision/clean"] == 0.0 and metrics["errors_caught/clean"] == 0.0
    assert metrics["gate_aurc/clean"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)  # its error kept first
    assert math.isnan(metrics[f"deferral_precision/{first}"]) and metrics[f"errors_caught/{first}"] == 0.0
    assert metrics[f"gate_aurc/{first}"] == pytest.approx(1 / 4 / 4)  # its one error scored lowest
    # The means leave clean out (its 0 would pull them down) and skip the category with nothing deferred.
    assert metrics["deferral_precision"] == pytest.approx(0.5)
    assert metrics["errors_caught"] == pytest.approx((0 + 11 * 0.5) / 12)
    assert metrics["gate_aurc"] == pytest.approx((1 / 16 + 11 * challenge_aurc) / 12)


def test_a_mean_with_no_defined_category_is_nan() -> None:
    outcomes = {c: _outcome([F, F], [T, F], [0.9, 0.8]) for c in EVALUATED_CATEGORIES}
    metrics = gate_measures(outcomes)
    assert math.isnan(metrics["deferral_precision"]) and metrics["errors_caught"] == 0.0
    assert metrics["gate_aurc"] == pytest.approx((0 + 1 / 2) / 2)


def test_detectors_have_no_gate_measures() -> None:
    outcomes = _outcomes()
    outcomes["fog"] = _outcome([T, F], None, None)
    assert gate_measures(outcomes) == {}
    outcomes["fog"] = _outcome([T, F], [T, F], None)
    assert gate_measures(outcomes) == {}


def test_is_gate_measure_knows_the_names_and_their_categories() -> None:
    assert is_gate_measure("gate_aurc") and is_gate_measure("errors_caught/fog")
    assert not is_gate_measure("deferral_rate") and not is_gate_measure("accuracy/fog")


def _measures(gate: dict[str, float]) -> dict[str, float | str | bool]:
    metrics: dict[str, float | str | bool] = {"split": "test", "accuracy": 0.7, "accuracy_clean": 0.9,
                                              "dnn_accuracy": 0.6, "dnn_latency_ms": 1.0, "latency_ms": 900.0,
                                              "human_turnaround_s_p95": 4.0, "energy_mj": 0.1,
                                              "energy_source": "estimate", "storage_mb": 0.4, "parameters": 1000,
                                              "labor_s_per_1k": 300.0, "deferral_rate": 0.1, "pool_utilisation": 0.5}
    for c in EVALUATED_CATEGORIES:
        metrics.update({f"accuracy/{c}": 0.7, f"dnn_accuracy/{c}": 0.6, f"deferral_rate/{c}": 0.1})
    return {**metrics, **gate}


def test_the_measures_table_shows_the_gate_or_a_dash() -> None:
    text = format_measures_table(_measures(gate_measures(_outcomes())))
    header, _, clean, first, *_ = text.splitlines()[1:]
    assert header.split()[-6:] == ["defer", "precision", "errors", "caught", "gate", "aurc"]
    assert clean.split()[-3:] == ["0.000", "0.000", "0.521"]
    assert first.split()[-3:] == ["—", "0.000", "0.062"]  # nothing deferred in the first challenge
    mean = next(line for line in text.splitlines() if line.startswith("mean of 12"))
    assert mean.split()[-3:] == ["0.500", "0.458", "0.311"]
    detector = format_measures_table(_measures({}))
    assert all(line.split()[-3:] == ["—"] * 3 for line in detector.splitlines()[3:17])


def test_the_summary_table_adds_the_gate_columns() -> None:
    references = {"original": _measures({"deferral_precision": math.nan, "errors_caught": 0.0, "gate_aurc": 0.125}),
                  "old run": _measures({})}
    lines = summary_table([], references).splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    at = header.index("deferral_precision")
    assert header[at:at + 3] == list(GATE_MEASURES)
    assert [cell.strip() for cell in lines[2].split("|")][at:at + 3] == ["—", "0", "0.125"]
    assert [cell.strip() for cell in lines[3].split("|")][at:at + 3] == ["", "", ""]


def test_the_risk_coverage_plot_is_a_png_written_in_one_piece(tmp_path: Path) -> None:
    correct = np.array([T, F, T, T, F, T, T, T])
    confidence = np.linspace(1.0, 0.0, 8)
    out = plot_risk_coverage({"softmax": (confidence, correct), "margin": (-confidence, correct)},
                             tmp_path / "risk.png", "validation, 12 challenges")
    assert out == tmp_path / "risk.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["risk.png"]  # no temporary file left behind

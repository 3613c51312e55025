"""The bench report on a small fixed set of trial rows: tables, ratios, 95%-of-best and goals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from hgen_ray.bench_report import (
    ArchitectureResult,
    check_goals,
    format_bench_report,
    near_best_threshold,
    ratios_against_original,
    search_efficiency,
    trials_to_reach,
    write_bench_report,
)
from hgen_ray.config import CHALLENGE_CATEGORIES


def _row(reward: float, accuracy: float, storage: float, latency: float = 2.0, labor: float = 0.0,
         feasible: bool = True, status: str = "TERMINATED") -> dict[str, Any]:
    row: dict[str, Any] = {"status": status, "reward": reward, "feasible": feasible, "accuracy": accuracy,
                           "accuracy_clean": accuracy + 0.3, "dnn_latency_ms": latency, "human_turnaround_s_p95": 0.0, "energy_mj": 0.1,
                           "energy_source": "estimate", "storage_mb": storage, "labor_s_per_1k": labor,
                           "deferral_rate": labor / 3000}
    row.update({f"accuracy/{c}": accuracy for c in ("clean", *CHALLENGE_CATEGORIES)})
    return row


@pytest.fixture()
def result() -> ArchitectureResult:
    return ArchitectureResult("h_cnn", "h_cnn", labor_limit=700.0, trials=3, rows={
        "hgen": [_row(0.2, 0.50, 0.40), _row(-0.3, 0.70, 2.0, feasible=False), _row(0.62, 0.66, 0.40, 300.0, 600.0)],
        "random": [_row(0.5, 0.55, 0.5), _row(0.59, 0.60, 0.41), _row(0.1, 0.45, 0.3)],
        "compression_only": [_row(-0.1, 0.40, 0.3, feasible=False), _row(0.3, 0.5, 0.2), _row(0.4, 0.52, 0.4)],
        "original": [_row(0.55, 0.60, 1.6, 1.0)],
    })


def test_trials_to_reach_counts_until_the_running_best_gets_there() -> None:
    assert trials_to_reach([0.1, 0.5, 0.3, 0.9], 0.5) == 2
    assert trials_to_reach([0.1, 0.5, 0.3, 0.9], 0.85) == 4
    assert trials_to_reach([0.1, 0.2], 0.5) is None


def test_95_percent_of_the_best_works_for_negative_bests_too() -> None:
    assert near_best_threshold(0.8) == pytest.approx(0.76)
    assert near_best_threshold(-2.0) == pytest.approx(-2.1)  # 5% of its size below a negative best


def test_search_efficiency_uses_the_best_of_any_strategy(result: ArchitectureResult) -> None:
    best, needed = search_efficiency(result)
    assert best == pytest.approx(0.62)  # hgen's third trial; references are not search strategies
    assert needed == {"hgen": 3, "random": 2, "compression_only": None}  # threshold 0.589


def test_ratios_are_against_original() -> None:
    ratios = ratios_against_original(_row(0.6, 0.66, 0.4, 300.0), _row(0.5, 0.60, 1.6, 1.0))
    assert ratios["storage_reduction_x"] == pytest.approx(4.0)
    assert ratios["latency_reduction_x"] == pytest.approx(1 / 300)
    assert ratios["accuracy_change_points"] == pytest.approx(6.0)


def test_goals_are_judged_on_the_best_feasible_hgen_trial(result: ArchitectureResult) -> None:
    goals = {g.text: g for g in check_goals(result)}
    assert goals["mean challenge accuracy >= original + 5 points"].met  # 0.66 vs 0.60
    assert goals["storage <= 0.25 x original"].met  # 0.40 / 1.6
    assert goals["labour <= L_c"].met  # 600 <= 700
    assert goals["hgen's best reward > random's"].met and goals["hgen's best reward > compression_only's"].met
    result.rows["hgen"][2]["labor_s_per_1k"] = 900.0
    result.rows["random"].append(_row(0.7, 0.7, 0.3))
    goals = {g.text: g for g in check_goals(result)}
    assert not goals["labour <= L_c"].met and "900 s per 1k vs L_c 700" in goals["labour <= L_c"].evidence
    assert not goals["hgen's best reward > random's"].met


def test_a_bench_without_a_feasible_hgen_trial_says_so(result: ArchitectureResult) -> None:
    result.rows["hgen"] = [_row(-0.3, 0.70, 2.0, feasible=False)]
    goals = check_goals(result)
    assert goals[0].text == "hgen finds a feasible H-DNN" and not goals[0].met


def test_the_report_holds_every_table_and_plot(result: ArchitectureResult, tmp_path: Path) -> None:
    header = {"command": "hgen-ray bench --config x.yaml --out y", "commit": "abc123", "machine": "2 cores",
              "elapsed_s": 12.0}
    path = write_bench_report(tmp_path, [result], header, ["- throughput: 1.0 trials/min"])
    text = path.read_text()
    assert (tmp_path / "h_cnn-reward.png").stat().st_size > 5000
    for expected in ("`hgen-ray bench --config x.yaml --out y`", "`abc123`", "2 cores", "## h_cnn (h_cnn)",
                     "### Accuracy per category", "| rotation |", "- throughput: 1.0 trials/min",
                     "| compression_only | not reached | 3 |", "MET: labour <= L_c"):
        assert expected in text, expected
    hgen_line = next(line for line in text.splitlines() if line.startswith("| hgen |"))
    assert "| 4 | 0.003333 | 6 |" in hgen_line  # storage 4x smaller, latency 300x larger, +6 points
    assert format_bench_report([result], header, []).count("| original |") == 2  # strategy and category tables
    assert not math.isnan(search_efficiency(result)[0])

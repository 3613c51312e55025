"""Reports: the measures table, and a search's trials.csv, pareto.json, best/ and report.md."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hgen_ray.atomic_write import replaced_atomically, write_text_atomic
from hgen_ray.config import json_text
from hgen_ray.data.splits import EVALUATED_CATEGORIES
from hgen_ray.gate_quality import GATE_MEASURES
from hgen_ray.metric import pareto_front
from hgen_ray.report.plots import plot_reward_curve, plot_risk_coverage, plot_tradeoffs

__all__ = [
    "best_row",
    "format_cell",
    "format_measures_table",
    "last_error_line",
    "summary_table",
    "chosen_test_measures",
    "trial_rows",
    "write_csv_atomic",
    "write_search_report",
]


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in
                     enumerate(zip(cells, widths))).rstrip()


NOT_MEASURED = "—"  # a cell with no figure: a detector's gate quality, or a run from before the measure existed


def _gate_cells(metrics: Mapping[str, Any], suffix: str) -> list[str]:
    """Deferral precision, errors caught and AURC, or a dash each where the gate was not judged."""
    values = [metrics.get(f"{measure}{suffix}") for measure in GATE_MEASURES]
    return [NOT_MEASURED if v is None or v == "" or math.isnan(float(v)) else f"{float(v):.3f}" for v in values]


def format_measures_table(metrics: Mapping[str, float | str | bool]) -> str:
    """Per-category accuracy, deferral and the gate's quality, then the five measures A, T, E, S, L."""
    header = ["category", "accuracy", "dnn only", "deferred", "defer precision", "errors caught", "gate aurc"]
    rows = [
        [c, f"{metrics[f'accuracy/{c}']:.3f}", f"{metrics[f'dnn_accuracy/{c}']:.3f}",
         f"{metrics[f'deferral_rate/{c}']:.1%}", *_gate_cells(metrics, f"/{c}")]
        for c in EVALUATED_CATEGORIES
    ]
    rows.append(["mean of 12", f"{metrics['accuracy']:.3f}", f"{metrics['dnn_accuracy']:.3f}",
                 f"{metrics['deferral_rate']:.1%}", *_gate_cells(metrics, "")])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    lines += [
        "",
        f"A  accuracy        {metrics['accuracy']:.4f}   (clean {metrics['accuracy_clean']:.4f})",
        f"T  dnn_latency_ms  {metrics['dnn_latency_ms']:.3f}   (end to end, people included: "
        f"{metrics['latency_ms']:.1f} ms mean)",
        f"H  human_turnaround_s_p95  {metrics['human_turnaround_s_p95']:.2f}   (arrival to answer, deferred samples)",
        f"E  energy_mj       {metrics['energy_mj']:.4f}   (source: {metrics['energy_source']})",
        f"S  storage_mb      {metrics['storage_mb']:.4f}   ({int(metrics['parameters']):,} parameters)",
        f"L  labor_s_per_1k  {metrics['labor_s_per_1k']:.1f}   (deferral_rate {metrics['deferral_rate']:.3f}, "
        f"pool_utilisation {metrics['pool_utilisation']:.2f}: at 1 or more the people fall behind)",
    ]
    return f"measured on the {metrics['split']} split\n" + "\n".join(lines)


def trial_rows(results: Iterable[Any], failed_reward: float) -> list[dict[str, Any]]:
    """One row per Tune trial: candidate, measures, reward, feasibility, status and error."""
    rows = []
    for result in results:
        metrics = dict(result.metrics or {})
        trial_id, index = _trial_id_and_index(result.path)
        row: dict[str, Any] = {"trial": index, "trial_id": metrics.get("trial_id", trial_id),
                               "status": "ERROR" if result.error else "TERMINATED",
                               "error": last_error_line(result.error) if result.error else "",
                               "split": "validation"}  # every trial is scored on validation images only
        row.update(_flatten({k: v for k, v in (result.config or {}).items() if k in ("layers", "human")}))
        if result.error:
            row.update({"reward": failed_reward, "feasible": False})
        else:
            row.update({k: metrics[k] for k in _RESULT_COLUMNS if k in metrics})
            if row.get("human/deferral") is not None and "gate_tau" in metrics:
                row["human/tau"] = metrics["gate_tau"]  # the tau its trial set from d: what the saved H-DNN deploys
        row["checkpoint"] = result.checkpoint.path if result.checkpoint and not result.error else ""
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial"])


_RESULT_COLUMNS = ("reward", "feasible", "violation", "infeasible_reason", "accuracy", "accuracy_clean", "dnn_accuracy",
                   "latency_ms", "dnn_latency_ms", "human_turnaround_s_p95", "human_wait_s_p95", "pool_utilisation",
                   "energy_mj", "energy_source", "energy_shared_gpu", "storage_mb",
                   "labor_s_per_1k", "deferral_rate", *GATE_MEASURES, "parameters", "node_id", "peak_rss_mb",
                   "people_calibration", "gate_score", "gate_tau",
                   *(f"{measure}/{c}" for measure in ("accuracy", "dnn_accuracy", "errors_caught")
                     for c in EVALUATED_CATEGORIES))


def _flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _trial_id_and_index(path: str) -> tuple[str, int]:
    """Tune names trial dirs ``run_trial_<id>_<index>_<params>_<date>``; the index is creation order."""
    parts = Path(path).name.split("_")
    if len(parts) > 3 and parts[3].isdigit():
        return parts[2], int(parts[3])
    return Path(path).name, 0


def last_error_line(error: BaseException) -> str:
    """The last non-empty line of an error (Ray wraps the cause in pages of traceback), at most 300 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


def write_csv_atomic(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a CSV, then rename it into place: readers never see half a table."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with replaced_atomically(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The feasible trial with the highest reward, else the best infeasible one."""
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    if not finished:
        return None
    return max(finished, key=lambda r: (bool(r["feasible"]), float(r["reward"])))


def format_cell(value: Any) -> str:
    """A table cell: yes/no for booleans, 4 significant digits for floats, a dash for NaN (no figure)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and math.isnan(value):
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], names: Sequence[str]) -> str:
    lines = ["| " + " | ".join(["", *columns]) + " |", "|" + "---|" * (len(columns) + 1)]
    for name, row in zip(names, rows):
        lines.append("| " + " | ".join([name, *(format_cell(row.get(c, "")) for c in columns)]) + " |")
    return "\n".join(lines)


SUMMARY_COLUMNS = ("accuracy", "accuracy_clean", "dnn_latency_ms", "human_turnaround_s_p95", "latency_ms",
                   "energy_mj", "storage_mb", "labor_s_per_1k", "deferral_rate", *GATE_MEASURES, "pool_utilisation",
                   "reward", "feasible")
TEST_PREFIX = "test/"


def chosen_test_measures(row: Mapping[str, Any]) -> dict[str, Any]:
    """A chosen trial's test columns, without their prefix (empty for a trial the search did not choose)."""
    return {k[len(TEST_PREFIX):]: v for k, v in row.items() if k.startswith(TEST_PREFIX)}


def summary_table(rows: Sequence[Mapping[str, Any]], references: Mapping[str, Mapping[str, Any]]) -> str:
    """Test measures of the validation-best H-DNN next to the references' (their test measures)."""
    best = best_row(rows)
    named = []
    if best is not None and chosen_test_measures(best):
        named.append((f"best H-DNN (validation reward {float(best['reward']):.4f})", chosen_test_measures(best)))
    named += list(references.items())
    return _markdown_table([r for _, r in named], SUMMARY_COLUMNS, [n for n, _ in named])


def _people_source(rows: Sequence[Mapping[str, Any]]) -> str:
    """Where the simulated people's figures came from (the same for every trial of a search)."""
    sources = {str(r["people_calibration"]) for r in rows if r.get("people_calibration")}
    return "; ".join(sorted(sources)) or "not recorded"


def write_search_report(out: Path, rows: list[dict[str, Any]],
                        references: Mapping[str, Mapping[str, Mapping[str, Any]]], header: Mapping[str, Any],
                        gate_curves: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Path:
    """trials.csv, pareto.json, best/, plots and report.md in ``out``; returns the best H-DNN's folder.

    ``references`` is split -> name -> measures. The trade-off plot shows validation figures (the
    trials' and the references'); the table shows test figures only. ``gate_curves`` (score ->
    confidence, correctness of the best network on test) draws a risk-coverage curve per gate score.
    """
    write_csv_atomic(out / "trials.csv", rows)
    finished = [r for r in rows if r["status"] == "TERMINATED"]
    front = pareto_front(finished)
    plain_front = [{k: v for k, v in r.items() if k != "checkpoint"} for r in front]
    write_text_atomic(out / "pareto.json", json_text(plain_front, indent=2, default=str))
    best = best_row(rows)
    best_dir = out / "best"
    if best is not None:
        _replace_folder(best_dir, Path(best["checkpoint"]))
    with replaced_atomically(out / "tradeoffs.png") as temporary:
        plot_tradeoffs(rows, references.get("validation", {}), temporary)
    with replaced_atomically(out / "reward.png") as temporary:
        plot_reward_curve({str(header["algorithm"]): [float(r["reward"]) for r in rows]}, temporary)
    failed = [r for r in rows if r["status"] == "ERROR"]
    lines = [
        f"# hgen-ray search: {header['algorithm']}",
        "",
        f"- command: `{header['command']}`",
        f"- trials: {len(rows)} ({len(finished)} finished, {len(failed)} failed), "
        f"{sum(bool(r['feasible']) for r in finished)} feasible, {len(front)} on the Pareto front",
        f"- wall time: {header['elapsed_s']:.0f} s",
        f"- constraints: {header['constraints']}",
        f"- commit: `{header['commit']}`",
        f"- simulated people calibrated to: {_people_source(finished)}",
        "- splits: every trial was scored on the **validation** challenge images; the table below is the "
        "**test** split, measured once, after the search, for the H-DNN it chose and the references",
        "",
        "## Best H-DNN (chosen on validation) and references, on test",
        "",
        summary_table(rows, references.get("test", {})),
        "",
    ]
    if best is not None:
        candidate = {k: v for k, v in best.items() if k.startswith(("layers/", "human/"))}
        lines += [f"Best trial `{best['trial_id']}`" + ("" if best["feasible"] else " (no feasible trial: the least "
                  "infeasible one)") + f", saved in `best/`: `{json.dumps(candidate)}`", ""]
    lines += ["## Trade-offs (validation split)", "", "![accuracy vs storage and labour](tradeoffs.png)", "",
              "## Reward per trial (validation split)", "", "![reward per trial](reward.png)", ""]
    lines += _gate_lines(header.get("gate"))
    if gate_curves:
        plot_risk_coverage(gate_curves, out / "risk_coverage.png",
                           "best H-DNN's network, test, the 12 challenges pooled")
        lines += ["## The gate's risk-coverage, per score (test split)", "",
                  "The best H-DNN's network with each gate score, each fitted on validation: the error rate of the "
                  "samples kept as the gate keeps more. A lower curve catches more errors for the same deferral.",
                  "", "![risk-coverage per gate score](risk_coverage.png)", ""]
    if failed:
        lines += ["## Failed trials", ""] + [f"- `{r['trial_id']}`: {r['error']}" for r in failed] + [""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    return best_dir


def _gate_lines(gate: Mapping[str, Any] | None) -> list[str]:
    """The gate's settings, and the rejector's training corruptions with their overlap with the test categories."""
    if not gate:
        return []
    lines = ["## The gate", "", f"- scores searched: {', '.join(gate['scores'])}; people's answers: "
             f"{gate['combine']}" + (f"; d_max {gate['max_deferral']}" if gate.get("max_deferral") is not None
                                     else "")]
    if gate.get("rejector_families"):
        lines += ["- the rejector learned from these corruptions of validation images, none of them a test "
                  "category:"] + [f"  - `{family}`: {kinship}" for family, kinship in gate["rejector_families"].items()]
    return [*lines, ""]


def _replace_folder(target: Path, source: Path) -> None:
    """Copy ``source`` over ``target`` so that a full disk mid-copy leaves the old ``target`` whole.

    The copy goes to a staging folder first; only renames, which need no space, touch ``target``.
    """
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = target.with_name(f"{staging.name}.old")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)

"""Human-readable reports of measures: tables for the terminal, figures for people."""

from __future__ import annotations

from collections.abc import Mapping

from hgen_ray.data.splits import EVALUATED_CATEGORIES

__all__ = ["format_measures_table"]


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in
                     enumerate(zip(cells, widths))).rstrip()


def format_measures_table(metrics: Mapping[str, float | str | bool]) -> str:
    """Per-category accuracy and deferral, then the five measures A, T, E, S, L."""
    header = ["category", "accuracy", "dnn only", "deferred"]
    rows = [
        [c, f"{metrics[f'accuracy/{c}']:.3f}", f"{metrics[f'dnn_accuracy/{c}']:.3f}",
         f"{metrics[f'deferral_rate/{c}']:.1%}"]
        for c in EVALUATED_CATEGORIES
    ]
    rows.append(["mean of 12", f"{metrics['accuracy']:.3f}", f"{metrics['dnn_accuracy']:.3f}",
                 f"{metrics['deferral_rate']:.1%}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    lines += [
        "",
        f"A  accuracy        {metrics['accuracy']:.4f}   (clean {metrics['accuracy_clean']:.4f})",
        f"T  latency_ms      {metrics['latency_ms']:.3f}   (DNN alone {metrics['dnn_latency_ms']:.3f})",
        f"E  energy_mj       {metrics['energy_mj']:.4f}   (source: {metrics['energy_source']})",
        f"S  storage_mb      {metrics['storage_mb']:.4f}   ({int(metrics['parameters']):,} parameters)",
        f"L  labor_s_per_1k  {metrics['labor_s_per_1k']:.1f}   (deferral_rate {metrics['deferral_rate']:.3f})",
    ]
    return "\n".join(lines)

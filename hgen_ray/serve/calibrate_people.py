"""``hgen-ray calibrate-people answers.csv``: real people's answers as a ``human_pool.calibration`` block.

The fits are :mod:`hgen_ray.human.answer_fit`'s. The data's classes come from ``served.json`` beside the
answers (written by ``hgen-ray serve``); without it the file is refused, since chance depends on them. The block is written as
YAML a search config can include under ``human_pool``, with the per-category fits above it as comments.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hgen_ray.atomic_write import write_text_atomic
from hgen_ray.config import ConfigError
from hgen_ray.human.answer_fit import CategoryFit, calibration_block, fit_categories, read_answers
from hgen_ray.human.calibration import resolve_calibration

__all__ = ["calibrate_people", "fits_table"]


def _served_classes(answers: Path) -> tuple[str, tuple[str, ...]]:
    served = answers.parent / "served.json"
    if not served.is_file():
        raise ConfigError(f"{served}: missing, so the data's classes are unknown; allowed: an answers.csv in the "
                          "serve folder hgen-ray serve wrote (beside its served.json)")
    try:
        record = json.loads(served.read_text())
        return str(record["dataset"]), tuple(record["classes"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{served}: not a served.json of hgen-ray serve ({type(error).__name__})") from None


def fits_table(fits: list[CategoryFit]) -> str:
    """The fits as a text table: one row per category and severity."""
    lines = [f"{'category':<16}{'severity':>9}{'answers':>8}{'people':>7}  {'accuracy [95%]':<26}"
             f"{'median_s [95%]':<26}sigma [95%]"]
    lines += [f"{f.category:<16}{f.severity:>9}{f.answers:>8}{f.people:>7}  {str(f.accuracy):<26}"
              f"{str(f.median_s):<26}{f.sigma}" for f in fits]
    return "\n".join(lines)


def calibrate_people(answers: Path, out: Path) -> str:
    """Fit the answers in ``answers`` and write the block to ``out``; returns the fits' table.

    Raises:
        ConfigError: The file is not an answers.csv, or holds no calibration answers to fit.
    """
    rows = read_answers(answers)
    fits = fit_categories(rows)
    if not fits:
        raise ConfigError(f"{answers}: no category has 2 or more answers to calibration images (rows with a "
                          "category and a true_label); allowed: answers gathered with serve.calibration_rate > 0")
    dataset, classes = _served_classes(answers)
    block = calibration_block(fits, resolve_calibration(None, dataset, classes), answers.name)
    table = fits_table(fits)
    header = "".join(f"# {line}\n" for line in [f"fitted by hgen-ray calibrate-people from {answers}", *table.split("\n")])
    write_text_atomic(out, header + yaml.safe_dump({"human_pool": {"calibration": block}}, sort_keys=False))
    return table

"""What real people's recorded answers say about them: the figures the simulated people are calibrated to.

``hgen-ray serve`` records every answer in ``answers.csv``. The calibration images it mixes in
(held-out test images of a known challenge category and label) make the rows this module fits:

- per category and severity, one person's **accuracy**, with a Wilson 95% interval (Wilson 1927;
  it stays inside [0, 1] and keeps its coverage at small counts, where the normal interval does not);
- per category and severity, the **lognormal answer time**: the median ``exp(mu)`` with a t interval
  on the mean log time, and the log-space spread ``sigma`` with a chi-square interval.

:func:`calibration_block` turns the fits into a ``human_pool.calibration`` block by inverting
the simulator's own model (:mod:`hgen_ray.human.calibration`): the clean accuracy gives the crowd
target (a majority of 3 such people), each corrupted category's accuracy gives its retention at
severity 5 (loss linear in severity), and the times give the median on an image a person is sure of
(times slow down linearly with doubt) and the pooled spread. The spread includes image-to-image
differences, which the simulator also draws, so it errs wide.
Answers to real requests carry no known category or label and are not fitted.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from hgen_ray.config import CHALLENGE_CATEGORIES, ConfigError
from hgen_ray.human.calibration import (
    HARD_IMAGE_SLOWDOWN,
    PeopleCalibration,
    doubt,
    majority_of_3_accuracy,
    single_person_accuracy,
)

__all__ = ["ANSWER_COLUMNS", "CategoryFit", "Interval", "calibration_block", "fit_categories", "read_answers"]

ANSWER_COLUMNS = ("request_id", "person", "label", "seconds", "shown_at", "answered_at", "category", "severity",
                  "true_label")
CONFIDENCE = 0.95
CLEAN = "clean"
MIN_ANSWER_MEDIAN_S, MIN_ANSWER_SIGMA = 0.05, 0.01  # the config's own lower limits on these keys


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class CategoryFit:
    category: str
    severity: int  # 0 for clean images
    answers: int
    people: int
    accuracy: Interval  # one person's chance of the right class
    median_s: Interval  # the lognormal's median answer time
    sigma: Interval  # the lognormal's log-space spread


@dataclass(frozen=True)
class KnownAnswer:
    person: str
    right: bool
    seconds: float


def read_answers(path: Path) -> list[dict[str, str]]:
    """The rows of an ``answers.csv``; a file that is not one raises ConfigError in one line."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ANSWER_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ConfigError(f"{path}: not an answers.csv of hgen-ray serve (no column {missing[0]!r}); "
                                  f"allowed: a CSV with the columns {', '.join(ANSWER_COLUMNS)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{path}: cannot read it as an answers.csv ({error})") from None


def _known(rows: Iterable[Mapping[str, str]]) -> dict[tuple[str, int], list[KnownAnswer]]:
    """Rows with a category and a true label, by (category, severity); a malformed row is refused."""
    groups: dict[tuple[str, int], list[KnownAnswer]] = defaultdict(list)
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not row.get("category") or not row.get("true_label"):
            continue
        try:
            seconds = float(row["seconds"])
            answer = KnownAnswer(row["person"], int(row["label"]) == int(row["true_label"]), seconds)
            severity = int(row["severity"] or 0)
        except (TypeError, ValueError):
            raise ConfigError(f"answers.csv line {number}: label, true_label, severity and seconds must be numbers; "
                              f"got {dict(row)}") from None
        if not seconds > 0 or not math.isfinite(seconds):
            raise ConfigError(f"answers.csv line {number}: seconds={row['seconds']}; allowed: a positive number")
        groups[(row["category"], severity)].append(answer)
    return groups


def wilson(right: int, total: int, confidence: float = CONFIDENCE) -> Interval:
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    share = right / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Interval(share, max(0.0, centre - half), min(1.0, centre + half))


def lognormal_fit(seconds: np.ndarray, confidence: float = CONFIDENCE) -> tuple[Interval, Interval]:
    """The median and the log-space spread of answer times, each with its interval (needs 2 or more)."""
    logs = np.log(seconds)
    n, mu, sigma = len(logs), float(logs.mean()), float(logs.std(ddof=1))
    t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    half = t * sigma / math.sqrt(n)
    tail = (1 - confidence) / 2
    sigma_low = sigma * math.sqrt((n - 1) / float(stats.chi2.ppf(1 - tail, n - 1)))
    sigma_high = sigma * math.sqrt((n - 1) / float(stats.chi2.ppf(tail, n - 1)))
    return (Interval(math.exp(mu), math.exp(mu - half), math.exp(mu + half)),
            Interval(sigma, sigma_low, sigma_high))


def fit_categories(rows: Iterable[Mapping[str, str]]) -> list[CategoryFit]:
    """One fit per (category, severity) with 2 or more known answers, clean first."""
    fits = []
    for (category, severity), answers in sorted(_known(rows).items(), key=lambda item: (item[0][0] != CLEAN,
                                                                                        item[0])):
        if len(answers) < 2:
            continue
        median, sigma = lognormal_fit(np.array([a.seconds for a in answers]))
        fits.append(CategoryFit(category, severity, len(answers), len({a.person for a in answers}),
                                wilson(sum(a.right for a in answers), len(answers)), median, sigma))
    return fits


def _weighted(values: list[tuple[float, int]]) -> float:
    return sum(value * weight for value, weight in values) / sum(weight for _, weight in values)


def _retention(fits: list[CategoryFit], clean: float, calibration: PeopleCalibration) -> tuple[dict[str, float],
                                                                                               list[str]]:
    """Per challenge category, the share of above-chance accuracy kept at severity 5; unmeasured ones keep theirs."""
    chance = calibration.chance
    measured: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for fit in fits:
        if fit.category in CHALLENGE_CATEGORIES and fit.severity > 0:
            kept = (fit.accuracy.estimate - chance) / max(clean - chance, 1e-9)
            measured[fit.category].append((1.0 - (1.0 - kept) * 5 / fit.severity, fit.answers))
    retention = {c: float(np.clip(_weighted(measured[c]), 0.0, 1.0)) if c in measured
                 else calibration.retention_at_severity_5[c] for c in CHALLENGE_CATEGORIES}
    return retention, sorted(measured)


def calibration_block(fits: list[CategoryFit], calibration: PeopleCalibration, origin: str) -> dict[str, object]:
    """A ``human_pool.calibration`` block that makes the simulated people meet the fitted figures.

    Args:
        fits: :func:`fit_categories` of the recorded answers.
        calibration: The data's current figures, kept where nothing was measured.
        origin: Where the answers came from, for the block's ``source``.
    """
    clean_fit = next((f for f in fits if f.category == CLEAN), None)
    clean = clean_fit.accuracy.estimate if clean_fit else single_person_accuracy(calibration=calibration)
    retention, measured = _retention(fits, clean, calibration)
    sure_medians = [(f.median_s.estimate / (1.0 + HARD_IMAGE_SLOWDOWN * float(doubt(f.accuracy.estimate,
                                                                                        calibration))), f.answers)
                    for f in fits]
    pooled_sigma = math.sqrt(sum((f.answers - 1) * f.sigma.estimate**2 for f in fits)
                             / sum(f.answers - 1 for f in fits))
    answers = sum(f.answers for f in fits)
    crowd = float(majority_of_3_accuracy(clean, calibration=calibration))
    if crowd <= calibration.chance:
        raise ConfigError(f"people answered clean images at chance ({clean:.3f}); allowed: answers above "
                          f"chance ({calibration.chance:g}), or nothing to calibrate")
    kept = ("clean accuracy measured" if clean_fit else "clean accuracy kept from " + calibration.source) + \
           f"; retention measured for {', '.join(measured) or 'no category'}, the rest kept"
    block: dict[str, object] = {
        "clean_majority_of_3_accuracy": round(crowd, 4),
        "retention_at_severity_5": {c: round(r, 4) for c, r in retention.items()},
        "answer_median_s": round(max(_weighted(sure_medians), MIN_ANSWER_MEDIAN_S), 4),
        "answer_sigma": round(max(pooled_sigma, MIN_ANSWER_SIGMA), 4),
        "source": f"hgen-ray calibrate-people: {answers} known answers in {origin} ({kept})",
    }
    return block

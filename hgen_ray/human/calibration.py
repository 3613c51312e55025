"""The targets a simulated person is calibrated to, with their sources.

The figures live in a :class:`PeopleCalibration`, resolved per data set from the
``human_pool.calibration`` block (:func:`resolve_calibration`). Every function
takes one and defaults to Fashion-MNIST's, the data set the sources below are about.

Accuracy on clean images. Xiao, Rasul & Vollgraf, "Fashion-MNIST" (2017), report
human performance on 1,000 random test images as 83.5%, the majority vote of 3
Mechanical Turk workers with no fashion expertise
(``human_pool.calibration.clean_majority_of_3_accuracy``). People's chances differ from image
to image (:mod:`hgen_ray.human.image_difficulty`), so the per-image chances are
solved so that the *mean* majority of 3 over the clean images is that figure.

Errors are not uniform: wrong answers stay mostly inside groups of look-alike
classes (tops: T-shirt, pullover, dress, coat, shirt; footwear: sandal, sneaker,
ankle boot), the pattern in Fashion-MNIST's published confusion matrices.

Accuracy under corruption. Geirhos et al., "Generalisation in humans and deep
neural networks" (NeurIPS 2018), Fig. 3, show human accuracy falling slowly
with additive noise, contrast reduction and low-pass filtering, and staying
nearly flat under rotation, while DNNs collapse. ``HUMAN_RETENTION_AT_SEVERITY_5``
is the share of above-chance accuracy a person keeps at our harshest severity:
rounded, approximate readings of those curves at comparable strengths, and
judgement for the categories they did not test (marked "assumed"). Geirhos
measured single observers, so the retention applies to one person's mean.

Other data. Nobody has measured people on a user's own data for us, so a key the
user leaves unset takes a generic default, and the calibration's ``source`` says
so: the crowd target is assumed, the Geirhos readings (taken on natural images)
are assumed to carry over, and wrong answers are spread evenly over the other classes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hgen_ray.config import (
    CHALLENGE_CATEGORIES,
    CHANCE_ACCURACY,
    CROWD_MAJORITY_OF_3_ACCURACY,
    ConfigError,
    PeopleCalibrationConfig,
)

__all__ = [
    "CHANCE",
    "CLASSIFY_MEDIAN_S",
    "CLASSIFY_SIGMA",
    "CROWD_MAJORITY_OF_3_ACCURACY",
    "FASHION_MNIST",
    "FASHION_MNIST_CALIBRATION",
    "GENERIC_CROWD_MAJORITY_OF_3_ACCURACY",
    "GENERIC_SOURCE",
    "HARD_IMAGE_SLOWDOWN",
    "HUMAN_RETENTION_AT_SEVERITY_5",
    "NUM_CLASSES",
    "PeopleCalibration",
    "answer_median_s",
    "doubt",
    "human_accuracy",
    "majority_of_3_accuracy",
    "mean_answer_s",
    "resolve_calibration",
    "retained_accuracy",
    "share_lost",
    "single_person_accuracy",
    "wrong_answer_distribution",
    "wrong_answers_differ",
]

_log = logging.getLogger(__name__)

FASHION_MNIST = "fashion-mnist"  # the data loader's name for Fashion-MNIST, the data the sources are about
NUM_CLASSES = 10  # Fashion-MNIST's classes
CHANCE = CHANCE_ACCURACY
LOOK_ALIKE_GROUPS: tuple[tuple[int, ...], ...] = ((0, 2, 3, 4, 6), (5, 7, 9))  # Fashion-MNIST: tops, footwear
ERRORS_WITHIN_GROUP = 0.8  # share of a person's errors that pick a look-alike class (assumed)

# Share of above-chance accuracy kept at severity 5; linear in severity between.
HUMAN_RETENTION_AT_SEVERITY_5: dict[str, float] = {
    "low_resolution": 0.65,  # Geirhos 2018 low-pass filter, mid-strength
    "small_size": 0.70,  # assumed: like low resolution, a little milder
    "motion_blur": 0.70,  # assumed: a directional low-pass
    "defocus_blur": 0.65,  # Geirhos 2018 low-pass filter, mid-strength
    "gaussian_noise": 0.60,  # Geirhos 2018 additive uniform noise, width ~0.4
    "impulse_noise": 0.70,  # Geirhos 2018 salt-and-pepper (people see through it)
    "low_light": 0.80,  # assumed: a brightness cut, contrast-like
    "low_contrast": 0.75,  # Geirhos 2018 contrast reduced to ~10%
    "fog": 0.75,  # assumed: contrast loss plus a low-frequency veil
    "occlusion": 0.75,  # assumed: a patch hides part of the item
    "jpeg": 0.90,  # assumed: block artefacts barely affect recognition
    "rotation": 0.95,  # Geirhos 2018: human accuracy nearly flat under rotation
}
assert set(HUMAN_RETENTION_AT_SEVERITY_5) == set(CHALLENGE_CATEGORIES)

# Generic defaults for data that is not Fashion-MNIST (every one assumed, and the source says so).
GENERIC_CROWD_MAJORITY_OF_3_ACCURACY = CROWD_MAJORITY_OF_3_ACCURACY  # assumed: Xiao et al.'s lay crowd, reused
GENERIC_RETENTION_AT_SEVERITY_5 = HUMAN_RETENTION_AT_SEVERITY_5  # assumed: Geirhos 2018 (natural images) carries over
GENERIC_SOURCE = "generic default (assumed): not calibrated to this data; set human_pool.calibration"
FASHION_MNIST_SOURCE = ("Fashion-MNIST: crowd Xiao et al. 2017 (83.5%, majority of 3); retention Geirhos et al. "
                        "2018 readings, some assumed; look-alike groups from its confusion matrices")
_CALIBRATION_KEY = "human_pool.calibration"
_NAMES_SHOWN = 20  # class names listed in an error before the rest are elided

# Time to classify one image: "a few seconds" (DESIGN.md), modelled lognormal around a median
# that grows with how hard the image is for people (see answer_median_s).
CLASSIFY_MEDIAN_S = 3.0  # assumed: median seconds for an image a person is sure of
CLASSIFY_SIGMA = 0.5  # assumed log-space std: a heavy right tail of slow answers
HARD_IMAGE_SLOWDOWN = 1.0  # assumed: an image a person can only guess at takes (1 + this) times as long


@dataclass(frozen=True)
class PeopleCalibration:
    """The figures one data set's people meet, and where they come from (printed in the report)."""

    num_classes: int
    clean_majority_of_3_accuracy: float  # the crowd target the clean images are solved for
    retention_at_severity_5: dict[str, float]  # per challenge category: share of above-chance accuracy kept
    look_alike_groups: tuple[tuple[int, ...], ...]  # label indices; a class in none errs evenly over the rest
    source: str
    answer_median_s: float = CLASSIFY_MEDIAN_S  # median seconds on an image a person is sure of
    answer_sigma: float = CLASSIFY_SIGMA  # lognormal log-space spread of answer times

    @property
    def chance(self) -> float:
        """What a guess gets right."""
        return 1.0 / self.num_classes

    @functools.cached_property
    def differ_by_class(self) -> np.ndarray:
        """Per true class, the chance that two wrong answers name different classes (the majority's tie rule)."""
        return np.array([wrong_answers_differ(label, self) for label in range(self.num_classes)])


FASHION_MNIST_CALIBRATION = PeopleCalibration(NUM_CLASSES, CROWD_MAJORITY_OF_3_ACCURACY,
                                              HUMAN_RETENTION_AT_SEVERITY_5, LOOK_ALIKE_GROUPS, FASHION_MNIST_SOURCE)


def _generic_calibration(num_classes: int) -> PeopleCalibration:
    return PeopleCalibration(num_classes, GENERIC_CROWD_MAJORITY_OF_3_ACCURACY, GENERIC_RETENTION_AT_SEVERITY_5,
                             (), GENERIC_SOURCE)


def _names(class_names: Sequence[str]) -> str:
    shown = ", ".join(class_names[:_NAMES_SHOWN])
    return shown if len(class_names) <= _NAMES_SHOWN else f"{shown}, ... ({len(class_names)} in all)"


def _group_indices(groups: tuple[tuple[str, ...], ...], class_names: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Look-alike groups of class names as label indices; every name a class of the data, in one group at most."""
    key = f"{_CALIBRATION_KEY}.look_alike_groups"
    index = {name: label for label, name in enumerate(class_names)}
    seen: set[str] = set()
    for group in groups:
        unknown = [name for name in group if name not in index]
        if unknown:
            raise ConfigError(f"{key}: {unknown[0]!r} is not a class of this data; allowed: {_names(class_names)}")
        if len(set(group)) < 2:
            raise ConfigError(f"{key}: the group {list(group)} names fewer than 2 classes; a group lists look-alikes")
        for name in group:
            if name in seen:
                raise ConfigError(f"{key}: {name!r} is named twice; a class belongs to one group at most")
            seen.add(name)
    return tuple(tuple(index[name] for name in group) for group in groups)


def _describe(block: PeopleCalibrationConfig, given: list[str], defaulted: list[str], default_source: str) -> str:
    """Where each figure comes from: the user's block for the keys set, the defaults' source for the rest."""
    user = f"{_CALIBRATION_KEY}: {block.source or 'no source given'}"
    if not defaulted:
        return user
    if not given:
        return default_source
    return f"{user} ({', '.join(given)}); {default_source} ({', '.join(defaulted)})"


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` the first time this process sees it: one warning per data set, not per trial."""
    if message not in _warned:
        _warned.add(message)
        _log.warning(message)


def resolve_calibration(block: PeopleCalibrationConfig | None, dataset: str,
                        class_names: Sequence[str]) -> PeopleCalibration:
    """The figures people meet on this data: the keys the user set, sourced or generic defaults for the rest.

    Args:
        block: ``human_pool.calibration``; ``None`` sets nothing.
        dataset: The data loader's name; ``"fashion-mnist"`` takes the sourced values for unset keys.
        class_names: The data's classes, in label order.

    Raises:
        ConfigError: The crowd target is not above chance, or a look-alike group names a class the data lacks.
        ValueError: Fewer than 2 classes, or Fashion-MNIST with other than its 10.
    """
    block = block or PeopleCalibrationConfig()
    if len(class_names) < 2:
        raise ValueError(f"people need 2 or more classes to choose from, got {len(class_names)}")
    if dataset == FASHION_MNIST and len(class_names) != NUM_CLASSES:
        raise ValueError(f"{FASHION_MNIST} has {NUM_CLASSES} classes, got {len(class_names)}")
    defaults = FASHION_MNIST_CALIBRATION if dataset == FASHION_MNIST else _generic_calibration(len(class_names))
    keys = ("clean_majority_of_3_accuracy", "retention_at_severity_5", "look_alike_groups")
    # answer times are named only when given: their defaults are the assumed CLASSIFY_* constants on any data
    given = [key for key in (*keys, "answer_median_s", "answer_sigma") if getattr(block, key) is not None]
    defaulted = [key for key in keys if key not in given]
    target, retention, groups = (block.clean_majority_of_3_accuracy, block.retention_at_severity_5,
                                 block.look_alike_groups)
    calibration = PeopleCalibration(
        num_classes=len(class_names),
        clean_majority_of_3_accuracy=defaults.clean_majority_of_3_accuracy if target is None else target,
        retention_at_severity_5=defaults.retention_at_severity_5 if retention is None else retention,
        look_alike_groups=defaults.look_alike_groups if groups is None else _group_indices(groups, class_names),
        source=_describe(block, given, defaulted, defaults.source),
        answer_median_s=defaults.answer_median_s if block.answer_median_s is None else block.answer_median_s,
        answer_sigma=defaults.answer_sigma if block.answer_sigma is None else block.answer_sigma,
    )
    if calibration.clean_majority_of_3_accuracy <= calibration.chance:
        raise ConfigError(f"{_CALIBRATION_KEY}.clean_majority_of_3_accuracy: {calibration.clean_majority_of_3_accuracy}"
                          f" is not above chance ({calibration.chance:g} for {calibration.num_classes} classes); "
                          f"allowed: ({calibration.chance:g}, 1]")
    if defaulted and dataset != FASHION_MNIST:
        _warn_once(f"people on {dataset!r}: {', '.join(defaulted)} from a {GENERIC_SOURCE}")
    return calibration


def wrong_answer_distribution(true_label: int,
                              calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> np.ndarray:
    """Probabilities of each wrong class, given that a person errs: mostly look-alikes, else even."""
    group = next((g for g in calibration.look_alike_groups if true_label in g), ())
    look_alikes = [c for c in group if c != true_label]
    others = [c for c in range(calibration.num_classes) if c != true_label and c not in look_alikes]
    probabilities = np.zeros(calibration.num_classes)
    within = (ERRORS_WITHIN_GROUP if others else 1.0) if look_alikes else 0.0
    if look_alikes:
        probabilities[look_alikes] = within / len(look_alikes)
    if others:
        probabilities[others] = (1.0 - within) / len(others)
    return probabilities


def wrong_answers_differ(true_label: int, calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """Chance that two wrong answers to an image of ``true_label`` name different classes."""
    return 1.0 - float(np.sum(wrong_answer_distribution(true_label, calibration) ** 2))


def _majority_of_3(p: np.ndarray, differ: np.ndarray | np.floating) -> np.ndarray:
    one_right_tie = p * (1 - p) ** 2 * differ  # all three differ and the right voter came first
    return p**3 + 3 * p**2 * (1 - p) + one_right_tie


def majority_of_3_accuracy(person_accuracy: float | np.ndarray, labels: np.ndarray | None = None,
                           calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> np.ndarray | float:
    """Exact accuracy of a 3-vote majority of people who each answer right with ``person_accuracy``.

    As in the crowd study, three different answers go to the first vote. With ``labels``,
    ``person_accuracy`` is per image; without, the mean over the classes is returned.
    """
    p = np.asarray(person_accuracy, dtype=np.float64)
    differ = calibration.differ_by_class
    exact = _majority_of_3(p, differ[labels] if labels is not None else differ.mean())
    return exact if labels is not None else float(exact)


@functools.cache
def _single_person_accuracy(target: float, chance: float, mean_differ: np.float64) -> float:
    """Bisection on the per-person accuracy; cached because the detectors ask once per cell."""
    low, high = chance, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        reached = float(_majority_of_3(np.asarray(middle, dtype=np.float64), mean_differ))
        low, high = (middle, high) if reached < target else (low, middle)
    return (low + high) / 2


def single_person_accuracy(target: float | None = None,
                           calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """Per-person accuracy whose majority of 3 reaches ``target`` when every image is equally hard.

    ``target`` defaults to the calibration's crowd figure.
    """
    target = calibration.clean_majority_of_3_accuracy if target is None else target
    return _single_person_accuracy(target, calibration.chance, calibration.differ_by_class.mean())


def share_lost(category: str, severity: int, calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """Share of a person's above-chance accuracy lost on ``category`` at ``severity`` (linear in severity)."""
    return 0.0 if category == "clean" else (1.0 - calibration.retention_at_severity_5[category]) * severity / 5


def retained_accuracy(clean_accuracy: float, category: str, severity: int,
                      calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """One person's mean accuracy on ``category`` at ``severity``, from their clean mean (the retention table)."""
    chance = calibration.chance
    return chance + (clean_accuracy - chance) * (1.0 - share_lost(category, severity, calibration))


def human_accuracy(category: str, severity: int, clean_majority_of_3: float | None = None,
                   calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """A category-level chance of the right class, where no per-image difficulty is known (the detectors' cells).

    Every image equally hard, so one person's clean accuracy is the one whose majority of 3
    reaches ``clean_majority_of_3`` (default: the calibration's; about 0.77 for the crowd's 83.5%).
    """
    clean = single_person_accuracy(clean_majority_of_3, calibration)
    return retained_accuracy(clean, category, severity, calibration)


def doubt(person_accuracy: float | np.ndarray,
          calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float | np.ndarray:
    """How close one person is to guessing: 0 when always right, 1 at chance (clipped)."""
    return np.clip((1.0 - np.asarray(person_accuracy)) / (1.0 - calibration.chance), 0.0, 1.0)


def answer_median_s(person_accuracy: float | np.ndarray,
                    calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float | np.ndarray:
    """Median seconds to classify an image on which one person is right with ``person_accuracy``.

    Linear in how close the person is to guessing: the calibration's ``answer_median_s`` (default
    ``CLASSIFY_MEDIAN_S``) when sure, ``(1 + HARD_IMAGE_SLOWDOWN)`` times that at chance.
    """
    median = calibration.answer_median_s * (1.0 + HARD_IMAGE_SLOWDOWN * doubt(person_accuracy, calibration))
    return float(median) if np.ndim(median) == 0 else median


def mean_answer_s(severity: int, clean_majority_of_3: float | None = None,
                  calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> float:
    """One person's mean seconds per answer at the 12 categories' mean accuracies (lognormal mean).

    A projection for the controller's labour cap, before any image is seen. Deferred images are
    harder than the average one, so it is optimistic; the cap keeps a margin (``LABOR_MARGIN``).
    """
    spread = float(np.exp(calibration.answer_sigma**2 / 2))
    medians = [answer_median_s(human_accuracy(c, severity, clean_majority_of_3, calibration), calibration)
               for c in CHALLENGE_CATEGORIES]
    return float(np.mean(medians)) * spread

"""The targets a simulated person is calibrated to, with their sources.

Accuracy on clean images. Xiao, Rasul & Vollgraf, "Fashion-MNIST" (2017), report
human performance on 1,000 random test images as 83.5%, the majority vote of 3
Mechanical Turk workers with no fashion expertise
(``human_pool.clean_majority_of_3_accuracy``). People's chances differ from image
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
"""

from __future__ import annotations

import functools

import numpy as np

from hgen_ray.config import CHALLENGE_CATEGORIES, CHANCE_ACCURACY, CROWD_MAJORITY_OF_3_ACCURACY

__all__ = [
    "CHANCE",
    "CLASSIFY_MEDIAN_S",
    "CLASSIFY_SIGMA",
    "CROWD_MAJORITY_OF_3_ACCURACY",
    "HARD_IMAGE_SLOWDOWN",
    "HUMAN_RETENTION_AT_SEVERITY_5",
    "NUM_CLASSES",
    "answer_median_s",
    "human_accuracy",
    "majority_of_3_accuracy",
    "mean_answer_s",
    "retained_accuracy",
    "share_lost",
    "single_person_accuracy",
    "wrong_answer_distribution",
    "wrong_answers_differ",
]

NUM_CLASSES = 10
CHANCE = CHANCE_ACCURACY
LOOK_ALIKE_GROUPS: tuple[tuple[int, ...], ...] = ((0, 2, 3, 4, 6), (5, 7, 9), (1,), (8,))
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

# Time to classify one image: "a few seconds" (DESIGN.md), modelled lognormal around a median
# that grows with how hard the image is for people (see answer_median_s).
CLASSIFY_MEDIAN_S = 3.0  # assumed: median seconds for an image a person is sure of
CLASSIFY_SIGMA = 0.5  # assumed log-space std: a heavy right tail of slow answers
HARD_IMAGE_SLOWDOWN = 1.0  # assumed: an image a person can only guess at takes (1 + this) times as long


def wrong_answer_distribution(true_label: int) -> np.ndarray:
    """Probabilities of each wrong class, given that a person errs."""
    group = next(g for g in LOOK_ALIKE_GROUPS if true_label in g)
    look_alikes = [c for c in group if c != true_label]
    others = [c for c in range(NUM_CLASSES) if c != true_label and c not in look_alikes]
    probabilities = np.zeros(NUM_CLASSES)
    within = ERRORS_WITHIN_GROUP if look_alikes else 0.0
    if look_alikes:
        probabilities[look_alikes] = within / len(look_alikes)
    probabilities[others] = (1.0 - within) / len(others)
    return probabilities


def wrong_answers_differ(true_label: int) -> float:
    """Chance that two wrong answers to an image of ``true_label`` name different classes."""
    return 1.0 - float(np.sum(wrong_answer_distribution(true_label) ** 2))


_DIFFER = np.array([wrong_answers_differ(label) for label in range(NUM_CLASSES)])


def majority_of_3_accuracy(person_accuracy: float | np.ndarray, labels: np.ndarray | None = None) -> np.ndarray | float:
    """Exact accuracy of a 3-vote majority of people who each answer right with ``person_accuracy``.

    As in the crowd study, three different answers go to the first vote. With ``labels``,
    ``person_accuracy`` is per image; without, the mean over the ten classes is returned.
    """
    p = np.asarray(person_accuracy, dtype=np.float64)
    differ = _DIFFER[labels] if labels is not None else _DIFFER.mean()
    one_right_tie = p * (1 - p) ** 2 * differ  # all three differ and the right voter came first
    exact = p**3 + 3 * p**2 * (1 - p) + one_right_tie
    return exact if labels is not None else float(exact)


@functools.cache
def single_person_accuracy(target: float = CROWD_MAJORITY_OF_3_ACCURACY) -> float:
    """Per-person accuracy whose majority of 3 reaches ``target`` when every image is equally hard (bisection)."""
    low, high = CHANCE, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if majority_of_3_accuracy(middle) < target else (low, middle)
    return (low + high) / 2


def share_lost(category: str, severity: int) -> float:
    """Share of a person's above-chance accuracy lost on ``category`` at ``severity`` (linear in severity)."""
    return 0.0 if category == "clean" else (1.0 - HUMAN_RETENTION_AT_SEVERITY_5[category]) * severity / 5


def retained_accuracy(clean_accuracy: float, category: str, severity: int) -> float:
    """One person's mean accuracy on ``category`` at ``severity``, from their clean mean (Geirhos retention)."""
    return CHANCE + (clean_accuracy - CHANCE) * (1.0 - share_lost(category, severity))


def human_accuracy(category: str, severity: int, clean_majority_of_3: float = CROWD_MAJORITY_OF_3_ACCURACY) -> float:
    """A category-level chance of the right class, where no per-image difficulty is known (the detectors' cells).

    Every image equally hard, so one person's clean accuracy is the one whose majority of 3
    reaches ``clean_majority_of_3`` (about 0.77 for the crowd's 83.5%).
    """
    return retained_accuracy(single_person_accuracy(clean_majority_of_3), category, severity)


def answer_median_s(person_accuracy: float | np.ndarray) -> float | np.ndarray:
    """Median seconds to classify an image on which one person is right with ``person_accuracy``.

    Linear in how close the person is to guessing: ``CLASSIFY_MEDIAN_S`` when sure,
    ``(1 + HARD_IMAGE_SLOWDOWN)`` times that at chance.
    """
    doubt = (1.0 - np.asarray(person_accuracy)) / (1.0 - CHANCE)
    median = CLASSIFY_MEDIAN_S * (1.0 + HARD_IMAGE_SLOWDOWN * np.clip(doubt, 0.0, 1.0))
    return float(median) if np.ndim(median) == 0 else median


def mean_answer_s(severity: int, clean_majority_of_3: float = CROWD_MAJORITY_OF_3_ACCURACY) -> float:
    """One person's mean seconds per answer at the 12 categories' mean accuracies (lognormal mean).

    A projection for the controller's labour cap, before any image is seen. Deferred images are
    harder than the average one, so it is optimistic; the cap keeps a margin (``LABOR_MARGIN``).
    """
    spread = float(np.exp(CLASSIFY_SIGMA**2 / 2))
    medians = [answer_median_s(human_accuracy(c, severity, clean_majority_of_3)) for c in CHALLENGE_CATEGORIES]
    return float(np.mean(medians)) * spread

"""How accurate and how fast a simulated person is, with the sources.

Accuracy on clean images. Xiao, Rasul & Vollgraf, "Fashion-MNIST" (2017), report
human performance on 1,000 random test images as 83.5%, the majority vote of 3
Mechanical Turk workers with no fashion expertise. One person is less accurate
than that vote, so :func:`single_person_accuracy` solves for the per-person
accuracy whose simulated majority of 3 (under our error model) gives 83.5%.

Errors are not uniform: wrong answers stay mostly inside groups of look-alike
classes (tops: T-shirt, pullover, dress, coat, shirt; footwear: sandal, sneaker,
ankle boot), the pattern in Fashion-MNIST's published confusion matrices.

Accuracy under corruption. Geirhos et al., "Generalisation in humans and deep
neural networks" (NeurIPS 2018), Fig. 3, show human accuracy falling slowly
with additive noise, contrast reduction and low-pass filtering, and staying
nearly flat under rotation, while DNNs collapse. ``HUMAN_RETENTION_AT_SEVERITY_5``
is the share of above-chance accuracy a person keeps at our harshest severity:
rounded, approximate readings of those curves at comparable strengths, and
judgement for the categories they did not test (marked "assumed").
"""

from __future__ import annotations

import numpy as np

from hgen_ray.config import CHALLENGE_CATEGORIES

__all__ = [
    "CLASSIFY_MEDIAN_S",
    "CLASSIFY_SIGMA",
    "CROWD_MAJORITY_OF_3_ACCURACY",
    "HUMAN_RETENTION_AT_SEVERITY_5",
    "human_accuracy",
    "majority_of_3_accuracy",
    "mean_answer_s",
    "response_median_s",
    "single_person_accuracy",
    "wrong_answer_distribution",
]

NUM_CLASSES = 10
CHANCE = 1.0 / NUM_CLASSES
CROWD_MAJORITY_OF_3_ACCURACY = 0.835  # Xiao et al. 2017, Fashion-MNIST benchmark, human row
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

# Time to classify one image: "a few seconds" (DESIGN.md), modelled lognormal.
CLASSIFY_MEDIAN_S = 3.0  # median seconds per clean image
CLASSIFY_SIGMA = 0.5  # log-space std: a heavy right tail of slow answers
SLOWDOWN_PER_SEVERITY = 0.1  # assumed: +10% median time per severity level on corrupted images


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


def majority_of_3_accuracy(person_accuracy: float) -> float:
    """Exact accuracy of a 3-vote majority, ties (all differ) going to the first vote."""
    p = person_accuracy
    totals = []
    for label in range(NUM_CLASSES):
        wrong = wrong_answer_distribution(label)
        wrongs_differ = 1.0 - float(np.sum(wrong**2))
        one_right_tie = 3 * p * (1 - p) ** 2 * wrongs_differ / 3  # the right voter must be first
        totals.append(p**3 + 3 * p**2 * (1 - p) + one_right_tie)
    return float(np.mean(totals))


def single_person_accuracy(target: float = CROWD_MAJORITY_OF_3_ACCURACY) -> float:
    """Per-person clean accuracy whose majority of 3 reaches ``target`` (bisection)."""
    low, high = CHANCE, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if majority_of_3_accuracy(middle) < target else (low, middle)
    return (low + high) / 2


PERSON_CLEAN_ACCURACY = single_person_accuracy()  # about 0.77


def human_accuracy(category: str, severity: int) -> float:
    """One person's chance of the right class on a ``category`` image at ``severity``."""
    if category == "clean":
        return PERSON_CLEAN_ACCURACY
    lost = (1.0 - HUMAN_RETENTION_AT_SEVERITY_5[category]) * severity / 5
    return CHANCE + (PERSON_CLEAN_ACCURACY - CHANCE) * (1.0 - lost)


def mean_answer_s(severity: int) -> float:
    """One person's mean seconds per classification, averaged over the 12 categories (lognormal mean)."""
    spread = float(np.exp(CLASSIFY_SIGMA**2 / 2))
    return float(np.mean([response_median_s(c, severity) for c in CHALLENGE_CATEGORIES])) * spread


def response_median_s(category: str, severity: int) -> float:
    """Median seconds to classify one image of this category and severity."""
    if category == "clean":
        return CLASSIFY_MEDIAN_S
    return CLASSIFY_MEDIAN_S * (1.0 + SLOWDOWN_PER_SEVERITY * severity)

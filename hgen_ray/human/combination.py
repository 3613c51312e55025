"""How a chain's answers and the network's own belief make one final class.

Two rules (``hgen_ray.config.COMBINATION_RULES``):

- ``replace``: people's answers replace the network's. The chain's plurality wins;
  a tie goes to the class the network finds likelier (:func:`decide`).
- ``bayes``: people's answers join the network's. The final class is the posterior's
  argmax, ``argmax_y p(y | x) * prod_i P(answer_i | y)`` (:func:`bayes_decide`),
  with ``p(y | x)`` the gate's calibrated softmax and ``P(answer | y)`` the very
  confusion model the simulated people answer by (:func:`people_likelihoods`): right
  with the category's mean one-person accuracy ``a``, else a wrong class drawn from
  :func:`~hgen_ray.human.calibration.wrong_answer_distribution`. People are taken as
  independent given the true class, as the simulator draws them.

Why combine rather than replace: a network that is right and sure should outvote one
tired person, and a person should outvote a network that is unsure. Kerrigan, Smyth &
Steyvers, "Combining Human Predictions with Model Probabilities via Confusion Matrices
and Calibration" (NeurIPS 2021), and Steyvers, Tejeda, Kerrigan & Smyth, "Bayesian
modeling of human-AI complementarity" (PNAS 119(11), 2022), show this product of the
model's calibrated probabilities and people's confusion matrix beats either alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from hgen_ray.config import COMBINATION_RULES
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION, PeopleCalibration, wrong_answer_distribution

__all__ = ["LOG_FLOOR", "bayes_decide", "check_combination", "combine_answers", "decide", "people_likelihoods"]

# A probability of exactly 0 (a softmax underflow, a class no one confuses) would veto a class outright
# and make ties of -inf; clipping to a tiny floor keeps the log finite and lets the other evidence decide.
LOG_FLOOR = 1e-12


def check_combination(rule: str) -> None:
    """Raises ValueError unless ``rule`` is one of ``COMBINATION_RULES``."""
    if rule not in COMBINATION_RULES:
        raise ValueError(f"unknown combination rule {rule!r}; allowed: {', '.join(COMBINATION_RULES)}")


def decide(labels: Sequence[int], network_probabilities: Sequence[float]) -> int:
    """The ``replace`` rule: the plurality of people's labels; a tie goes to the class the network finds likelier."""
    counts = Counter(labels)
    best = max(counts.values())
    tied = [label for label, count in counts.items() if count == best]
    return max(tied, key=lambda label: network_probabilities[label])


def people_likelihoods(category_accuracy: float,
                       calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> np.ndarray:
    """One person's confusion matrix, ``[true class, answer] -> P(answer | true class)``; each row sums to 1.

    Args:
        category_accuracy: One person's mean chance of the right class on the category (``a``).
        calibration: The data's classes and look-alikes, which decide where wrong answers go.
    """
    if not 0.0 <= category_accuracy <= 1.0:
        raise ValueError(f"category_accuracy={category_accuracy} must be a probability in [0, 1]")
    rows = [(1.0 - category_accuracy) * wrong_answer_distribution(label, calibration)
            for label in range(calibration.num_classes)]
    likelihoods = np.stack(rows)
    np.fill_diagonal(likelihoods, category_accuracy)  # wrong_answer_distribution is 0 on the true class
    return likelihoods


def bayes_decide(labels: Sequence[int], network_probabilities: Sequence[float], category_accuracy: float,
                 calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> int:
    """The ``bayes`` rule: the class of highest posterior given the network and every answer (in log space).

    Args:
        labels: The chain's answers.
        network_probabilities: The gate's calibrated softmax, the prior ``p(y | x)``.
        category_accuracy: One person's mean accuracy on the sample's category.
        calibration: The data's classes and look-alikes.
    """
    prior = np.asarray(network_probabilities, dtype=np.float64)
    if prior.shape != (calibration.num_classes,):
        raise ValueError(f"network_probabilities has {prior.size} classes; the people's calibration has "
                         f"{calibration.num_classes}")
    log_likelihoods = np.log(np.clip(people_likelihoods(category_accuracy, calibration), LOG_FLOOR, None))
    log_posterior = np.log(np.clip(prior, LOG_FLOOR, None)) + log_likelihoods[:, list(labels)].sum(axis=1)
    return int(np.argmax(log_posterior))


def combine_answers(labels: Sequence[int], network_probabilities: Sequence[float], rule: str,
                    category_accuracy: float | None = None,
                    calibration: PeopleCalibration = FASHION_MNIST_CALIBRATION) -> int:
    """A deferred sample's final class under ``rule``.

    Args:
        labels: The chain's answers, in the order given.
        network_probabilities: The gate's calibrated softmax over the classes.
        rule: ``"replace"`` or ``"bayes"``.
        category_accuracy: One person's mean accuracy on the sample's category; ``bayes`` needs it.
        calibration: The data's classes and look-alikes (``bayes`` only).

    Raises:
        ValueError: The rule is unknown, or ``bayes`` is asked without a ``category_accuracy``.
    """
    check_combination(rule)
    if rule == "replace":
        return decide(labels, network_probabilities)
    if category_accuracy is None:
        raise ValueError("combine='bayes' needs the category's one-person accuracy; category_accuracy is None")
    return bayes_decide(labels, network_probabilities, category_accuracy, calibration)

"""How many people a served sample needs, and how their answers and the network's make its final class.

The same rules the simulated pool follows (:mod:`hgen_ray.human.pool`): a ``majority`` chain asks all k;
a ``sequential`` chain of 3 asks two and a third only when they disagree. The answers become one class by
the H-DNN's ``combine`` rule (:func:`hgen_ray.human.combination.combine_answers`). A served image's
category is unknown, so ``bayes`` takes one person's mean accuracy over the challenge mix the search
assumed (its 13 categories at the data's severity), the figure the search's people averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hgen_ray.config import CHALLENGE_CATEGORIES, HumanChoice
from hgen_ray.human.calibration import PeopleCalibration, human_accuracy
from hgen_ray.human.combination import combine_answers

__all__ = ["ChainRule", "mean_person_accuracy"]


def mean_person_accuracy(severity: int, calibration: PeopleCalibration) -> float:
    """One person's accuracy averaged over clean and the 12 challenges at ``severity``."""
    return float(np.mean([human_accuracy(c, severity, calibration=calibration)
                          for c in ("clean", *CHALLENGE_CATEGORIES)]))


@dataclass(frozen=True)
class ChainRule:
    mechanism: str  # sequential | majority
    k: int  # people in the chain
    combine: str  # replace | bayes
    person_accuracy: float  # bayes's confusion model
    calibration: PeopleCalibration

    @classmethod
    def of(cls, human: HumanChoice, severity: int, calibration: PeopleCalibration) -> "ChainRule":
        return cls(human.mechanism, human.k, human.combine, mean_person_accuracy(severity, calibration), calibration)

    def needed(self, labels: Sequence[int]) -> int:
        """How many answers the chain wants, given those so far."""
        if self.mechanism == "majority" or self.k < 3:
            return self.k
        return 3 if len(labels) >= 2 and labels[0] != labels[1] else 2

    def done(self, labels: Sequence[int]) -> bool:
        return len(labels) >= self.needed(labels)

    def final(self, labels: Sequence[int], probabilities: Sequence[float]) -> int:
        return combine_answers(labels, probabilities, self.combine, self.person_accuracy, self.calibration)

"""The Architecture interface: what an H-DNN brings to a search, a trial and a saved H-DNN.

Everything that differs between H-DNNs lives behind this one interface, in the
style of Optuna's ``BaseSampler``: abstract core methods every architecture
must write, and hooks with defaults it may override. The search, the trial's
evaluation path and the saved H-DNN call only these methods, so they read the
same for every architecture, and adding one is a folder under
``hgen_ray/architectures/`` plus a line in its registry (:mod:`hgen_ray.architectures`).

The three stages:

- **Setup** (once per search): :meth:`load_data`, :meth:`load_base`,
  :meth:`compressible_layers`, :meth:`input_sample`, :meth:`labour_curves` and
  :meth:`reference_candidates`.
- **Trial** (once per candidate): :meth:`compress` (calling the generic
  :mod:`hgen_ray.compress`, which knows no model or data), :meth:`fit_gate`,
  :meth:`tau_for_deferral`, and :meth:`run_with_people`, whose per-category outcomes
  carry the accuracy.
- **Saved H-DNN**: :meth:`rebuild`, :meth:`predict`, :attr:`gate_rule` and :meth:`export`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hgen_ray.architectures.gate import FittedGate
from hgen_ray.config import Candidate, ConfigError, ExperimentConfig, FinetuneConfig, HumanChoice
from hgen_ray.data.fashion_mnist import CLASS_NAMES
from hgen_ray.human import HumanPool
from hgen_ray.human.calibration import FASHION_MNIST, PeopleCalibration, resolve_calibration

__all__ = ["Architecture", "CategoryOutcome", "Prediction", "TAU_GRID"]

TAU_GRID = np.linspace(0.0, 1.0, 101)  # the taus (or, deferring by rate, the shares d) a labour curve is given at
ONNX_OPSET = 18
FASHION_MNIST_INPUT_SHAPE = (1, 28, 28)


@dataclass
class CategoryOutcome:
    """One challenge category after the network and its people; arrays hold one entry per sample."""

    accuracy: float  # with people (classification accuracy, or mAP@0.5 for a detector)
    dnn_accuracy: float  # the network alone
    deferred: np.ndarray  # bool: people looked at this sample
    labor_s: np.ndarray  # person-seconds spent on it
    latency_s: np.ndarray  # arrival to final answer
    wait_s: np.ndarray  # of that, waiting for a free person
    tasks: np.ndarray | None = None  # people's tasks on it (a detector's cells checked or boxes drawn)
    dnn_correct: np.ndarray | None = None  # bool: the network alone was right (classifiers; None for detectors)
    gate_confidence: np.ndarray | None = None  # the gate's score, low = doubt (classifiers; None for detectors)


@dataclass
class Prediction:
    """A saved H-DNN's answer for a batch: the network's output and which samples go to people."""

    answers: torch.Tensor | list[dict[str, torch.Tensor]]  # classes, or detections per image
    to_people: torch.Tensor  # bool per sample


class Architecture(ABC):
    """One H-DNN: a network, its data, its gate and how people help it.

    Subclasses set :attr:`name` (the ``model.name`` users write), :attr:`gate_rule` (the
    sentence ``gate.json`` carries), :attr:`output_names` (the ONNX outputs), :attr:`gate_scores`
    (what its gate may rank by), :attr:`rate_scores` (those whose tau is set from a share d) and whether it has
    class probabilities.
    """

    name: ClassVar[str]
    gate_rule: ClassVar[str]
    output_names: ClassVar[tuple[str, ...]]
    gate_scores: ClassVar[tuple[str, ...]] = ("msp",)
    rate_scores: ClassVar[tuple[str, ...]] = ()  # scores whose candidates name a share d to defer, not a raw tau
    class_probabilities: ClassVar[bool] = False  # people's answers can be combined with the network's (bayes)

    def check_config(self, config: ExperimentConfig) -> None:
        """Refuse model settings this architecture cannot use (:class:`ConfigError`, one line), before any work."""

    # --- setup ---------------------------------------------------------------------------------

    @abstractmethod
    def load_data(self, config: ExperimentConfig, split: str) -> Any:
        """Train data plus one split's challenge sets: ``validation`` for a search, ``test`` for the report.

        Test images must be read only when ``split == "test"``.
        """

    def data_for(self, config: ExperimentConfig, split: str, data: Any | None) -> Any:
        """``data`` when it holds ``split``'s challenge sets, else the data loaded for ``split``."""
        return data if data is not None and self.data_split(data) == split else self.load_data(config, split)

    @abstractmethod
    def data_split(self, data: Any) -> str:
        """Which split's challenge sets ``data`` holds (``test`` data also holds validation's)."""

    @abstractmethod
    def load_base(self, config: ExperimentConfig, data: Any) -> nn.Module:
        """The trained base network, cached so that every trial only loads it."""

    @abstractmethod
    def compressible_layers(self, config: ExperimentConfig, base: nn.Module, data: Any) -> dict[str, str]:
        """Layer name -> ``conv`` (channel pruning) or ``fc`` (SVD), in the order an episode walks them."""

    def declared_layers(self, config: ExperimentConfig) -> dict[str, str] | None:
        """The compressible layers when they are known without a network (so candidates are checked before any
        work); None when they are found on the network."""
        return None

    @abstractmethod
    def input_sample(self, config: ExperimentConfig, data: Any) -> torch.Tensor:
        """One random input of the network's shape (batch 1), for tracing and FLOP counts."""

    @abstractmethod
    def profile_sample(self, data: Any) -> torch.Tensor:
        """One real clean validation input (batch 1) that latency and energy are measured on: a detector's
        work depends on what the image holds, so a random input would not do."""

    def trial_data(self, config: ExperimentConfig, data: Any) -> Any:
        """What every trial of a search is shipped: by default all of the validation data."""
        return data

    @abstractmethod
    def labour_curves(self, config: ExperimentConfig, base: nn.Module, data: Any,
                      scores: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Per gate score, one person's mean seconds per challenge sample at each level of :data:`TAU_GRID`
        (a tau, or a share d when deferring by rate), for the base network's gate.

        The search bounds the level with it so that every strategy's labour fits ``L_c`` (or the pool's
        capacity, which is always finite). Measured on the validation challenge sets only.
        """

    def people_calibration(self, config: ExperimentConfig, data: Any) -> PeopleCalibration:
        """What the simulated people are calibrated to on this data; Fashion-MNIST's sourced figures by default."""
        return resolve_calibration(config.human_pool.calibration, FASHION_MNIST, CLASS_NAMES)

    @abstractmethod
    def draw_preview(self, config: ExperimentConfig, data: Any, out: Path) -> Path:
        """A PNG of the challenge categories on this data, for ``hgen-ray show-data``."""

    def reference_candidates(self, config: ExperimentConfig) -> dict[str, Candidate]:
        """``original`` (uncompressed, no people) and ``human_only`` (every sample to one person)."""
        return {"original": Candidate(), "human_only": Candidate(human=HumanChoice("sequential", tau=1.0, k=1))}

    def max_tau(self, config: ExperimentConfig) -> float:
        """The largest tau the search may propose."""
        return 1.0

    def defers_by_rate(self, score: str) -> bool:
        """Whether candidates gating by ``score`` name a share d of the validation challenges to defer."""
        return score in self.rate_scores

    def searched_scores(self, config: ExperimentConfig) -> tuple[str, ...]:
        """The gate scores the search may choose: ``gate.scores``, or all this architecture has."""
        return config.gate.scores or self.gate_scores

    def usable_scores(self, config: ExperimentConfig, base: nn.Module) -> tuple[str, ...]:
        """The searched scores this base network can give."""
        return self.searched_scores(config)

    def check_data(self, config: ExperimentConfig, data: Any) -> None:
        """Refuse, in one line and before any work, gate settings this data cannot serve."""

    def combination(self, config: ExperimentConfig) -> str:
        """How people's answers count: ``gate.combine``, or bayes where the network gives class probabilities."""
        return config.gate.combine or ("bayes" if self.class_probabilities else "replace")

    def check_gate(self, config: ExperimentConfig) -> None:
        """Refuse a ``gate`` section (or the config's candidate) this architecture cannot use, in one line."""
        unknown = [s for s in (*(config.gate.scores or ()), config.candidate.human.gate) if s not in self.gate_scores]
        if unknown:
            key = "gate.scores" if unknown[0] in (config.gate.scores or ()) else "candidate.human.gate"
            raise ConfigError(f"{key}: {unknown[0]!r} is not a gate score of {self.name}; "
                              f"allowed: {', '.join(self.gate_scores)}")
        if "bayes" in (config.gate.combine, config.candidate.human.combine) and not self.class_probabilities:
            key = "gate.combine" if config.gate.combine == "bayes" else "candidate.human.combine"
            raise ConfigError(f"{key}: bayes combines people with the network's class probabilities, which {self.name} "
                              "does not give; allowed: replace")

    def check_candidate(self, candidate: Candidate, config: ExperimentConfig) -> None:
        """Refuse a candidate this architecture cannot run (:class:`ConfigError`, one line)."""
        human = candidate.human
        if human.gate not in self.gate_scores:
            raise ConfigError(f"candidate.human.gate: {human.gate!r} is not a gate score of {self.name}; "
                              f"allowed: {', '.join(self.gate_scores)}")
        if human.combine == "bayes" and not self.class_probabilities:
            raise ConfigError(f"candidate.human.combine: bayes needs class probabilities, which {self.name} does not "
                              "give; allowed: replace")
        if human.deferral is not None and not self.defers_by_rate(human.gate):
            raise ConfigError(f"candidate.human.deferral: {self.name}'s {human.gate} gate takes a raw threshold; "
                              "allowed: null (set tau)")
        if not self.defers_by_rate(human.gate) and not 0.0 <= human.tau <= 1.0:
            raise ConfigError(f"candidate.human.tau: {human.tau} is out of range [0.0, 1.0] for {self.name}'s "
                              "score threshold")
        if human.asks_people and human.k > config.human_pool.size:
            raise ConfigError(f"candidate.human.k: {human.k} people per chain exceeds human_pool.size "
                              f"{config.human_pool.size}; allowed: 1 to {min(3, config.human_pool.size)}")

    # --- trial ---------------------------------------------------------------------------------

    @abstractmethod
    def compress(self, config: ExperimentConfig, base: nn.Module, candidate: Candidate, data: Any,
                 finetune: FinetuneConfig) -> nn.Module:
        """A compressed, fine-tuned copy of ``base``; ``base`` itself is untouched."""

    def fit_gate(self, config: ExperimentConfig, model: nn.Module, data: Any, score: str) -> FittedGate:
        """The gate of ``score`` fitted to ``model`` on validation (and clean train) data, after fine-tuning."""
        return FittedGate(score)

    def tau_for_deferral(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, data: Any,
                         deferral: float) -> float:
        """The tau that defers a share ``deferral`` of the 12 validation challenges (scores deferring by rate).

        Raises:
            ConfigError: This gate's score takes a raw tau.
        """
        raise ConfigError(f"candidate.human.deferral: {self.name}'s {gate.score} gate takes a raw threshold; "
                          "allowed: null (set tau)")

    def gate_curves(self, config: ExperimentConfig, model: nn.Module, data: Any,
                    scores: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per gate score fitted on validation: its confidence and the network's correctness on every sample of
        the 12 challenges of ``data``'s split, pooled (a risk-coverage curve's input); {} without per-sample
        correctness (the detectors)."""
        return {}

    @abstractmethod
    def run_with_people(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, candidate: Candidate,
                        data: Any, pool: HumanPool) -> dict[str, CategoryOutcome]:
        """Run the network, its gate and the people on every evaluated category (``clean`` first).

        People's looks are timed in the pool's one queue: the outcomes carry their labour and latency.
        """

    # --- saved H-DNN ---------------------------------------------------------------------------

    @abstractmethod
    def rebuild(self, config: ExperimentConfig, state_dict: dict[str, torch.Tensor],
                input_shape: tuple[int, ...]) -> nn.Module:
        """A network for ``input_shape`` (one sample's), shaped like a (possibly compressed) state dict, loaded with it.

        Raises:
            KeyError, RuntimeError: The state dict is not this architecture's.
        """

    def input_shape_before_it_was_saved(self, config: ExperimentConfig) -> tuple[int, ...]:
        """One input's shape for H-DNNs saved before ``model.pt`` held it: then all data was Fashion-MNIST's."""
        return FASHION_MNIST_INPUT_SHAPE

    @abstractmethod
    def predict(self, model: nn.Module, gate: FittedGate, human: HumanChoice, images: torch.Tensor) -> Prediction:
        """The network's answers and the gate's choice for a batch."""

    def onnx_outputs(self, gate: FittedGate) -> tuple[str, ...]:
        """The exported model's outputs with this gate: :attr:`output_names`, unless the gate adds its score."""
        return self.output_names

    def gate_settings(self, human: HumanChoice) -> dict[str, float]:
        """Settings of the gate beyond its score, tau, d, k and the temperature, for ``gate.json``."""
        return {}

    def export(self, model: nn.Module, gate: FittedGate, sample: torch.Tensor, path: Path) -> None:
        """Write the network (with its gate, where it is a module) as ONNX, with a dynamic batch dimension."""
        # The exporter's optimiser folds small int8 weights' dequantization into fp32 constants, which would
        # ship four bytes per weight: int8 networks are exported unoptimised, their int8 initializers kept.
        int8 = any(hasattr(module, "weight_int8") for module in model.modules())
        torch.onnx.export(model.eval(), (sample.expand(2, *sample.shape[1:]).clone(),), path, input_names=["image"],
                          output_names=list(self.onnx_outputs(gate)), dynamic_shapes=[{0: torch.export.Dim("batch")}],
                          opset_version=ONNX_OPSET, external_data=False, optimize=not int8)

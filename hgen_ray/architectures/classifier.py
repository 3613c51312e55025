"""Image classifiers with a confidence gate: what H-CNN, torchvision models and custom networks share.

A subclass only says how to build its network (:meth:`ImageClassifier.build`)
and, when it wants, which layers to compress. The rest is the same for every
classifier:

- **Base model**, cached on disk by config hash: training takes minutes and every
  candidate of a search starts from the same base, so it is trained once and
  loaded from ``cache_dir/base-<hash>.pt``. The hash covers everything that changes
  the weights. Checkpoints hold only tensors and numbers and are loaded with
  ``weights_only=True``, so a cache file cannot run code; a corrupt one is retrained over.
- **Gate**: a confidence score (max softmax with a temperature fitted on clean validation
  images, energy, Mahalanobis distance or a learned rejector: :mod:`hgen_ray.architectures.gate`);
  a sample below tau goes to a chain of k people, whose answers replace the network's or
  are combined with its class probabilities. Tau is set from a share d of the
  validation challenge images to defer.
- **Saved H-DNN**: rebuilt by shaping a fresh network like the saved tensors
  (:mod:`hgen_ray.architectures.reshape`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hgen_ray.architectures.automatic_layers import automatic_layers
from hgen_ray.architectures.base import TAU_GRID, Architecture, CategoryOutcome, Prediction
from hgen_ray.architectures.gate import (
    FittedGate,
    GatedClassifier,
    defer_mask,
    fit_mahalanobis,
    fit_temperature,
    gate_confidence,
    has_linear_head,
    logits_and_features,
    pooled_confidence,
    tau_for_rate,
)
from hgen_ray.architectures.rejector import rejector_training_set, train_rejector
from hgen_ray.architectures.reshape import reshape_like
from hgen_ray.architectures.stream import query_stream
from hgen_ray.architectures.training import Distillation, batches, predict_logits, train_classifier, training_step
from hgen_ray.atomic_write import replaced_atomically
from hgen_ray.compress import CompressionPlan, TaylorData, compress_network
from hgen_ray.config import (
    CHALLENGE_CATEGORIES,
    GATE_SCORES,
    Candidate,
    ConfigError,
    ExperimentConfig,
    FinetuneConfig,
    HumanChoice,
    config_hash,
)
from hgen_ray.data.fashion_mnist import resolve_data_root
from hgen_ray.data.held_out_corruptions import families_for
from hgen_ray.data.preview import draw_challenge_grid
from hgen_ray.data.splits import EVALUATED_CATEGORIES, SPLIT_NAMES, ChallengeSet, Splits, build_challenge_set, load_splits
from hgen_ray.human import DeferredSample, HumanPool, PeopleView, people_view, train_ensemble
from hgen_ray.human.calibration import PeopleCalibration, human_accuracy, mean_answer_s, resolve_calibration
from hgen_ray.human.image_difficulty import person_chance
from hgen_ray.version import __version__

__all__ = ["ImageClassifier", "TrainedBase"]

log = logging.getLogger(__name__)
TAYLOR_BATCH = 64
DUMMY_BATCH = 2  # batch norm in train mode needs more than one sample per channel
FEATURE_SCORES = ("mahalanobis", "rejector")  # the gate scores that read the head's input
MAHALANOBIS_TRAIN_IMAGES = 2000  # assumed: clean train images the class means and shared covariance are fitted on


@dataclass
class TrainedBase:
    model: nn.Module
    temperature: float  # gate calibration on the clean validation split
    val_accuracy: float  # clean validation accuracy of the base model


class ImageClassifier(Architecture):
    """A classifier of one image into one of the data's classes, gated by calibrated confidence."""

    gate_rule = "defer when gate_confidence < tau (msp: also always when tau >= 1)"
    output_names = ("logits", "gate_confidence")
    gate_scores = GATE_SCORES
    rate_scores = GATE_SCORES
    class_probabilities = True

    @abstractmethod
    def build(self, config: ExperimentConfig, channels: int, num_classes: int) -> nn.Module:
        """A freshly initialised network taking ``[N, channels, H, W]`` images in ``[0, 1]``."""

    def starting_point(self, config: ExperimentConfig) -> str:
        """What the base starts from beyond the config (a weights file's or a factory's contents), for the cache."""
        return ""

    def starting_weights(self, config: ExperimentConfig, model: nn.Module) -> bool:
        """Load weights the user supplied into ``model``; True when it then needs no training."""
        return False

    # --- setup ---------------------------------------------------------------------------------

    def load_data(self, config: ExperimentConfig, split: str) -> Splits:
        return load_splits(config.data, config.seed, with_test=split == "test")

    def data_split(self, data: Splits) -> str:
        return "validation" if data.test_images is None else "test"

    def data_for(self, config: ExperimentConfig, split: str, data: Any | None) -> Splits:
        if not isinstance(data, Splits):
            return self.load_data(config, split)
        if split == "validation":
            return data.without_test()  # measured on validation: the test images must not be what is read
        return data if data.test_images is not None else self.load_data(config, split)

    def trial_data(self, config: ExperimentConfig, data: Splits) -> Splits:
        """What every trial needs: the train part cut to the fine-tuning subset, and validation."""
        subset = config.finetune.subset or len(data.train_images)
        return dataclasses.replace(data, train_images=data.train_images[:subset],
                                   train_labels=data.train_labels[:subset])

    def base_cache_path(self, config: ExperimentConfig) -> Path:
        data = config.data
        root = str(resolve_data_root(data.root).resolve())  # relative or absolute, the same files: the same base
        model = dataclasses.replace(config.model, layers=None)  # which layers to compress does not shape the base
        key = config_hash(model, self.starting_point(config), root, data.format, data.image_size,
                          data.validation_size, config.seed, __version__)
        return Path(config.cache_dir) / f"base-{self.name}-{key}.pt"

    def load_base(self, config: ExperimentConfig, data: Splits) -> nn.Module:
        return self.trained_base(config, data).model

    def trained_base(self, config: ExperimentConfig, splits: Splits) -> TrainedBase:
        """Load the cached base model for this config, or train (or take the user's weights) and cache it."""
        path = self.base_cache_path(config)
        if path.is_file():
            cached = self._load_cached(config, splits, path)
            if cached is not None:
                log.info("loaded base model from %s", path)
                return cached
        base = self._train(config, splits)
        payload = {"state_dict": base.model.state_dict(), "temperature": base.temperature,
                   "val_accuracy": base.val_accuracy}
        with replaced_atomically(path) as temporary:  # a concurrent reader sees old or new, never half
            torch.save(payload, temporary)
        log.info("base model: clean val accuracy %.4f, temperature %.3f, cached at %s",
                 base.val_accuracy, base.temperature, path)
        return base

    def _fresh(self, config: ExperimentConfig, splits: Splits) -> nn.Module:
        return self.build(config, int(splits.val_images.shape[1]), len(splits.class_names))

    def _train(self, config: ExperimentConfig, splits: Splits) -> TrainedBase:
        torch.manual_seed(config.seed)
        model = self._fresh(config, splits)
        _check_it_classifies(self.name, model, splits)
        if not self.starting_weights(config, model):
            images, labels = splits.train_images, splits.train_labels
            if config.model.train_subset:
                images, labels = images[: config.model.train_subset], labels[: config.model.train_subset]
            log.info("training the base %s on %d clean images", self.name, len(images))
            train_classifier(model, images, labels, epochs=config.model.epochs, batch_size=config.model.batch_size,
                             learning_rate=config.model.learning_rate, seed=config.seed, label="base")
        logits = predict_logits(model, splits.val_images)
        accuracy = float((logits.argmax(1) == splits.val_labels).float().mean())
        return TrainedBase(model.eval(), fit_temperature(logits, splits.val_labels), accuracy)

    def _load_cached(self, config: ExperimentConfig, splits: Splits, path: Path) -> TrainedBase | None:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model = self._fresh(config, splits)
            model.load_state_dict(payload["state_dict"])
            return TrainedBase(model.eval(), float(payload["temperature"]), float(payload["val_accuracy"]))
        except Exception as error:  # any unreadable or foreign file: retrain rather than fail
            log.warning("ignoring unusable cached base model %s (%s); retraining", path, error)
            return None

    def compressible_layers(self, config: ExperimentConfig, base: nn.Module, data: Any) -> dict[str, str]:
        return automatic_layers(base, self.input_sample(config, data), tuple(config.model.layers or ()))

    def draw_preview(self, config: ExperimentConfig, data: Splits, out: Path) -> Path:
        return draw_challenge_grid(data.val_images, out, config.seed)

    def profile_sample(self, data: Splits) -> torch.Tensor:
        return data.val_images[:1]

    def input_sample(self, config: ExperimentConfig, data: Splits) -> torch.Tensor:
        return torch.rand(1, *data.val_images.shape[1:], generator=torch.Generator().manual_seed(config.seed))

    def labour_curves(self, config: ExperimentConfig, base: nn.Module, data: Splits,
                      scores: tuple[str, ...]) -> dict[str, np.ndarray]:
        """At each share d, d times one person's mean seconds per answer, for every score alike: each trial sets
        its own network's tau so that its gate defers exactly d of the validation challenges."""
        answer_s = mean_answer_s(config.data.severity, calibration=self.people_calibration(config, data))
        return {score: TAU_GRID * answer_s for score in scores}

    def people_calibration(self, config: ExperimentConfig, data: Splits) -> PeopleCalibration:
        return resolve_calibration(config.human_pool.calibration, data.dataset, data.class_names)

    # --- trial ---------------------------------------------------------------------------------

    def compress(self, config: ExperimentConfig, base: nn.Module, candidate: Candidate, data: Splits,
                 finetune: FinetuneConfig) -> nn.Module:
        subset = finetune.subset or len(data.train_images)
        images, labels = data.train_images[:subset], data.train_labels[:subset]

        distillation = (Distillation(base, finetune.distill_temperature, finetune.distill_weight)
                        if finetune.distill else None)  # the uncompressed base teaches its compressed copy

        def tune(model: nn.Module) -> None:
            train_classifier(model, images, labels, epochs=finetune.epochs, batch_size=finetune.batch_size,
                             learning_rate=finetune.learning_rate, seed=config.seed, label="fine-tune",
                             distillation=distillation)

        taylor = TaylorData(lambda: batches(images, labels, TAYLOR_BATCH, config.seed), training_step)
        plan = CompressionPlan(data.train_images[:DUMMY_BATCH], lambda _model: taylor, tune)
        return compress_network(base, candidate, self.compressible_layers(config, base, data), plan)

    def check_data(self, config: ExperimentConfig, data: Splits) -> None:
        wanted = (*self.searched_scores(config), config.candidate.human.gate)
        channels = int(data.val_images.shape[1])
        if "rejector" in wanted and not families_for(channels, config.gate.rejector_families):
            raise ConfigError(f"gate.rejector_families: {', '.join(config.gate.rejector_families)} leaves no "
                              f"corruption family that changes {channels}-channel images; allowed: "
                              f"{', '.join(families_for(channels))}")

    def usable_scores(self, config: ExperimentConfig, base: nn.Module) -> tuple[str, ...]:
        """The searched scores this network can give: Mahalanobis and the rejector need a linear head.

        Raises:
            ConfigError: ``gate.scores`` names one of them for a network without a linear layer.
        """
        scores = self.searched_scores(config)
        if has_linear_head(base):
            return scores
        needing = [s for s in scores if s in FEATURE_SCORES]
        if config.gate.scores and needing:
            raise ConfigError(f"gate.scores: {needing[0]} needs the network's penultimate features (the input of its "
                              f"last linear layer), and this {self.name} network has no linear layer; allowed: "
                              "msp, energy")
        return tuple(s for s in scores if s not in FEATURE_SCORES)

    def fit_gate(self, config: ExperimentConfig, model: nn.Module, data: Splits, score: str) -> FittedGate:
        if score in FEATURE_SCORES and not has_linear_head(model):
            raise ConfigError(f"candidate.human.gate: {score} needs the network's penultimate features (the input of "
                              f"its last linear layer), and this {self.name} network has none; allowed: msp, energy")
        gate = FittedGate(score, fit_temperature(predict_logits(model, data.val_images), data.val_labels))
        if score == "mahalanobis":
            images, labels = data.train_images[:MAHALANOBIS_TRAIN_IMAGES], data.train_labels[:MAHALANOBIS_TRAIN_IMAGES]
            gate.tensors = fit_mahalanobis(logits_and_features(model, images)[1], labels, len(data.class_names))
        elif score == "rejector":
            gate.tensors = self._fit_rejector(config, model, gate.temperature, data)
        return gate

    def _fit_rejector(self, config: ExperimentConfig, model: nn.Module, temperature: float,
                      data: Splits) -> dict[str, torch.Tensor]:
        """The rejector on held-out corruptions of validation images: it pays to defer where the network is
        wrong and a person is likely right (:mod:`hgen_ray.architectures.rejector`)."""
        learn_from = rejector_training_set(data.val_images, data.val_labels, config.gate.rejector_families,
                                           config.seed)
        logits, features = logits_and_features(model, learn_from.images)
        calibration = self.people_calibration(config, data)
        ensemble = train_ensemble(data.train_images, data.train_labels, config.seed, calibration.num_classes)
        chance = person_chance(learn_from.images, learn_from.clean, learn_from.labels, ensemble, calibration)
        target = (logits.argmax(1) != learn_from.labels).float() * torch.from_numpy(chance).float()
        return train_rejector(features, torch.softmax(logits / temperature, dim=1), target, config.seed)

    def tau_for_deferral(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, data: Splits,
                         deferral: float) -> float:
        challenge = build_challenge_set(data, config.data, config.seed, "validation")
        seen = torch.cat([gate_confidence(model, gate, challenge.images[c])[1] for c in CHALLENGE_CATEGORIES])
        tau = tau_for_rate(seen, deferral)
        if gate.score == "msp" and 1.0 <= tau < math.inf:  # saturated softmax: keep them, as the rate says, rather
            tau = math.nextafter(1.0, 0.0)  # than msp's raw "tau >= 1 sends every sample"
        return tau

    def gate_curves(self, config: ExperimentConfig, model: nn.Module, data: Splits,
                    scores: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        challenge = build_challenge_set(data, config.data, config.seed, self.data_split(data))
        challenges = {c: challenge.images[c] for c in CHALLENGE_CATEGORIES}
        return {score: pooled_confidence(model, self.fit_gate(config, model, data, score), challenges, challenge.labels)
                for score in scores}

    def run_with_people(self, config: ExperimentConfig, model: nn.Module, gate: FittedGate, candidate: Candidate,
                        data: Splits, pool: HumanPool) -> dict[str, CategoryOutcome]:
        split = self.data_split(data)
        challenge = build_challenge_set(data, config.data, config.seed, split)
        calibration = self.people_calibration(config, data)
        ensemble = train_ensemble(data.train_images, data.train_labels, config.seed, calibration.num_classes)
        people = people_view(challenge.images, challenge.labels, challenge.severity, ensemble,
                             calibration=calibration)
        per_category = len(challenge.labels)
        arrivals = query_stream(config, split, {c: per_category for c in EVALUATED_CATEGORIES})
        # bayes's confusion model: one person's accuracy per category from the sourced figures, never from the
        # split evaluated. The simulation knows each sample's category; a deployed app would not.
        accuracy = {c: human_accuracy(c, challenge.severity, calibration=calibration) for c in EVALUATED_CATEGORIES}
        return _gate_and_people(model, gate, challenge, candidate.human, pool, people, arrivals, accuracy)

    # --- saved H-DNN ---------------------------------------------------------------------------

    def rebuild(self, config: ExperimentConfig, state_dict: dict[str, torch.Tensor],
                input_shape: tuple[int, ...]) -> nn.Module:
        return reshape_like(self.build(config, input_shape[0], 2), state_dict)  # the head takes the saved width

    def predict(self, model: nn.Module, gate: FittedGate, human: HumanChoice, images: torch.Tensor) -> Prediction:
        logits, confidence = gate_confidence(model, gate, images)
        return Prediction(logits.argmax(1), defer_mask(confidence, gate.score, human.tau))

    def export(self, model: nn.Module, gate: FittedGate, sample: torch.Tensor, path: Path) -> None:
        """The network and its gate as one ONNX model: outputs ``logits`` and ``gate_confidence``."""
        super().export(GatedClassifier(model, gate).eval(), gate, sample, path)


@torch.no_grad()
def _check_it_classifies(name: str, model: nn.Module, splits: Splits) -> None:
    """Refuse, in one line, a network that cannot take this data's images or does not return one logit per class.

    Run in eval mode, so that batch norm's statistics are not touched before training.
    """
    shape, classes = tuple(splits.val_images.shape[1:]), len(splits.class_names)
    allowed = "a network taking [N, C, H, W] images in [0, 1] and returning [N, classes] logits " \
              "(fixed-size networks: set data.image_size)"
    try:
        out = model.eval()(splits.val_images[:2])
    except Exception as error:  # whatever the user's network raises, the answer is the same: it does not fit
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"model: the {name} network does not run on {shape} images ({reason}); allowed: {allowed}") \
            from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"model: the {name} network returns {got} for 2 images of {classes} classes; "
                          f"allowed: {allowed}")


def deferred_sample(challenge: ChallengeSet, category: str, index: int, arrival_s: float, people: PeopleView,
                    probabilities: torch.Tensor, category_accuracy: float) -> DeferredSample:
    """Sample ``index`` of ``category`` as the pool sees it: its image key, arrival, difficulty, the network's view,
    and one person's expected accuracy on the category (the combination's confusion model)."""
    key = (SPLIT_NAMES.index(challenge.split), EVALUATED_CATEGORIES.index(category), index)
    return DeferredSample(key, arrival_s, int(challenge.labels[index]), float(people.person_accuracy[category][index]),
                          float(people.answer_median_s[category][index]), tuple(probabilities[index].tolist()),
                          category_accuracy)


@torch.no_grad()
def _gate_and_people(model: nn.Module, gate: FittedGate, challenge: ChallengeSet, human: HumanChoice,
                     pool: HumanPool, people: PeopleView, arrivals: dict[str, np.ndarray],
                     people_accuracy: dict[str, float]) -> dict[str, CategoryOutcome]:
    """Every category through the network and its gate; the deferred samples of all of them to the pool at once."""
    dnn, confidence, deferred, requests, where = {}, {}, {}, [], []
    for category in EVALUATED_CATEGORIES:
        logits, confidence[category] = gate_confidence(model, gate, challenge.images[category])
        dnn[category] = logits.argmax(1).numpy()
        deferred[category] = defer_mask(confidence[category], gate.score, human.tau).numpy()
        probabilities = torch.softmax(logits / gate.temperature, dim=1)
        for index in np.flatnonzero(deferred[category]).tolist():
            requests.append(deferred_sample(challenge, category, index, float(arrivals[category][index]), people,
                                            probabilities, people_accuracy[category]))
            where.append((category, index))
    answered = pool.serve(requests, human.mechanism, human.k, combine=human.combine) if requests else None
    final = {c: p.copy() for c, p in dnn.items()}
    costs = {name: {c: np.zeros(len(p)) for c, p in dnn.items()} for name in ("labor_s", "latency_s", "wait_s")}
    for row, (category, index) in enumerate(where):
        assert answered is not None
        final[category][index] = answered.labels[row]
        costs["labor_s"][category][index] = answered.labor_s[row]
        costs["latency_s"][category][index] = answered.latency_s[row]
        costs["wait_s"][category][index] = answered.wait_s[row]
    labels = challenge.labels.numpy()
    return {c: CategoryOutcome(float(np.mean(final[c] == labels)), float(np.mean(dnn[c] == labels)), deferred[c],
                               costs["labor_s"][c], costs["latency_s"][c], costs["wait_s"][c],
                               dnn_correct=dnn[c] == labels, gate_confidence=confidence[c].numpy())
            for c in EVALUATED_CATEGORIES}

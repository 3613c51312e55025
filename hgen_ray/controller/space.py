"""The search space: per-layer compression x human participation.

An episode walks the compressible layers in order, then a "gate" step when the
search may choose among several gate scores, then one last "human" step. At each
step the discrete agent picks an option (a technique with its weight bits, 32 or
8; the gate score; for the human step, off or a mechanism with k) and the
continuous agent picks a number in
[-1, 1], mapped to a ratio in [0, 0.9], or at the human step to the share d of the
validation challenges to defer, in [0, d_max] (gate scores deferring by rate, whose
trials set tau from d), or to a raw tau in [0, max_tau] (the detectors' msp).

The state at each step follows AMC's layer embedding (He et al., ECCV 2018):
step index, layer type, in/out channels, kernel, stride, parameters, FLOPs,
FLOPs reduced so far, FLOPs left, previous action. To it we add the user's
budget (A_d, T_d, E_c, S_c, L_c, normalised) and how much of storage and
energy the choices so far are estimated to use.

Candidates travel to Tune trials as nested dicts of plain values
(``{"layers": {"conv1": {"technique": ...}}, "human": {...}}``), which every
searcher, Optuna included, can produce; :func:`config_to_candidate` turns them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hgen_ray.config import (
    CONV_TECHNIQUES,
    FC_TECHNIQUES,
    MAX_COMPRESSION_RATIO,
    Candidate,
    Constraints,
    WEIGHT_BITS,
    HumanChoice,
    LayerChoice,
)
from hgen_ray.controller.storage_projection import StorageLayout
from hgen_ray.profile.flops import macs_by_module
from hgen_ray.profile.storage import BYTES_PER_MB

__all__ = [
    "HUMAN_OPTIONS",
    "NUM_DISCRETE_ACTIONS",
    "LaborEstimate",
    "LayerSpec",
    "SearchSpace",
    "describe_layers",
    "kept_fraction",
]

HUMAN_OFF = ("off", 0)
HUMAN_OPTIONS: tuple[tuple[str, int], ...] = (
    HUMAN_OFF,
    ("sequential", 1),
    ("sequential", 2),
    ("sequential", 3),
    ("majority", 2),
    ("majority", 3),
)
NUM_DISCRETE_ACTIONS = max(len(CONV_TECHNIQUES) * len(WEIGHT_BITS), len(FC_TECHNIQUES) * len(WEIGHT_BITS),
                           len(HUMAN_OPTIONS))
MAX_TAU = 1.0
# The cap trusts the base gate's labour estimate to 0.9 of the limit. Measured in bench-small's H-CNN
# (runs of 2026-11-29): fine-tuned candidates at the cap used 0.7-0.9 x the estimate, since fine-tuning
# makes them surer; the last 10% is room for more heavily pruned ones, which doubt more.
LABOR_MARGIN = 0.9
_RATIO_GRID = [round(float(r), 4) for r in np.linspace(0.0, MAX_COMPRESSION_RATIO, 91)]  # tried when a layer must shrink
# Scales that bring the budget into [0, 1] for the agents' inputs.
LATENCY_SCALE_MS = 10_000.0  # beyond 10 s per sample an H-DNN is not interactive
LABOR_SCALE_S_PER_1K = 9_000.0  # every sample to a chain of 3 people at ~3 s each


@dataclass(frozen=True)
class LaborEstimate:
    """What the base model's gate would cost in people: one person's mean seconds per sample at each tau."""

    taus: np.ndarray
    person_s_per_sample: np.ndarray  # for one look (a chain of k looks k times)

    def labor_s_per_1k(self, tau: float, k: int) -> float:
        return float(np.interp(tau, self.taus, self.person_s_per_sample)) * k * 1000.0


@dataclass(frozen=True)
class LayerSpec:
    name: str
    kind: str  # conv | fc
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    params: int
    flops: int  # multiply-accumulates for one sample


@torch.no_grad()
def describe_layers(model: nn.Module, layers: Mapping[str, str], sample: torch.Tensor) -> list[LayerSpec]:
    """Static facts of each compressible layer; its MACs for one sample from torch's FLOP counter."""
    macs = macs_by_module(model, sample[:1])
    specs = []
    for name, kind in layers.items():
        module = model.get_submodule(name)
        conv = isinstance(module, nn.Conv2d)
        specs.append(LayerSpec(
            name=name, kind=kind,
            in_channels=module.in_channels if conv else module.in_features,
            out_channels=module.out_channels if conv else module.out_features,
            kernel=module.kernel_size[0] if conv else 1, stride=module.stride[0] if conv else 1,
            params=sum(p.numel() for p in module.parameters()), flops=macs[name],
        ))
    return specs


def kept_fraction(spec: LayerSpec, technique: str, ratio: float) -> float:
    """Estimated share of a layer's weights (and FLOPs) a choice keeps."""
    if technique == "none":
        return 1.0
    if spec.kind == "fc":
        rank = max(1, math.ceil((1 - ratio) * min(spec.in_channels, spec.out_channels)))
        return min(1.0, rank * (spec.in_channels + spec.out_channels) / (spec.in_channels * spec.out_channels))
    return 1.0 - ratio


def _falls(labor: LaborEstimate, max_level: float) -> bool:
    """Whether people's work shrinks as the level grows: a band ``[tau, tau_high]`` narrows (H-YOLO)."""
    inside = labor.taus[(labor.taus > 0) & (labor.taus <= max_level)]
    return len(inside) > 1 and labor.labor_s_per_1k(float(inside[-1]), 1) < labor.labor_s_per_1k(float(inside[0]), 1)


def _level_bounds(labor: Mapping[str, LaborEstimate] | None, limit: float, max_levels: Mapping[str, float],
                  options: tuple[tuple[str, int], ...]) -> tuple[dict[tuple[str, int], float], dict[tuple[str, int], float]]:
    """Per gate score and chain length k, the levels (tau or d) whose estimated labour fits the limit: an upper
    cap where people's work grows with the level, a floor where it falls (none without a limit)."""
    if labor is None or math.isinf(limit):
        return {}, {}
    caps, floors = {}, {}
    for score, curve in labor.items():
        max_level = max_levels[score]
        falls = _falls(curve, max_level)
        for k in {k for mechanism, k in options if mechanism != "off"}:
            affordable = [t for t in curve.taus if curve.labor_s_per_1k(t, k) <= LABOR_MARGIN * limit]
            if falls:
                floors[(score, k)] = min((t for t in affordable if 0 < t <= max_level), default=max_level)
            else:
                caps[(score, k)] = min(max(affordable, default=0.0), max_level)
    return caps, floors


def layer_options(kind: str, bits: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    """A layer step's options: each technique at each weight width, 32-bit ones first."""
    techniques = CONV_TECHNIQUES if kind == "conv" else FC_TECHNIQUES
    return tuple((technique, width) for width in bits for technique in techniques)


def _normalised_limit(limit: float, scale: float) -> float:
    return 1.0 if math.isinf(limit) else min(limit / scale, 1.0)


class SearchSpace:
    """Steps, options and observations for one model and one user's budget.

    Args:
        layers: The model's compressible layers, in forward order.
        constraints: Demands and limits, part of every observation.
        reference: Measures of the uncompressed model (``storage_mb``, ``energy_mj``), for normalising.
        human_enabled: False for ``compression_only``: the human step is always off.
        pool_size: People in the pool; longer chains are left out of the space.
        max_tau: Largest raw tau the human step proposes, also every candidate's ``tau_high`` (H-YOLO's band
            ``[tau, tau_high]`` needs ``tau <= tau_high``; the other models ignore ``tau_high``).
        labor: Per gate score, the base gate's labour curve, to keep the level within the labour limit.
        gate_scores: The scores the gate step chooses among (no gate step for one).
        rate_scores: The gate scores whose level is a share d of samples to defer, not a raw tau.
        max_deferral: Largest share d the human step proposes for those scores (d_max).
        combine: How people's answers count, carried by every candidate that asks people.
        storage: The base's tensors and their coupling, for the exact storage projection (none: no storage help).
        int8: Layers may choose int8 weights (``search.int8``).
    """

    def __init__(self, layers: list[LayerSpec], constraints: Constraints, reference: Mapping[str, float],
                 human_enabled: bool = True, pool_size: int = 3, max_tau: float = MAX_TAU,
                 labor: Mapping[str, LaborEstimate] | None = None, gate_scores: tuple[str, ...] = ("msp",),
                 rate_scores: tuple[str, ...] = (), max_deferral: float = 1.0, combine: str = "replace",
                 storage: StorageLayout | None = None, int8: bool = True) -> None:
        self.layers = layers
        self.storage = storage
        self.storage_limit_bytes = constraints.storage_mb_max * BYTES_PER_MB
        self.bits = WEIGHT_BITS if int8 else (32,)
        self.layer_options = {kind: layer_options(kind, self.bits) for kind in ("conv", "fc")}
        self.max_tau = max_tau
        self.max_deferral = max_deferral
        self.human_enabled = human_enabled
        self.rate_scores = rate_scores
        self.combine = combine
        self.human_options = tuple(o for o in HUMAN_OPTIONS if o[1] <= pool_size) if human_enabled else (HUMAN_OFF,)
        self.gate_scores = gate_scores if human_enabled else gate_scores[:1]
        self.tau_caps, self.tau_floors = _level_bounds(labor, constraints.labor_s_per_1k_max,
                                                       {score: self.max_level(score) for score in (labor or {})},
                                                       self.human_options)
        self.total_params = sum(s.params for s in layers)
        self.total_flops = sum(s.flops for s in layers)
        self.max_channels = max(max(s.in_channels, s.out_channels) for s in layers)
        self.budget = np.array([
            constraints.accuracy_min,
            _normalised_limit(constraints.latency_ms_max, LATENCY_SCALE_MS),
            _normalised_limit(constraints.energy_mj_max, reference["energy_mj"]),
            _normalised_limit(constraints.storage_mb_max, reference["storage_mb"]),
            _normalised_limit(constraints.labor_s_per_1k_max, LABOR_SCALE_S_PER_1K),
        ], dtype=np.float32)

    @property
    def gate_step(self) -> int | None:
        """The gate step's index, when the search chooses among several scores."""
        return len(self.layers) if len(self.gate_scores) > 1 else None

    @property
    def num_steps(self) -> int:
        return len(self.layers) + (self.gate_step is not None) + 1  # the human step comes last

    @property
    def human_step(self) -> int:
        return self.num_steps - 1

    @property
    def observation_size(self) -> int:
        return 15 + len(self.budget) + 2

    def step_kind(self, step: int) -> str:
        if step < len(self.layers):
            return self.layers[step].kind
        return "gate" if step == self.gate_step else "human"

    def options(self, step: int) -> tuple:
        kind = self.step_kind(step)
        return {**self.layer_options, "gate": self.gate_scores, "human": self.human_options}[kind]

    def option(self, step: int, action: int) -> object:
        """The option a discrete action means at ``step`` (actions wrap around short lists)."""
        options = self.options(step)
        return options[action % len(options)]

    def observation(self, step: int, discrete: list[int], continuous: list[float]) -> np.ndarray:
        """The state before choosing at ``step``, given the choices made so far."""
        kind = self.step_kind(step)
        spec = self.layers[step] if step < len(self.layers) else None
        kept = [kept_fraction(s, self.option(i, discrete[i])[0], self.ratio(continuous[i]))  # type: ignore[index]
                for i, s in enumerate(self.layers[:step])]
        flops_done = sum(s.flops * (1 - k) for s, k in zip(self.layers, kept))
        flops_left = sum(s.flops for s in self.layers[step:])
        params_used = sum(s.params * k for s, k in zip(self.layers, kept)) + sum(s.params for s in self.layers[step:])
        layer_facts = [0.0] * 6 if spec is None else [
            spec.in_channels / self.max_channels, spec.out_channels / self.max_channels, spec.kernel / 7,
            spec.stride / 2, spec.params / self.total_params, spec.flops / self.total_flops,
        ]
        features = [
            step / self.num_steps, float(kind == "conv"), float(kind == "fc"), float(kind == "gate"),
            float(kind == "human"),
            *layer_facts,
            flops_done / self.total_flops, flops_left / self.total_flops,
            (discrete[-1] / (NUM_DISCRETE_ACTIONS - 1)) if discrete else 0.0,
            continuous[-1] if continuous else 0.0,
        ]
        used = [params_used / self.total_params, (self.total_flops - flops_done) / self.total_flops]
        return np.concatenate([np.array(features, dtype=np.float32), self.budget,
                               np.array(used, dtype=np.float32)])

    @staticmethod
    def ratio(action: float) -> float:
        """Map an actor output in [-1, 1] to a compression ratio in [0, 0.9]."""
        return float(np.clip((action + 1) / 2, 0.0, 1.0) * MAX_COMPRESSION_RATIO)

    def max_level(self, score: str) -> float:
        """The human step's largest level with gate score ``score``: d_max for a share, else the largest raw tau."""
        return self.max_deferral if score in self.rate_scores else self.max_tau

    def level(self, action: float, score: str) -> float:
        """Map an actor output in [-1, 1] to the human step's level in [0, max_level]: a share d, or a raw tau."""
        return float(np.clip((action + 1) / 2, 0.0, 1.0) * self.max_level(score))

    def layer_choice(self, step: int, action: int, value: float) -> LayerChoice:
        """The layer choice of one layer step's actions."""
        technique, bits = self.option(step, action)  # type: ignore[misc]
        return LayerChoice(technique=technique, ratio=round(self.ratio(value), 4), bits=bits)

    def gate_score(self, discrete: list[int]) -> str:
        """The gate score an episode's actions chose (the only one when there is no gate step)."""
        step = self.gate_step
        return self.gate_scores[0] if step is None else str(self.option(step, discrete[step]))

    def decode(self, discrete: list[int], continuous: list[float]) -> Candidate:
        """The candidate an episode's actions describe."""
        layers = {spec.name: self.layer_choice(i, discrete[i], continuous[i]) for i, spec in enumerate(self.layers)}
        mechanism, k = self.option(self.human_step, discrete[-1])  # type: ignore[misc]
        if mechanism == "off":
            return Candidate(layers=layers, human=HumanChoice(tau=0.0))
        score = self.gate_score(discrete)
        level = round(self.level(continuous[-1], score), 4)
        chosen = {"mechanism": mechanism, "k": k, "gate": score, "combine": self.combine}
        if score in self.rate_scores:
            return Candidate(layers=layers, human=HumanChoice(deferral=level, **chosen))
        return Candidate(layers=layers, human=HumanChoice(tau=level, tau_high=self.max_tau, **chosen))

    @staticmethod
    def canonical(candidate: Candidate) -> tuple:
        """What makes two candidates the same network with the same people, on the 0.01 grid of ratios and
        levels: a layer left whole ignores its ratio, and people off ignore every human setting."""
        layers = tuple(sorted((name, "none", 0.0, choice.bits) if choice.technique == "none" or choice.ratio == 0
                              else (name, choice.technique, round(choice.ratio, 2), choice.bits)
                              for name, choice in candidate.layers.items()))
        human = candidate.human
        if not human.asks_people:
            return layers, ("off",)
        level = human.deferral if human.deferral is not None else human.tau
        return layers, (human.mechanism, human.k, human.gate, human.combine, round(level, 2))

    def within_budget(self, step: int, discrete: list[int], continuous: list[float], action: int,
                      value: float) -> tuple[int, float]:
        """AMC's resource-constrained action (He et al., ECCV 2018, Sec. 3.2), for storage and labour.

        A layer is compressed at least as much as it takes for the storage limit to stay
        reachable when every later layer is compressed to the maximum, counted exactly
        (:class:`StorageLayout`): a "none" technique becomes the first real one, the
        ratio rises, and where no ratio is enough at the chosen width, int8 is taken.
        At the human step, the level (d or tau) is moved (lowered, or raised where
        people's work falls as tau grows) until the base network's estimated labour with
        the chosen gate score fits LABOR_MARGIN of the labour limit. Without limits,
        choices are left as made.
        """
        if step == self.human_step:
            return action, self._within_labor(action, value, self.gate_score(discrete))
        if step >= len(self.layers) or self.storage is None or math.isinf(self.storage_limit_bytes):
            return action, value
        chosen = {s.name: self.layer_choice(i, discrete[i], continuous[i]) for i, s in enumerate(self.layers[:step])}
        strongest = {s.name: self._strongest(s.kind) for s in self.layers[step + 1:]}
        name, kind = self.layers[step].name, self.layers[step].kind

        def fits(choice: LayerChoice) -> bool:
            return self.storage.projected_bytes({**chosen, name: choice, **strongest}) <= self.storage_limit_bytes  # type: ignore[union-attr]

        if fits(self.layer_choice(step, action, value)):
            return action, value
        technique, bits = self.option(step, action)  # type: ignore[misc]
        if technique == "none":
            technique = self._strongest(kind).technique
        for width in (bits, *(w for w in self.bits if w < bits)):
            ratio = next((r for r in _RATIO_GRID if fits(LayerChoice(technique, r, width))), None)
            if ratio is not None:
                return self.options(step).index((technique, width)), max(value, 2.0 * ratio / MAX_COMPRESSION_RATIO - 1.0)
        return self.options(step).index((technique, min(self.bits))), 1.0

    def _strongest(self, kind: str) -> LayerChoice:
        """The smallest a layer can be made: the first real technique, the largest ratio, the fewest bits."""
        technique = CONV_TECHNIQUES[1] if kind == "conv" else FC_TECHNIQUES[1]
        return LayerChoice(technique, MAX_COMPRESSION_RATIO, min(self.bits))

    def _within_labor(self, action: int, value: float, score: str) -> float:
        mechanism, k = self.option(self.human_step, action)  # type: ignore[misc]
        if mechanism == "off":
            return value
        if (score, k) in self.tau_caps:
            value = min(value, 2.0 * self.tau_caps[(score, k)] / self.max_level(score) - 1.0)
        if (score, k) in self.tau_floors:
            value = max(value, 2.0 * self.tau_floors[(score, k)] / self.max_level(score) - 1.0)
        return value

    def legal_actions(self, discrete: list[int], continuous: list[float]) -> tuple[list[int], list[float]]:
        """Whole episodes through :meth:`within_budget`, step by step, as hgen's rollouts are.

        This is the help every strategy gets: ``random`` and ``optuna`` proposals pass through it too.
        """
        legal_discrete: list[int] = []
        legal_continuous: list[float] = []
        for step, (action, value) in enumerate(zip(discrete, continuous)):
            action, value = self.within_budget(step, legal_discrete, legal_continuous, action, value)
            legal_discrete.append(action)
            legal_continuous.append(value)
        return legal_discrete, legal_continuous

    def random_actions(self, rng: np.random.Generator) -> tuple[list[int], list[float]]:
        """Uniform actions over the whole space (the ``random`` baseline and warm-up)."""
        discrete = [int(rng.integers(len(self.options(s)))) for s in range(self.num_steps)]
        return discrete, [float(rng.uniform(-1, 1)) for _ in range(self.num_steps)]

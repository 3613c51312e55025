"""The experiment's sections: dataclasses whose fields carry a default, a one-line comment and their limits.

Limits live in ``field(metadata=...)``: ``range`` for numbers (and a mapping's values),
``choices`` for strings, and ``keys`` for the keys a mapping must name
(:mod:`hgen_ray.config.parsing` enforces them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


__all__ = [
    "BENCH_STRATEGIES",
    "BenchConfig",
    "CHALLENGE_CATEGORIES",
    "CHANCE_ACCURACY",
    "CONV_TECHNIQUES",
    "CROWD_MAJORITY_OF_3_ACCURACY",
    "Candidate",
    "ConfigError",
    "Constraints",
    "DataConfig",
    "DetectionConfig",
    "ExperimentConfig",
    "FC_TECHNIQUES",
    "FinetuneConfig",
    "GATE_SCORES",
    "WEIGHT_BITS",
    "GateConfig",
    "COMBINATION_RULES",
    "HELD_OUT_FAMILIES",
    "HumanChoice",
    "HumanPoolConfig",
    "LayerChoice",
    "MAX_BENCH_SEEDS",
    "ModelConfig",
    "PeopleCalibrationConfig",
    "ProfileConfig",
    "RewardConfig",
    "SEARCH_ALGORITHMS",
    "SearchConfig",
    "ServeConfig",
]

CHALLENGE_CATEGORIES: tuple[str, ...] = (
    "low_resolution",
    "small_size",
    "motion_blur",
    "defocus_blur",
    "gaussian_noise",
    "impulse_noise",
    "low_light",
    "low_contrast",
    "fog",
    "occlusion",
    "jpeg",
    "rotation",
)
CONV_TECHNIQUES: tuple[str, ...] = ("none", "l1", "l2", "fpgm", "taylor")
FC_TECHNIQUES: tuple[str, ...] = ("none", "svd")
SEARCH_ALGORITHMS: tuple[str, ...] = ("hgen", "random", "compression_only", "optuna")
# What the gate ranks samples by (hgen_ray.architectures.gate): max softmax, energy (Liu et al. 2020),
# Mahalanobis distance of the features (Lee et al. 2018), or a learned rejector head.
GATE_SCORES: tuple[str, ...] = ("msp", "energy", "mahalanobis", "rejector")
COMBINATION_RULES: tuple[str, ...] = ("replace", "bayes")  # people's answers replace the network's, or join it
# Corruption families the rejector may train on: none is one of the 12 test categories. ImageNet-C's four held-out
# families (Hendrycks and Dietterich, ICLR 2019: speckle noise, Gaussian blur, spatter, saturate) plus elastic transform.
HELD_OUT_FAMILIES: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate", "elastic_transform")
CHANCE_ACCURACY = 0.1  # ten classes: what a guess gets right
CROWD_MAJORITY_OF_3_ACCURACY = 0.835  # Xiao et al. 2017, Fashion-MNIST benchmark, human row (majority of 3)
WEIGHT_BITS: tuple[int, ...] = (32, 8)  # a layer's weights: fp32, or int8 with one fp32 scale per output channel
MAX_COMPRESSION_RATIO = 0.9  # beyond this a layer keeps too few channels to train


class ConfigError(ValueError):
    """A configuration or candidate problem, with a one-line message."""


def _range(low: float, high: float) -> dict[str, Any]:
    return {"range": (low, high)}


def _choices(*allowed: str | int) -> dict[str, Any]:
    return {"choices": allowed}


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/fashion-mnist"  # dataset folder, laid out as `format` says; the env var HGEN_DATA overrides
    download: bool = False  # let torchvision download Fashion-MNIST if root lacks it (format idx only)
    severity: int = field(default=3, metadata=_range(1, 5))  # challenge severity evaluated
    test_per_category: int = field(default=1000, metadata=_range(10, 10000))  # test images per category, read only for the report
    validation_size: int = field(default=5000, metadata=_range(100, 20000))  # clean train images held out (never trained on)
    validation_per_category: int = field(default=1000, metadata=_range(10, 20000))  # of those, challenged per category for the search
    # idx: the four (t10k|train)-(images-idx3|labels-idx1)-ubyte[.gz] files; image_folder: train/<class>/*.png|jpg
    # and test/<class>/...; npz: train.npz and test.npz with arrays images, labels and optionally classes
    format: str = field(default="idx", metadata=_choices("idx", "image_folder", "npz"))
    image_size: int | None = field(default=None, metadata=_range(16, 4096))  # square side images are resized to; null = as stored
    classes: tuple[str, ...] | None = None  # class names, label order (idx, npz); null = from the data, else "0", "1", ...


@dataclass(frozen=True)
class ModelConfig:
    name: str = "h_cnn"  # architecture: a name in hgen_ray.architectures.REGISTRY (checked there)
    arch: str = ""  # torchvision only: a classification model of torchvision.models, e.g. mobilenet_v3_small
    weights: str = ""  # torchvision and custom: a state dict (.pt) to start from; absent: trained from scratch here
    factory: str = ""  # custom only: "package.module:function" returning an nn.Module (num_classes, in_channels)
    layers: tuple[str, ...] | None = None  # torchvision and custom: layers to compress; none = the biggest few
    conv_channels: tuple[int, int] = (32, 64)  # output channels of conv1, conv2
    fc_units: int = field(default=128, metadata=_range(8, 4096))  # width of fc1
    epochs: int = field(default=3, metadata=_range(1, 100))  # base training epochs
    batch_size: int = field(default=128, metadata=_range(1, 4096))  # base training batch
    learning_rate: float = field(default=2e-3, metadata=_range(1e-6, 1.0))  # Adam step size
    train_subset: int = field(default=0, metadata=_range(0, 60000))  # 0 = every train image


@dataclass(frozen=True)
class DetectionConfig:
    canvas_size: int = field(default=96, metadata=_range(48, 512))  # side of a detection canvas, px
    max_items: int = field(default=4, metadata=_range(1, 8))  # most Fashion-MNIST items per canvas
    train_canvases: int = field(default=6000, metadata=_range(10, 200000))  # composed from train-split items
    validation_canvases: int = field(default=500, metadata=_range(10, 20000))  # from the held-out validation items
    test_canvases: int = field(default=300, metadata=_range(10, 20000))  # per category, from test-split items


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = field(default=1, metadata=_range(0, 100))  # fine-tune epochs after compression
    subset: int = field(default=10000, metadata=_range(0, 60000))  # clean train images used; 0 = all
    batch_size: int = field(default=128, metadata=_range(1, 4096))  # fine-tune batch
    learning_rate: float = field(default=1e-3, metadata=_range(1e-6, 1.0))  # Adam step size
    distill: bool = False  # add Hinton et al.'s KD loss from the uncompressed base (every strategy and reference)
    distill_temperature: float = field(default=4.0, metadata=_range(1.0, 20.0))  # assumed: softmax temperature T
    distill_weight: float = field(default=0.5, metadata=_range(0.0, 1.0))  # assumed: the KD term's share of the loss


@dataclass(frozen=True)
class PeopleCalibrationConfig:
    """``human_pool.calibration``: the figures simulated people meet on the user's data.

    A key left unset takes the sourced value for Fashion-MNIST, or a generic default marked
    assumed for any other data (``hgen_ray.human.calibration.resolve_calibration``).
    """

    # clean-image accuracy of a majority of 3 people; must be above chance (1 / classes)
    clean_majority_of_3_accuracy: float | None = field(default=None, metadata=_range(0.0, 1.0))
    # share of above-chance accuracy one person keeps at severity 5, for each of the 12 categories
    retention_at_severity_5: dict[str, float] | None = field(
        default=None, metadata={"keys": CHALLENGE_CATEGORIES, **_range(0.0, 1.0)})
    look_alike_groups: tuple[tuple[str, ...], ...] | None = None  # lists of class names people confuse; [] = none
    # lognormal answer time: the median seconds on an image a person is sure of, and the log-space spread
    answer_median_s: float | None = field(default=None, metadata=_range(0.05, 3600.0))
    answer_sigma: float | None = field(default=None, metadata=_range(0.01, 5.0))
    source: str = ""  # where these figures come from, printed in the report


@dataclass(frozen=True)
class HumanPoolConfig:
    size: int = field(default=8, metadata=_range(0, 256))  # people in the pool (0 only for compression_only)
    # queries per second the deployed app sees, all categories in one stream (assumed; 24 = the old 12 challenge
    # streams of 2 per second; the old clean stream made 26)
    arrival_rate_per_s: float = field(default=24.0, metadata=_range(0.0, 1e6))
    max_restarts: int = field(default=3, metadata=_range(0, 100))  # people replaced per request after a crash
    calibration: PeopleCalibrationConfig = field(default_factory=PeopleCalibrationConfig)  # what people are tuned to

    @property
    def clean_majority_of_3_accuracy(self) -> float:
        """The block's crowd target, else Xiao et al. 2017's: for readers not yet on ``resolve_calibration``."""
        target = self.calibration.clean_majority_of_3_accuracy
        return CROWD_MAJORITY_OF_3_ACCURACY if target is None else target


@dataclass(frozen=True)
class GateConfig:
    """``gate``: which gate scores the search may choose, how much it may defer, and how people's answers count."""

    scores: tuple[str, ...] | None = field(default=None, metadata=_choices(*GATE_SCORES))  # null = all the model has
    max_deferral: float = field(default=0.3, metadata=_range(0.0, 1.0))  # d_max: share of samples deferred (assumed)
    combine: str | None = field(default=None, metadata=_choices(*COMBINATION_RULES))  # null = bayes where it can
    # what the rejector learns from: held-out corruptions of validation images, never a test category
    rejector_families: tuple[str, ...] = field(default=HELD_OUT_FAMILIES, metadata=_choices(*HELD_OUT_FAMILIES))


@dataclass(frozen=True)
class ProfileConfig:
    energy_source: str = field(default="auto", metadata=_choices("auto", "nvml", "rapl", "estimate"))  # energy meter
    latency_repeats: int = field(default=50, metadata=_range(5, 10000))  # timed batch-1 runs; the median is kept
    energy_window_ms: float = field(default=100.0, metadata=_range(100.0, 60000.0))  # min metered window
    exclusive_energy: bool = False  # meter GPU energy in a step holding a whole GPU when trials share one


@dataclass(frozen=True)
class Constraints:
    accuracy_min: float = field(default=0.0, metadata=_range(0.0, 1.0))  # demand A_d
    latency_ms_max: float = field(default=math.inf, metadata=_range(0.0, math.inf))  # demand T_d on the network alone (dnn_latency_ms)
    energy_mj_max: float = field(default=math.inf, metadata=_range(0.0, math.inf))  # limit E_c
    storage_mb_max: float = field(default=math.inf, metadata=_range(0.0, math.inf))  # limit S_c
    labor_s_per_1k_max: float = field(default=math.inf, metadata=_range(0.0, math.inf))  # limit L_c
    human_turnaround_s_max: float = field(default=math.inf, metadata=_range(0.0, math.inf))  # demand H_d on people's p95 turnaround


@dataclass(frozen=True)
class RewardConfig:
    accuracy_weight: float = field(default=1.0, metadata=_range(0.0, 100.0))  # w_A on accuracy in [0, 1]
    latency_weight: float = field(default=0.1, metadata=_range(0.0, 100.0))  # w_T on the network's saturated latency term
    latency_scale_ms: float = field(default=1.0, metadata=_range(1e-3, 1e9))  # T_s: network latency at which half the term is spent
    labor_weight: float = field(default=0.02, metadata=_range(0.0, 100.0))  # w_L per person-second per sample
    turnaround_weight: float = field(default=0.02, metadata=_range(0.0, 100.0))  # w_H on the saturated turnaround term
    turnaround_scale_s: float = field(default=30.0, metadata=_range(1e-3, 1e9))  # H_s: p95 turnaround at which half of w_H is spent
    violation_weight: float = field(default=1.0, metadata=_range(0.0, 100.0))  # w_V on the summed normalised violations


@dataclass(frozen=True)
class SearchConfig:
    algorithm: str = field(default="hgen", metadata=_choices(*SEARCH_ALGORITHMS))  # strategy
    trials: int = field(default=16, metadata=_range(1, 100000))  # candidates evaluated
    max_concurrent_trials: int = field(default=2, metadata=_range(1, 1024))  # trials running at once
    cpus_per_trial: float = field(default=1.0, metadata=_range(0.0, 1024.0))  # Ray CPUs each trial holds
    gpus_per_trial: float = field(default=0.0, metadata=_range(0.0, 64.0))  # Ray GPUs each trial holds; fractions share
    warmup_trials: int = field(default=8, metadata=_range(0, 100000))  # random candidates before the agents act
    updates_per_trial: int = field(default=32, metadata=_range(0, 1000))  # gradient steps per agent per finished trial
    epsilon_floor: float = field(default=0.1, metadata=_range(0.0, 1.0))  # hgen's DQN never explores less (assumed)
    hidden_units: int = field(default=64, metadata=_range(4, 1024))  # width of the agents' two hidden layers
    imagined_per_trial: int = field(default=0, metadata=_range(0, 1000))  # hgen: episodes the reward model scores per finished trial (off: 16 lost on the synthetic cliff, docs/results/imagination.md)
    storage_path: str | None = None  # Tune's state: null = <out>/tune (one node); on a multi-node cluster a folder every node mounts, or s3://, gs://
    trial_retries: int = field(default=1, metadata=_range(0, 10))  # reruns of a failed trial (a lost node) before it is scored failed
    references: bool = True  # also evaluate `original` and `human_only` (on test) for the report
    test_evaluation: str = field(default="pareto", metadata=_choices("pareto", "best"))  # chosen H-DNNs measured on test
    reuse_actors: bool = True  # run trials in warm processes (saves seconds of imports per trial)
    int8: bool = True  # each layer may also choose int8 weights; false: fp32 only (the no-quantization ablation)


@dataclass(frozen=True)
class LayerChoice:
    technique: str = "none"  # conv: none|l1|l2|fpgm|taylor; fc: none|svd
    ratio: float = field(default=0.0, metadata=_range(0.0, MAX_COMPRESSION_RATIO))  # fraction of channels or rank removed
    bits: int = field(default=32, metadata=_choices(*WEIGHT_BITS))  # weight width: 32 (fp32) or 8 (int8 per channel)


@dataclass(frozen=True)
class HumanChoice:
    mechanism: str = field(default="sequential", metadata=_choices("sequential", "majority"))  # how a chain decides
    # defer when the gate's confidence < tau (msp: 0 = never, 1 = always); set by the trial when deferral is given
    tau: float = field(default=0.0, metadata=_range(-math.inf, math.inf))
    k: int = field(default=1, metadata=_range(1, 3))  # people in the chain
    gate: str = field(default="msp", metadata=_choices(*GATE_SCORES))  # the score the gate ranks samples by
    # share of samples deferred: the trial sets tau to that quantile of the gate's confidence on the 12
    # validation challenges
    deferral: float | None = field(default=None, metadata=_range(0.0, 1.0))
    combine: str = field(default="replace", metadata=_choices(*COMBINATION_RULES))  # how people's answers count
    # h_yolo only: cells with objectness in [tau, tau_high] go to people
    tau_high: float = field(default=0.9, metadata=_range(0.0, 1.0))

    @property
    def asks_people(self) -> bool:
        """Whether any sample may go to people: a share d above 0, or a tau that can defer."""
        if self.deferral is not None:
            return self.deferral > 0
        return self.tau > 0 if self.gate == "msp" else self.tau > -math.inf


@dataclass(frozen=True)
class Candidate:
    layers: dict[str, LayerChoice] = field(default_factory=dict)  # per-layer compression
    human: HumanChoice = field(default_factory=HumanChoice)  # human participation


@dataclass(frozen=True)
class ServeConfig:
    """``serve``: how ``hgen-ray serve`` runs a saved H-DNN with real people (flags override each key)."""

    host: str = "127.0.0.1"  # the address the app binds; anything else exposes it beyond this machine
    port: int = field(default=8000, metadata=_range(1, 65535))
    people: int = field(default=3, metadata=_range(1, 256))  # person tokens created on first start
    people_timeout_s: float = field(default=60.0, metadata=_range(0.1, 86400.0))  # assumed: then the network answers
    calibration_rate: float = field(default=0.1, metadata=_range(0.0, 1.0))  # assumed: share of known test images shown
    answer_lease_s: float = field(default=30.0, metadata=_range(1.0, 86400.0))  # assumed: an unanswered look goes back
    max_upload_bytes: int = field(default=1_000_000, metadata=_range(1024, 100_000_000))  # larger bodies get a 400
    max_batch_size: int = field(default=32, metadata=_range(1, 1024))  # serve.batch's batch; 1 = no batching
    batch_wait_ms: float = field(default=5.0, metadata=_range(0.0, 1000.0))  # how long a batch waits to fill


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = field(default=0, metadata=_range(0, 2**31 - 1))  # every random draw derives from it
    cache_dir: str = ".cache/hgen-ray"  # trained base models, keyed by config hash
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)  # canvases for h_yolo and h_faster_rcnn
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    human_pool: HumanPoolConfig = field(default_factory=HumanPoolConfig)
    gate: GateConfig = field(default_factory=GateConfig)  # the gate scores searched and how people's answers count
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    constraints: Constraints = field(default_factory=Constraints)
    candidate: Candidate = field(default_factory=Candidate)  # evaluated when --candidate is not given
    reward: RewardConfig = field(default_factory=RewardConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)  # hgen-ray serve: the app with real people


BENCH_STRATEGIES: tuple[str, ...] = (*SEARCH_ALGORITHMS, "original", "human_only")
MAX_BENCH_SEEDS = 1000


@dataclass(frozen=True)
class BenchConfig:
    """``hgen-ray bench``: every strategy with the same trial budget, on each architecture."""

    # label -> experiment YAML, relative to the bench file
    experiments: dict[str, str] = field(default_factory=lambda: {"h_cnn": "quickstart.yaml"})
    strategies: tuple[str, ...] = field(default=BENCH_STRATEGIES, metadata=_choices(*BENCH_STRATEGIES))  # in order
    trials: int = field(default=16, metadata=_range(1, 100000))  # every search strategy's budget, per architecture
    trials_per_experiment: dict[str, int] = field(default_factory=dict)  # label -> its own budget, for every strategy
    max_concurrent_trials: int = field(default=2, metadata=_range(1, 1024))  # trials at once, for every strategy
    warmup_trials: int = field(default=6, metadata=_range(0, 100000))  # random candidates before the agents act (hgen)
    scaling_trials: int = field(default=0, metadata=_range(0, 100000))  # H-CNN trials on 1, then 2 nodes; 0 skips
    overhead_trials: int = field(default=0, metadata=_range(0, 100000))  # trials timed for the overhead; 0 skips
    seeds: int = field(default=1, metadata=_range(1, MAX_BENCH_SEEDS))  # each: base model, splits, people; all strategies

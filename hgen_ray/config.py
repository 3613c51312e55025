"""Experiment configuration: YAML in, validated, typed dataclasses out.

Every section is a dataclass whose fields carry a default and a one-line comment.
Validation is driven by the type hints plus ``field(metadata=...)``: ``range``
for numbers and ``choices`` for strings. Any problem raises :class:`ConfigError`
with one line naming the dotted key and what is allowed; the CLI turns it into
exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = [
    "BENCH_STRATEGIES",
    "BenchConfig",
    "CHALLENGE_CATEGORIES",
    "CHANCE_ACCURACY",
    "CROWD_MAJORITY_OF_3_ACCURACY",
    "CONV_TECHNIQUES",
    "FC_TECHNIQUES",
    "MAX_BENCH_SEEDS",
    "Candidate",
    "ConfigError",
    "Constraints",
    "DETECTOR_NAMES",
    "DataConfig",
    "DetectionConfig",
    "ExperimentConfig",
    "FinetuneConfig",
    "HumanChoice",
    "HumanPoolConfig",
    "LayerChoice",
    "MODEL_NAMES",
    "ModelConfig",
    "ProfileConfig",
    "RewardConfig",
    "SEARCH_ALGORITHMS",
    "SearchConfig",
    "as_dict",
    "build_dataclass",
    "check_consistent",
    "check_inside_working_dir",
    "config_hash",
    "load_candidate",
    "load_config",
    "read_yaml_mapping",
    "without_legacy_pool_keys",
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
MODEL_NAMES: tuple[str, ...] = ("h_cnn", "h_yolo", "h_faster_rcnn")
DETECTOR_NAMES: tuple[str, ...] = ("h_yolo", "h_faster_rcnn")
CHANCE_ACCURACY = 0.1  # ten classes: what a guess gets right
CROWD_MAJORITY_OF_3_ACCURACY = 0.835  # Xiao et al. 2017, Fashion-MNIST benchmark, human row (majority of 3)
MAX_COMPRESSION_RATIO = 0.9  # beyond this a layer keeps too few channels to train


class ConfigError(ValueError):
    """A configuration or candidate problem, with a one-line message."""


def _range(low: float, high: float) -> dict[str, Any]:
    return {"range": (low, high)}


def _choices(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


@dataclass(frozen=True)
class DataConfig:
    root: str = "data/fashion-mnist"  # idx .gz files; the env var HGEN_DATA overrides
    download: bool = False  # let torchvision download Fashion-MNIST if root lacks it
    severity: int = field(default=3, metadata=_range(1, 5))  # challenge severity evaluated
    test_per_category: int = field(default=1000, metadata=_range(10, 10000))  # test images per category, read only for the report
    validation_size: int = field(default=5000, metadata=_range(100, 20000))  # clean train images held out (never trained on)
    validation_per_category: int = field(default=1000, metadata=_range(10, 20000))  # of those, challenged per category for the search


@dataclass(frozen=True)
class ModelConfig:
    name: str = field(default="h_cnn", metadata=_choices(*MODEL_NAMES))  # architecture
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


@dataclass(frozen=True)
class HumanPoolConfig:
    size: int = field(default=8, metadata=_range(0, 256))  # people in the pool (0 only for compression_only)
    # queries per second the deployed app sees, all categories in one stream (assumed; 24 = the old 12 challenge
    # streams of 2 per second; the old clean stream made 26)
    arrival_rate_per_s: float = field(default=24.0, metadata=_range(0.0, 1e6))
    max_restarts: int = field(default=3, metadata=_range(0, 100))  # people replaced per request after a crash
    # clean-image accuracy of a majority of 3 people; default: Xiao et al. 2017's crowd (Fashion-MNIST paper)
    clean_majority_of_3_accuracy: float = field(default=CROWD_MAJORITY_OF_3_ACCURACY, metadata=_range(0.1, 1.0))


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
    updates_per_trial: int = field(default=8, metadata=_range(0, 1000))  # gradient steps per agent per finished trial
    hidden_units: int = field(default=64, metadata=_range(4, 1024))  # width of the agents' two hidden layers
    trial_retries: int = field(default=1, metadata=_range(0, 10))  # reruns of a failed trial (a lost node) before it is scored failed
    references: bool = True  # also evaluate `original` and `human_only` (on test) for the report
    test_evaluation: str = field(default="pareto", metadata=_choices("pareto", "best"))  # chosen H-DNNs measured on test
    reuse_actors: bool = True  # run trials in warm processes (saves seconds of imports per trial)


@dataclass(frozen=True)
class LayerChoice:
    technique: str = "none"  # conv: none|l1|l2|fpgm|taylor; fc: none|svd
    ratio: float = field(default=0.0, metadata=_range(0.0, MAX_COMPRESSION_RATIO))  # fraction of channels or rank removed


@dataclass(frozen=True)
class HumanChoice:
    mechanism: str = field(default="sequential", metadata=_choices("sequential", "majority"))  # how a chain decides
    tau: float = field(default=0.0, metadata=_range(0.0, 1.0))  # defer when confidence < tau; 0 = never
    k: int = field(default=1, metadata=_range(1, 3))  # people in the chain
    # h_yolo only: cells with objectness in [tau, tau_high] go to people
    tau_high: float = field(default=0.9, metadata=_range(0.0, 1.0))


@dataclass(frozen=True)
class Candidate:
    layers: dict[str, LayerChoice] = field(default_factory=dict)  # per-layer compression
    human: HumanChoice = field(default_factory=HumanChoice)  # human participation


@dataclass(frozen=True)
class ExperimentConfig:
    seed: int = field(default=0, metadata=_range(0, 2**31 - 1))  # every random draw derives from it
    cache_dir: str = ".cache/hgen-ray"  # trained base models, keyed by config hash
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)  # canvases for h_yolo and h_faster_rcnn
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    human_pool: HumanPoolConfig = field(default_factory=HumanPoolConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    constraints: Constraints = field(default_factory=Constraints)
    candidate: Candidate = field(default_factory=Candidate)  # evaluated when --candidate is not given
    reward: RewardConfig = field(default_factory=RewardConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


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


T = TypeVar("T")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:
        return "a list of names"
    if origin is tuple:
        return "a list of " + str(len(typing.get_args(hint))) + " integers"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _check_number(value: Any, hint: type, key: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if hint is int and not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{key}: expected a number, got NaN")
    return float(value) if hint is float else value


def _convert_names(value: Any, key: str, meta: typing.Mapping[str, Any]) -> tuple[str, ...]:
    """A non-empty list of distinct names, each one of ``meta["choices"]``."""
    allowed = meta["choices"]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a non-empty list of names from {', '.join(allowed)}, got {value!r}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ConfigError(f"{key}: {unknown[0]!r} is not one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{key}: names must not repeat, got {value!r}")
    return tuple(value)


def _convert(value: Any, hint: Any, key: str, meta: typing.Mapping[str, Any]) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, key)
    if origin is dict:
        _, value_hint = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _convert(v, value_hint, f"{key}.{k}", {}) for k, v in value.items()}
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:
        return _convert_names(value, key, meta)
    if origin is tuple:
        item_hints = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_hints):
            raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
        items = tuple(_check_number(v, h, f"{key}[{i}]") for i, (v, h) in enumerate(zip(value, item_hints)))
        if any(v < 1 or v > 4096 for v in items):
            raise ConfigError(f"{key}: each entry must be between 1 and 4096, got {list(value)}")
        return items
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        allowed = meta.get("choices")
        if allowed and value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
        return value
    number = _check_number(value, hint, key)
    low, high = meta.get("range", (-math.inf, math.inf))
    if not low <= number <= high:
        raise ConfigError(f"{key}: {number} is out of range [{low}, {high}]")
    return number


def build_dataclass(cls: type[T], data: Any, key: str = "") -> T:
    """Build ``cls`` from a mapping, checking keys, types and ranges.

    Args:
        cls: A dataclass type whose fields are annotated.
        data: The parsed YAML value; ``None`` means all defaults.
        key: Dotted path of ``data`` in the document, for error messages.

    Raises:
        ConfigError: With one line naming the offending key.
    """
    where = key or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        prefix = f"{key}." if key else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; allowed keys are {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        child = f"{key}.{name}" if key else name
        values[name] = _convert(value, hints[name], child, fields[name].metadata)
    return cls(**values)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, with ``yaml.safe_load`` only."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


def check_inside_working_dir(key: str, value: str) -> None:
    """A relative path a config writes to must stay inside the working directory: no ``..`` escapes.

    An absolute path is the user's explicit choice and is taken as given.
    """
    path = Path(value)
    if path.is_absolute():
        return
    root = Path.cwd().resolve()
    if not (root / path).resolve().is_relative_to(root):
        raise ConfigError(f"{key}: {value!r} leads outside the working directory {root}; allowed: a relative "
                          "path inside it, or an absolute path")


def check_consistent(config: ExperimentConfig) -> None:
    """Checks that span more than one key."""
    data = config.data
    if data.validation_per_category > data.validation_size:
        raise ConfigError(f"data.validation_per_category: {data.validation_per_category} exceeds the validation "
                          f"split (data.validation_size {data.validation_size}); allowed: 10 to {data.validation_size}")
    _check_people(config)


def _check_people(config: ExperimentConfig) -> None:
    pool = config.human_pool
    if pool.arrival_rate_per_s <= 0:
        raise ConfigError(f"human_pool.arrival_rate_per_s: {pool.arrival_rate_per_s} must be above 0 queries per "
                          "second; allowed: any positive number")
    if pool.clean_majority_of_3_accuracy <= CHANCE_ACCURACY:
        raise ConfigError(f"human_pool.clean_majority_of_3_accuracy: {pool.clean_majority_of_3_accuracy} is not above "
                          f"chance ({CHANCE_ACCURACY}); allowed: ({CHANCE_ACCURACY}, 1]")
    if pool.size == 0 and config.search.algorithm != "compression_only":
        raise ConfigError(f"human_pool.size: 0 people, but search.algorithm {config.search.algorithm} lets candidates "
                          "defer to people; allowed: 1 to 256, or 0 with search.algorithm compression_only")
    if pool.size == 0 and config.search.references:
        raise ConfigError("human_pool.size: 0 people, but search.references measures the human_only reference; "
                          "allowed: 1 to 256, or 0 with search.references false")


LEGACY_STREAMS = 12  # an H-DNN saved before the one stream timed 12 challenge streams of its own


def without_legacy_pool_keys(document: dict[str, Any]) -> dict[str, Any]:
    """An experiment saved before the pool had one stream: ``arrival_interval_s`` per stream becomes the rate.

    Only for reading H-DNNs saved by earlier versions; a config a user writes must use the new key.
    """
    pool = document.get("human_pool")
    if not isinstance(pool, dict) or "arrival_interval_s" not in pool:
        return document
    pool = dict(pool)
    interval = pool.pop("arrival_interval_s")
    if isinstance(interval, (int, float)) and interval > 0 and "arrival_rate_per_s" not in pool:
        pool["arrival_rate_per_s"] = LEGACY_STREAMS / interval
    return {**document, "human_pool": pool}


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate an experiment config file."""
    config = build_dataclass(ExperimentConfig, read_yaml_mapping(path))
    check_inside_working_dir("cache_dir", config.cache_dir)
    check_consistent(config)
    return config


def load_candidate(path: str | Path) -> Candidate:
    """Load and validate a candidate file (``layers`` and ``human``)."""
    return build_dataclass(Candidate, read_yaml_mapping(path), "candidate")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def config_hash(*parts: Any) -> str:
    """Stable short hash of dataclasses and plain values, for cache keys."""
    text = json.dumps([_jsonable(p) for p in parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def as_dict(value: Any) -> Any:
    """A plain-data copy of a config dataclass, for YAML and JSON."""
    return _jsonable(value)


"""YAML in, validated, typed dataclasses out.

Validation is driven by the type hints plus the fields' metadata (:mod:`hgen_ray.config.schema`).
``X | None`` also takes null (unset). Any problem raises :class:`ConfigError` with one line
naming the dotted key and what is allowed; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hgen_ray.config.schema import Candidate, ConfigError, ExperimentConfig

__all__ = [
    "as_dict",
    "build_dataclass",
    "candidate_to_config",
    "check_consistent",
    "check_inside_working_dir",
    "config_hash",
    "config_to_candidate",
    "json_text",
    "load_candidate",
    "load_config",
    "read_yaml_mapping",
    "without_legacy_pool_keys",
]

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
    """A non-empty list of distinct names, each one of ``meta["choices"]`` where the field names them."""
    allowed = meta.get("choices")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        wanted = f"names from {', '.join(allowed)}" if allowed else "names"
        raise ConfigError(f"{key}: expected a non-empty list of {wanted}, got {value!r}")
    unknown = [v for v in value if allowed and v not in allowed]
    if unknown:
        raise ConfigError(f"{key}: {unknown[0]!r} is not one of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{key}: names must not repeat, got {value!r}")
    return tuple(value)


def _convert_name_groups(value: Any, key: str) -> tuple[tuple[str, ...], ...]:
    """A list, perhaps empty, of lists of names; which names are allowed is checked where they are known."""
    if not isinstance(value, list) or not all(
            isinstance(group, list) and all(isinstance(name, str) for name in group) for group in value):
        raise ConfigError(f"{key}: expected a list of lists of names, got {value!r}")
    return tuple(tuple(group) for group in value)


def _convert_mapping(value: Any, hint: Any, key: str, meta: typing.Mapping[str, Any]) -> dict[str, Any]:
    """A mapping; with ``meta["keys"]`` it names exactly those keys, and ``meta["range"]`` bounds its values."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    required = meta.get("keys")
    if required is not None:
        unknown = [str(k) for k in value if k not in required]
        missing = [k for k in required if k not in value]
        if unknown or missing:
            problem = f"{unknown[0]!r} is not one of them" if unknown else f"{missing[0]!r} is missing"
            raise ConfigError(f"{key}: expected exactly the keys {', '.join(required)}; {problem}")
    _, value_hint = typing.get_args(hint)
    value_meta = {"range": meta["range"]} if "range" in meta else {}
    return {str(k): _convert(v, value_hint, f"{key}.{k}", value_meta) for k, v in value.items()}


def _without_none(hint: Any) -> tuple[Any, bool]:
    """``X | None`` gives ``(X, True)``; any other hint ``(hint, False)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _convert(value: Any, hint: Any, key: str, meta: typing.Mapping[str, Any]) -> Any:
    hint, optional = _without_none(hint)
    if optional and value is None:
        return None
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, key)
    if origin is dict:
        return _convert_mapping(value, hint, key, meta)
    if origin is tuple and typing.get_args(hint)[-1] is Ellipsis:
        if typing.get_origin(typing.get_args(hint)[0]) is tuple:
            return _convert_name_groups(value, key)
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
    allowed = meta.get("choices")
    if allowed and number not in allowed:
        raise ConfigError(f"{key}: {number} is not one of {', '.join(map(str, allowed))}")
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
    if pool.size == 0 and config.search.algorithm != "compression_only":
        raise ConfigError(f"human_pool.size: 0 people, but search.algorithm {config.search.algorithm} lets candidates "
                          "defer to people; allowed: 1 to 256, or 0 with search.algorithm compression_only")
    if pool.size == 0 and config.search.references:
        raise ConfigError("human_pool.size: 0 people, but search.references measures the human_only reference; "
                          "allowed: 1 to 256, or 0 with search.references false")


LEGACY_STREAMS = 12  # an H-DNN saved before the one stream timed 12 challenge streams of its own
LEGACY_CROWD_SOURCE = "saved by an earlier version as human_pool.clean_majority_of_3_accuracy"  # its report source


def without_legacy_pool_keys(document: dict[str, Any]) -> dict[str, Any]:
    """An experiment saved by an earlier version, in today's ``human_pool`` keys.

    Saved before the pool had one stream: ``arrival_interval_s`` per stream becomes the rate.
    Saved before people were calibrated per data set: ``clean_majority_of_3_accuracy`` moves
    into the ``calibration`` block. Only for reading H-DNNs saved by earlier versions; a config
    a user writes must use the new keys.
    """
    pool = document.get("human_pool")
    if not isinstance(pool, dict) or not {"arrival_interval_s", "clean_majority_of_3_accuracy"} & pool.keys():
        return document
    pool = dict(pool)
    if "arrival_interval_s" in pool:
        interval = pool.pop("arrival_interval_s")
        if isinstance(interval, (int, float)) and interval > 0 and "arrival_rate_per_s" not in pool:
            pool["arrival_rate_per_s"] = LEGACY_STREAMS / interval
    if "clean_majority_of_3_accuracy" in pool:
        target = pool.pop("clean_majority_of_3_accuracy")
        block = pool.get("calibration") or {}
        if isinstance(block, dict) and block.get("clean_majority_of_3_accuracy") is None:
            pool["calibration"] = {**block, "clean_majority_of_3_accuracy": target,
                                   "source": block.get("source") or LEGACY_CROWD_SOURCE}
    return {**document, "human_pool": pool}


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate an experiment config file.

    Raises:
        ConfigError: The file is unreadable, not YAML, empty (a run on nothing but defaults is rarely what was
            meant), or holds a wrong key or value.
    """
    data = read_yaml_mapping(path)
    if not data:
        raise ConfigError(f"{path}: the config is empty; allowed: a mapping of experiment keys (model, data, "
                          "search, ...; configs/quickstart.yaml is a full example)")
    config = build_dataclass(ExperimentConfig, data)
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


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any, **dumps: Any) -> str:
    """Strict JSON, with a newline: a non-finite number (a tau of -inf that defers nothing, a measure with nothing
    to measure) is written as null, which every JSON reader takes, where Python's default writes NaN or -Infinity."""
    return json.dumps(_finite(value), allow_nan=False, **dumps) + "\n"


def config_hash(*parts: Any) -> str:
    """Stable short hash of dataclasses and plain values, for cache keys."""
    text = json.dumps([_jsonable(p) for p in parts], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def as_dict(value: Any) -> Any:
    """A plain-data copy of a config dataclass, for YAML and JSON."""
    return _jsonable(value)


def candidate_to_config(candidate: Candidate) -> dict[str, Any]:
    """A candidate as nested plain values, the form Tune trials receive (every searcher, Optuna too, makes it)."""
    return as_dict(candidate)


def config_to_candidate(config: typing.Mapping[str, Any]) -> Candidate:
    """Inverse of :func:`candidate_to_config`, validated; keys other than layers and human are ignored."""
    return build_dataclass(Candidate, {k: v for k, v in config.items() if k in ("layers", "human")}, "candidate")

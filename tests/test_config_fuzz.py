"""Property-based: hundreds of malformed configs, each refused in one line that names the key, exit 2."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgen_ray.cli import main
from hgen_ray.config import ExperimentConfig, as_dict

MALFORMED_CONFIGS = 500


@dataclasses.dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]
    hint: Any
    meta: typing.Mapping[str, Any]
    optional: bool  # ``X | None``: null is a valid value


def _without_none(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def _leaves(cls: type, prefix: tuple[str, ...] = ()) -> list[Leaf]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        hint, optional = _without_none(hints[f.name])
        if dataclasses.is_dataclass(hint):
            found += _leaves(hint, (*prefix, f.name))
        elif typing.get_origin(hint) is not dict:  # mappings (candidate.layers, ...) have their own cases
            found.append(Leaf((*prefix, f.name), hint, f.metadata, optional))
    return found


LEAVES = _leaves(ExperimentConfig)
SECTIONS = [f.name for f in dataclasses.fields(ExperimentConfig) if dataclasses.is_dataclass(f.type) or
            dataclasses.is_dataclass(typing.get_type_hints(ExperimentConfig)[f.name])]


def _bad_values(leaf: Leaf) -> list[Any]:
    """Values that can never be valid for this leaf."""
    hint, meta = leaf.hint, leaf.meta
    if typing.get_origin(hint) is tuple:
        return [[8], "wide", [0, 5], [8, 10**9], {"a": 1}]
    if hint is bool:
        return ["yes", 1, [True], None]
    if hint is str:
        wrong_types = [3, [1, 2], {"a": 1}, True]
        return wrong_types + (["not-a-choice", "H_CNN"] if meta.get("choices") else [])
    low, high = meta.get("range", (-math.inf, math.inf))
    values: list[Any] = ["3", True, [1], {"n": 1}, None]
    values += [float("nan")] if hint is float else [1.5, float("nan")]
    if low > -math.inf:
        values += [low - 1, -1e308]
    if high < math.inf:
        values += [high * 10 + 1 if high > 0 else 1, 10**30]
    return values


@st.composite
def malformed(draw: st.DrawFn) -> tuple[Any, str]:
    """A config document and the text its error line must contain."""
    document: dict[str, Any] = as_dict(ExperimentConfig())
    kind = draw(st.sampled_from(["value", "value", "value", "unknown_key", "section", "top_level", "layers"]))
    if kind == "top_level":
        return draw(st.sampled_from([[1, 2], "just text", 42, [{"seed": 1}]])), "expected a YAML mapping"
    if kind == "section":
        section = draw(st.sampled_from(SECTIONS))
        document[section] = draw(st.sampled_from([[1, 2], "text", 7, True]))
        return document, f"{section}: expected a mapping"
    if kind == "layers":
        bad = draw(st.sampled_from([{"conv9": {"technique": "l1", "ratio": 0.5}}, {"conv1": 5},
                                    {"conv1": {"technique": "l1", "ratio": -0.1}},
                                    {"conv1": {"technique": "l1", "ratio": 0.95}}, {"fc1": {"rank": 3}}]))
        document["candidate"]["layers"] = bad
        return document, "candidate.layers."
    leaf = draw(st.sampled_from(LEAVES))
    target = document
    for part in leaf.path[:-1]:
        target = target[part]
    dotted = ".".join(leaf.path)
    if kind == "unknown_key":
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
        if name in target:
            name += "_x"
        target[name] = 1
        return document, (".".join(leaf.path[:-1]) + "." if len(leaf.path) > 1 else "") + f"{name}: unknown key"
    target[leaf.path[-1]] = draw(st.sampled_from([v for v in _bad_values(leaf) if not (leaf.optional and v is None)]))
    return document, f"{dotted}:"


@settings(max_examples=MALFORMED_CONFIGS, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=malformed())
def test_every_malformed_config_gets_one_line_naming_the_key_and_exit_2(
        case: tuple[Any, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document, expected = case
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(document))
    out = tmp_path / "never-written"
    assert main(["evaluate", "--config", str(config), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert expected in lines[0] and "Traceback" not in captured.err
    assert not out.exists()

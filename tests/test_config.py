from __future__ import annotations

import math
from pathlib import Path

import pytest

from hgen_ray.config import (
    Candidate,
    ConfigError,
    ExperimentConfig,
    HumanPoolConfig,
    SearchConfig,
    build_dataclass,
    check_consistent,
    config_hash,
    load_candidate,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]


def test_quickstart_config_loads_with_its_candidate() -> None:
    config = load_config(REPO / "configs" / "quickstart.yaml")
    assert config.model.name == "h_cnn"
    assert config.candidate.layers["conv2"].technique == "fpgm"
    assert config.candidate.human.k == 2
    assert config.constraints.storage_mb_max == pytest.approx(0.42)
    assert config.search.algorithm == "hgen" and config.search.trials == 16


def test_missing_sections_take_documented_defaults() -> None:
    config = build_dataclass(ExperimentConfig, {})
    assert config.data.severity == 3
    assert math.isinf(config.constraints.latency_ms_max)
    assert config.candidate == Candidate()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"data": {"severty": 2}}, "data.severty: unknown key"),
        ({"data": {"severity": 6}}, "data.severity: 6 is out of range [1, 5]"),
        ({"data": {"severity": "3"}}, "data.severity: expected an integer"),
        ({"model": {"epochs": 1.5}}, "model.epochs: expected an integer"),
        ({"data": {"download": "yes"}}, "data.download: expected true or false"),
        ({"constraints": {"latency_ms_max": float("nan")}}, "constraints.latency_ms_max: expected a number, got NaN"),
        ({"constraints": {"energy_mj_max": -1.0}}, "constraints.energy_mj_max: -1.0 is out of range"),
        ({"human_pool": [1, 2]}, "human_pool: expected a mapping, got list"),
        ({"model": {"conv_channels": [8]}}, "model.conv_channels: expected a list of 2 integers"),
        ({"candidate": {"layers": {"conv1": {"ratio": 0.95}}}}, "candidate.layers.conv1.ratio: 0.95 is out of range"),
        ({"candidate": {"human": {"deferral": 1.5}}}, "candidate.human.deferral: 1.5 is out of range [0.0, 1.0]"),
        ({"candidate": {"human": {"mechanism": "vote"}}}, "candidate.human.mechanism: 'vote' is not one of"),
        ({"candidate": {"human": {"k": 4}}}, "candidate.human.k: 4 is out of range [1, 3]"),
        ({"seed": True}, "seed: expected an integer, got True"),
    ],
)
def test_bad_values_name_the_key_in_one_line(document: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_dataclass(ExperimentConfig, document)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a YAML mapping at the top level, got list"),
        ("data:\n  severity: [1,\n", "not valid YAML at line"),
        # safe_load only: a tag that would build a Python object is refused, not run
        ("seed: !!python/object/apply:os.system ['echo owned']\n", "not valid YAML"),
    ],
)
def test_files_that_are_not_a_yaml_mapping_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_candidate_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "cand.yaml"
    path.write_text("layers:\n  fc1: {technique: svd, ratio: 0.5}\nhuman: {mechanism: majority, tau: 0.4, k: 3}\n")
    candidate = load_candidate(path)
    assert candidate.layers["fc1"].ratio == 0.5
    assert candidate.human.mechanism == "majority"


def test_config_hash_changes_with_content_only() -> None:
    a = build_dataclass(ExperimentConfig, {"model": {"epochs": 2}})
    b = build_dataclass(ExperimentConfig, {"model": {"epochs": 2}})
    c = build_dataclass(ExperimentConfig, {"model": {"epochs": 3}})
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_a_pool_of_nobody_is_allowed_only_when_candidates_never_defer() -> None:
    nobody = HumanPoolConfig(size=0)
    check_consistent(ExperimentConfig(human_pool=nobody,
                                      search=SearchConfig(algorithm="compression_only", references=False)))
    with pytest.raises(ConfigError, match="search.references measures the human_only reference"):
        check_consistent(ExperimentConfig(human_pool=nobody, search=SearchConfig(algorithm="compression_only")))
    for algorithm in ("hgen", "random", "optuna"):
        with pytest.raises(ConfigError, match=f"human_pool.size: 0 people, but search.algorithm {algorithm}"):
            check_consistent(ExperimentConfig(human_pool=nobody, search=SearchConfig(algorithm=algorithm)))

"""Shared fixtures: one Ray session and one small trained base model per test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import ray

from hgen_ray.config import DataConfig, ExperimentConfig, FinetuneConfig, HumanPoolConfig, ModelConfig, ProfileConfig
from hgen_ray.data.splits import Splits, load_splits
from hgen_ray.models import TrainedBase, load_or_train_base

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session():
    """One Ray runtime for the whole run: ray.init costs seconds."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> ExperimentConfig:
    """Small data and budgets so that the suite fits in minutes on 2 cores."""
    data_root = os.environ.get("HGEN_DATA") or str(REPO / "data" / "fashion-mnist")
    return ExperimentConfig(
        seed=0,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        data=DataConfig(root=data_root, test_per_category=200, validation_size=1000),
        model=ModelConfig(epochs=2, train_subset=8000),
        finetune=FinetuneConfig(epochs=1, subset=2000),
        human_pool=HumanPoolConfig(size=4, arrival_interval_s=1.0),
        profile=ProfileConfig(latency_repeats=10),
    )


@pytest.fixture(scope="session")
def splits(tiny_config: ExperimentConfig) -> Splits:
    return load_splits(tiny_config.data, tiny_config.seed)


@pytest.fixture(scope="session")
def trained_base(tiny_config: ExperimentConfig, splits: Splits) -> TrainedBase:
    return load_or_train_base(tiny_config, splits)


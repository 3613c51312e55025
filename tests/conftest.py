"""Shared fixtures: one Ray session, and one small trained base model per architecture, per test run."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import ray
from torch import nn

from hgen_ray.config import (
    DataConfig,
    DetectionConfig,
    ExperimentConfig,
    FinetuneConfig,
    HumanPoolConfig,
    ModelConfig,
    ProfileConfig,
)
from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.data.detection_splits import DetectionData, load_detection_data
from hgen_ray.data.splits import Splits, load_splits

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
        data=DataConfig(root=data_root, test_per_category=200, validation_size=1000, validation_per_category=200),
        model=ModelConfig(epochs=2, train_subset=8000),
        finetune=FinetuneConfig(epochs=1, subset=2000),
        human_pool=HumanPoolConfig(size=4, arrival_rate_per_s=12.0),
        profile=ProfileConfig(latency_repeats=10),
    )


@pytest.fixture(scope="session")
def splits(tiny_config: ExperimentConfig) -> Splits:
    return load_splits(tiny_config.data, tiny_config.seed, with_test=True)  # unit tests read both splits


@pytest.fixture(scope="session")
def trained_base(tiny_config: ExperimentConfig, splits: Splits) -> TrainedBase:
    return get_architecture("h_cnn").trained_base(tiny_config, splits)  # type: ignore[attr-defined]


def _detector_config(base: ExperimentConfig, name: str) -> ExperimentConfig:
    return dataclasses.replace(
        base,
        detection=DetectionConfig(train_canvases=400, validation_canvases=40, test_canvases=24),
        model=ModelConfig(name=name, epochs=2, batch_size=16, learning_rate=5e-3 if name == "h_faster_rcnn" else 3e-3),
        finetune=FinetuneConfig(epochs=1, subset=64, batch_size=16),
    )


@pytest.fixture(scope="session")
def yolo_config(tiny_config: ExperimentConfig) -> ExperimentConfig:
    return _detector_config(tiny_config, "h_yolo")


@pytest.fixture(scope="session")
def frcnn_config(tiny_config: ExperimentConfig) -> ExperimentConfig:
    return _detector_config(tiny_config, "h_faster_rcnn")


@pytest.fixture(scope="session")
def detection_data(yolo_config: ExperimentConfig) -> DetectionData:
    """Canvases depend on the detection section only, so both detectors share them."""
    return load_detection_data(yolo_config)


@pytest.fixture(scope="session")
def trained_yolo(yolo_config: ExperimentConfig, detection_data: DetectionData) -> nn.Module:
    return get_architecture("h_yolo").load_base(yolo_config, detection_data)


@pytest.fixture(scope="session")
def trained_frcnn(frcnn_config: ExperimentConfig, detection_data: DetectionData) -> nn.Module:
    return get_architecture("h_faster_rcnn").load_base(frcnn_config, detection_data)

from __future__ import annotations

import torch

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn
from hgen_ray.architectures.training import predict_logits
from hgen_ray.config import ExperimentConfig
from hgen_ray.data.splits import Splits

H_CNN = get_architecture("h_cnn")


def base_cache_path(config: ExperimentConfig):  # type: ignore[no-untyped-def]
    return H_CNN.base_cache_path(config)  # type: ignore[attr-defined]


def load_or_train_base(config: ExperimentConfig, splits: Splits) -> TrainedBase:
    return H_CNN.trained_base(config, splits)  # type: ignore[attr-defined]


def test_network_maps_images_to_ten_logits(tiny_config: ExperimentConfig) -> None:
    model = build_h_cnn(tiny_config.model)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert set(COMPRESSIBLE_LAYERS) <= {name for name, _ in model.named_modules()}


def test_the_network_takes_other_image_sizes_channels_and_class_counts(tiny_config: ExperimentConfig) -> None:
    model = build_h_cnn(tiny_config.model, in_channels=3, num_classes=5)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 5)
    assert model(torch.rand(2, 3, 64, 48)).shape == (2, 5)


def test_base_model_learns_and_is_calibrated(trained_base: TrainedBase, splits: Splits) -> None:
    accuracy = (predict_logits(trained_base.model, splits.test_images).argmax(1) == splits.test_labels).float().mean()
    assert float(accuracy) > 0.80  # 8k images, 2 epochs; the full run reaches 0.91
    assert 0.5 < trained_base.temperature < 3.0


def test_base_model_is_loaded_from_cache_with_identical_weights(
    tiny_config: ExperimentConfig, splits: Splits, trained_base: TrainedBase
) -> None:
    assert base_cache_path(tiny_config).is_file()
    again = load_or_train_base(tiny_config, splits)
    for name, tensor in trained_base.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name])
    assert again.temperature == trained_base.temperature


def test_corrupt_cache_file_is_retrained_over(tiny_config: ExperimentConfig, splits: Splits, tmp_path) -> None:
    import dataclasses

    config = dataclasses.replace(tiny_config, cache_dir=str(tmp_path),
                                 model=dataclasses.replace(tiny_config.model, train_subset=500, epochs=1))
    base_cache_path(config).parent.mkdir(parents=True, exist_ok=True)
    base_cache_path(config).write_bytes(b"not a checkpoint")
    rebuilt = load_or_train_base(config, splits)
    assert rebuilt.val_accuracy > 0.3
    assert torch.load(base_cache_path(config), weights_only=True)["state_dict"]

"""Saved H-DNNs: rebuilt from tensors only (all three architectures); a checkpoint carrying code is refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from hgen_ray.compress.svd import factorize_linear
from hgen_ray.config import Candidate, ExperimentConfig, HumanChoice, without_legacy_pool_keys
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.hdnn import HDNNError, load_hdnn, save_hdnn
from hgen_ray.architectures.h_cnn.network import BaseCNN


class _RunsCode:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(_RunsCode.marker),))


def test_pruned_and_factorised_model_round_trips(tmp_path: Path) -> None:
    model = BaseCNN((12, 20), 64).eval()
    model.fc1 = factorize_linear(model.fc1, 9)  # type: ignore[assignment]
    save_hdnn(tmp_path, model, FittedGate("msp", 1.3), Candidate(human=HumanChoice("majority", 1.0, 2)),
              ExperimentConfig(), (1, 28, 28))
    loaded = load_hdnn(tmp_path)
    images = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded.model(images), model(images))
    labels, deferred = loaded.predict(images)
    assert deferred.all() and labels.shape == (4,)  # tau = 1 sends every sample to people


def test_an_h_dnn_saved_before_model_pt_held_its_input_shape_still_loads_as_fashion_mnist_s(tmp_path: Path) -> None:
    model = BaseCNN((12, 20), 64).eval()
    save_hdnn(tmp_path, model, FittedGate("msp", 1.3), Candidate(), ExperimentConfig(), (1, 28, 28))
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    del payload["input_shape"]  # as earlier versions wrote it
    torch.save(payload, tmp_path / "model.pt")
    loaded = load_hdnn(tmp_path)
    assert loaded.input_shape == (1, 28, 28)
    images = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded.model(images), model(images))


def test_an_h_dnn_saved_before_the_one_stream_still_loads(tmp_path: Path) -> None:
    model = BaseCNN((12, 20), 64).eval()
    save_hdnn(tmp_path, model, FittedGate("msp", 1.1), Candidate(), ExperimentConfig(), (1, 28, 28))
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    saved["human_pool"] = {"size": 8, "arrival_interval_s": 0.5, "max_restarts": 3}  # as earlier versions wrote it
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    loaded = load_hdnn(tmp_path)
    images = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.model(images), model(images))
    assert without_legacy_pool_keys(saved)["human_pool"] == {"size": 8, "arrival_rate_per_s": 24.0, "max_restarts": 3}


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path: Path) -> None:
    save_hdnn(tmp_path, BaseCNN(), FittedGate("msp", 1.0), Candidate(), ExperimentConfig(), (1, 28, 28))
    _RunsCode.marker = str(tmp_path / "pwned")
    with open(tmp_path / "model.pt", "wb") as handle:
        pickle.dump({"state_dict": _RunsCode(), "temperature": 1.0}, handle)
    with pytest.raises(HDNNError, match="not a loadable H-DNN checkpoint"):
        load_hdnn(tmp_path)
    assert not (tmp_path / "pwned").exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _foreign_weights(path: Path) -> None:
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3, 3)}, "temperature": 1.0}, path)


@pytest.mark.parametrize("spoil", [_truncate, _foreign_weights], ids=["truncated", "foreign"])
def test_a_corrupt_or_foreign_best_gives_one_line_and_exit_2(tmp_path: Path, spoil,  # type: ignore[no-untyped-def]
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from hgen_ray.cli import main

    best = tmp_path / "best"
    save_hdnn(best, BaseCNN(), FittedGate("msp", 1.0), Candidate(), ExperimentConfig(), (1, 28, 28))
    spoil(best / "model.pt")
    assert main(["export", str(best), "--out", str(tmp_path / "onnx")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "model.pt: not a loadable H-DNN checkpoint" in error[0]
    assert not (tmp_path / "onnx").exists()


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(HDNNError, match="missing model.pt, candidate.yaml"):
        load_hdnn(tmp_path)

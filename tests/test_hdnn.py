"""Saved H-DNNs: rebuilt from tensors only; a checkpoint carrying code is refused, not run."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from hgen_ray.compress.svd import factorize_linear
from hgen_ray.config import Candidate, ExperimentConfig, HumanChoice
from hgen_ray.hdnn import HDNNError, load_hdnn, save_hdnn
from hgen_ray.models.h_cnn import BaseCNN


class _RunsCode:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(_RunsCode.marker),))


def test_pruned_and_factorised_model_round_trips(tmp_path: Path) -> None:
    model = BaseCNN((12, 20), 64).eval()
    model.fc1 = factorize_linear(model.fc1, 9)  # type: ignore[assignment]
    save_hdnn(tmp_path, model, 1.3, Candidate(human=HumanChoice("majority", 1.0, 2)), ExperimentConfig())
    loaded = load_hdnn(tmp_path)
    images = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded.model(images), model(images))
    labels, deferred = loaded.predict(images)
    assert deferred.all() and labels.shape == (4,)  # tau = 1 sends every sample to people


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path: Path) -> None:
    save_hdnn(tmp_path, BaseCNN(), 1.0, Candidate(), ExperimentConfig())
    _RunsCode.marker = str(tmp_path / "pwned")
    with open(tmp_path / "model.pt", "wb") as handle:
        pickle.dump({"state_dict": _RunsCode(), "temperature": 1.0}, handle)
    with pytest.raises(HDNNError, match="not a loadable H-DNN checkpoint"):
        load_hdnn(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(HDNNError, match="missing model.pt, candidate.yaml"):
        load_hdnn(tmp_path)

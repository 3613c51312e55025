"""The trainable's context handle: a reused trial process fetches the search's data once, and a new search's anew."""

from __future__ import annotations

import sys

import pytest
import ray
import torch
from ray import cloudpickle

from hgen_ray.config import ExperimentConfig
from hgen_ray.trial import ContextHandle, TrialContext


@ray.remote(num_cpus=0)
class TrialProcess:
    """Stands for one reused Tune trial process: every call gets the handle unpickled anew, as every trial does."""

    def mark(self, handle: ContextHandle) -> None:
        handle.get().data["marked"] = True

    def seen(self, handle: ContextHandle) -> tuple[bool, int]:
        context = handle.get()
        return "marked" in context.data, int(context.data["images"].shape[0])


def _context(config: ExperimentConfig, images: int) -> TrialContext:
    return TrialContext(experiment=config, data={"images": torch.zeros(images, 1, 28, 28)}, pool=None,
                        input_shape=(1, 28, 28))


@pytest.mark.usefixtures("ray_session")
def test_a_trial_process_keeps_the_context_it_fetched_until_a_new_search_hands_it_another(
        tiny_config: ExperimentConfig) -> None:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    first, second = ContextHandle(_context(tiny_config, 64)), ContextHandle(_context(tiny_config, 32))
    process = TrialProcess.remote()  # type: ignore[attr-defined]
    ray.get(process.mark.remote(first))
    # A second trial on the same search sees the very object the first one fetched: not copied out again.
    assert ray.get(process.seen.remote(first)) == (True, 64)
    # Another search's context is fetched, not mistaken for the one held.
    assert ray.get(process.seen.remote(second)) == (False, 32)
    ray.kill(process)

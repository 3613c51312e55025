"""A search's setup: its data and base model, and the space every strategy searches, with the same help.

The space carries the same storage projection and labour cap for every strategy;
``compression_only`` is the same space with the human step always off.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgen_ray.architectures import TAU_GRID, Architecture, architecture_for
from hgen_ray.config import MAX_COMPRESSION_RATIO, Candidate, ConfigError, Constraints, ExperimentConfig, LayerChoice
from hgen_ray.config.shrinkage import kept_channels
from hgen_ray.controller import SearchSpace, describe_layers
from hgen_ray.controller.space import LaborEstimate
from hgen_ray.controller.storage_projection import StorageLayout
from hgen_ray.controller.strategies import make_searcher
from hgen_ray.data.fashion_mnist import resolve_data_root
from hgen_ray.data.held_out_corruptions import OVERLAP_WITH_TEST
from hgen_ray.human.pool_timeline import capacity_s_per_1k
from hgen_ray.profile import estimate_energy_mj, storage_mb
from hgen_ray.profile.storage import BYTES_PER_MB, tensor_specs

__all__ = ["Prepared", "absolute_paths", "check_budget_is_possible", "gate_summary", "labour_within_pool", "prepare",
           "search_space", "searcher", "storage_layout"]

PROBE_RATIO = 0.5  # each conv is pruned by this much once, to see which tensors shrink with its channels


def absolute_paths(config: ExperimentConfig) -> ExperimentConfig:
    """Trials run in their own directories (and on other nodes): make paths absolute."""
    data = dataclasses.replace(config.data, root=str(resolve_data_root(config.data.root).resolve()))
    return dataclasses.replace(config, data=data, cache_dir=str(Path(config.cache_dir).resolve()))


@dataclass(frozen=True)
class Prepared:
    """A search's setup, done once: trials only load the base and read the data shipped to them."""

    config: ExperimentConfig  # paths made absolute
    architecture: Architecture
    data: Any  # the architecture's validation data, train part cut to the fine-tuning subset
    base: nn.Module
    layers: dict[str, str]  # the compressible layers an episode walks
    sample: torch.Tensor  # one input, for tracing and FLOP counts

    @functools.cached_property
    def storage(self) -> StorageLayout:
        """The base's tensors and their coupling, the exact storage projection: measured on first use only (a
        probe prunes each conv for real), since a search without a storage limit and the references need none."""
        no_training = dataclasses.replace(self.config.finetune, epochs=0)
        return storage_layout(self.base, self.layers, lambda probe: self.architecture.compress(
            self.config, self.base, probe, self.data, no_training))


def prepare(config: ExperimentConfig) -> Prepared:
    """Load the validation data and the base model (trained and cached here, once), for a search or a bench.

    Raises:
        ConfigError: The experiment's model settings are wrong.
    """
    config = absolute_paths(config)
    architecture = architecture_for(config)
    data = architecture.load_data(config, "validation")
    architecture.people_calibration(config, data)  # the people's figures are checked before any work
    architecture.check_data(config, data)
    base = architecture.load_base(config, data)
    architecture.usable_scores(config, base)  # a score the network cannot give is refused before anything is written
    return Prepared(config, architecture, architecture.trial_data(config, data), base,
                    architecture.compressible_layers(config, base, data), architecture.input_sample(config, data))


def storage_layout(base: nn.Module, layers: dict[str, str],
                   compress: Callable[[Candidate], nn.Module]) -> StorageLayout:
    """The base's tensors, and which of their dimensions follow each conv's output channels, measured by pruning
    each conv for real once (NNI's speedup shrinks whatever consumes the pruned channels).

    Raises:
        RuntimeError: A tensor shrank out of proportion to the channels pruned (the projection could not follow).
    """
    before = tensor_specs(base.state_dict())
    coupled, out_channels = {}, {}
    for conv in (name for name, kind in layers.items() if kind == "conv"):
        after = tensor_specs(compress(Candidate(layers={conv: LayerChoice("l1", PROBE_RATIO)})).state_dict())
        out = base.get_submodule(conv).out_channels
        kept = kept_channels(out, PROBE_RATIO)
        changed = tuple((name, dim) for name, (shape, _) in before.items()
                        for dim, side in enumerate(shape) if after[name][0][dim] != side)
        if any(side % out or after[name][0][dim] != side // out * kept
               for name, dim in changed for side in [before[name][0][dim]]):
            raise RuntimeError(f"pruning {conv} reshaped {changed} out of proportion to its channels")
        coupled[conv], out_channels[conv] = changed, out
    return StorageLayout(before, dict(layers), coupled, out_channels)


def smallest_candidate(layers: dict[str, str], int8: bool) -> Candidate:
    return Candidate(layers={n: LayerChoice("l1" if k == "conv" else "svd", MAX_COMPRESSION_RATIO, 8 if int8 else 32)
                             for n, k in layers.items()})


def check_budget_is_possible(prepared: Prepared) -> None:
    """Refuse a storage limit below the smallest model the space can produce."""
    config = prepared.config
    limit = config.constraints.storage_mb_max
    if limit == float("inf"):
        return
    smallest = prepared.storage.projected_bytes(smallest_candidate(prepared.layers, config.search.int8).layers) \
        / BYTES_PER_MB
    if limit < smallest:
        raise ConfigError(f"constraints.storage_mb_max: {limit} MB is below the smallest model this search space "
                          f"can produce ({smallest:.4f} MB); allowed: at least {smallest:.4f}")


def labour_within_pool(config: ExperimentConfig) -> Constraints:
    """The constraints with L_c lowered to what the pool can do (rho < 1) when that is less."""
    pool = config.human_pool
    capacity = capacity_s_per_1k(pool.size, pool.arrival_rate_per_s)
    return dataclasses.replace(config.constraints,
                               labor_s_per_1k_max=min(config.constraints.labor_s_per_1k_max, capacity))


def search_space(prepared: Prepared) -> SearchSpace:
    """The space every strategy searches, with the same storage projection and labour cap for all.

    The labour cap is always finite (at most the pool's capacity), so every architecture gives its labour
    curves, one per gate score the search may choose.
    """
    config, base, sample, architecture = prepared.config, prepared.base, prepared.sample, prepared.architecture
    human = config.search.algorithm != "compression_only"
    scores = architecture.usable_scores(config, base)
    reference = {"storage_mb": storage_mb(base), "energy_mj": estimate_energy_mj(base, sample)}
    specs = describe_layers(base, prepared.layers, sample)
    labor = ({score: LaborEstimate(TAU_GRID, curve)
              for score, curve in architecture.labour_curves(config, base, prepared.data, scores).items()}
             if human else None)
    return SearchSpace(specs, labour_within_pool(config), reference, human_enabled=human,
                       pool_size=config.human_pool.size, max_tau=architecture.max_tau(config), labor=labor,
                       gate_scores=scores, rate_scores=architecture.rate_scores, max_deferral=config.gate.max_deferral,
                       combine=architecture.combination(config),
                       storage=None if math.isinf(config.constraints.storage_mb_max) else prepared.storage,
                       int8=config.search.int8)


def gate_summary(config: ExperimentConfig) -> dict[str, Any]:
    """What a report says of the gate: the scores searched, the combination, d_max, and what the rejector learns
    from, with each family's kinship to the test categories (none is one)."""
    architecture = architecture_for(config)
    scores = architecture.searched_scores(config)
    families = config.gate.rejector_families if "rejector" in scores else ()
    return {"scores": list(scores), "combine": architecture.combination(config),
            "max_deferral": config.gate.max_deferral if set(scores) & set(architecture.rate_scores) else None,
            "rejector_families": {family: OVERLAP_WITH_TEST[family] for family in families}}


def searcher(prepared: Prepared) -> Any:
    """The strategy ``search.algorithm`` names, over the one space."""
    return make_searcher(search_space(prepared), prepared.config)

"""A search's setup: its data and base model, and the space every strategy searches, with the same help.

The space carries the same storage projection and labour cap for every strategy;
``compression_only`` is the same space with the human step always off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgen_ray.architectures import TAU_GRID, Architecture, architecture_for
from hgen_ray.config import MAX_COMPRESSION_RATIO, Candidate, ConfigError, Constraints, ExperimentConfig, LayerChoice
from hgen_ray.controller import SearchSpace, describe_layers
from hgen_ray.controller.space import LaborEstimate
from hgen_ray.controller.strategies import make_searcher
from hgen_ray.data.fashion_mnist import resolve_data_root
from hgen_ray.data.held_out_corruptions import OVERLAP_WITH_TEST
from hgen_ray.human.pool_timeline import capacity_s_per_1k
from hgen_ray.profile import estimate_energy_mj, storage_mb

__all__ = ["Prepared", "absolute_paths", "check_budget_is_possible", "gate_summary", "labour_within_pool", "prepare",
           "search_space", "searcher"]


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


def smallest_candidate(layers: dict[str, str]) -> Candidate:
    return Candidate(layers={n: LayerChoice("l1" if k == "conv" else "svd", MAX_COMPRESSION_RATIO)
                             for n, k in layers.items()})


def check_budget_is_possible(prepared: Prepared) -> None:
    """Refuse a storage limit below the smallest model the space can produce."""
    config = prepared.config
    limit = config.constraints.storage_mb_max
    if limit == float("inf"):
        return
    no_finetune = dataclasses.replace(config.finetune, epochs=0)
    smallest = storage_mb(prepared.architecture.compress(config, prepared.base, smallest_candidate(prepared.layers),
                                                         prepared.data, no_finetune))
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
                       combine=architecture.combination(config))


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

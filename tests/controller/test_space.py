from __future__ import annotations

import numpy as np
import pytest
import torch

from torch import nn

from hgen_ray.architectures.h_cnn.network import COMPRESSIBLE_LAYERS, build_h_cnn
from hgen_ray.architectures.training import training_step
from hgen_ray.compress import CompressionPlan, TaylorData, compress_network
from hgen_ray.config import (
    GATE_SCORES,
    Candidate,
    ConfigError,
    Constraints,
    HumanChoice,
    LayerChoice,
    ModelConfig,
    candidate_to_config,
    config_to_candidate,
)
from hgen_ray.controller.space import (
    HUMAN_OPTIONS,
    NUM_DISCRETE_ACTIONS,
    LaborEstimate,
    SearchSpace,
    describe_layers,
)
from hgen_ray.controller.storage_projection import StorageLayout
from hgen_ray.profile import storage_mb
from hgen_ray.search.setup import storage_layout


@pytest.fixture(scope="module")
def base() -> nn.Module:
    return build_h_cnn(ModelConfig()).eval()


@pytest.fixture(scope="module")
def specs(base: nn.Module):  # type: ignore[no-untyped-def]
    return describe_layers(base, COMPRESSIBLE_LAYERS, torch.rand(1, 1, 28, 28))


def compress_untrained(base: nn.Module, candidate: Candidate) -> nn.Module:
    batch = (torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 10)
    taylor = TaylorData(lambda: [batch], training_step)
    plan = CompressionPlan(batch[0][:2], lambda _model: taylor, lambda _model: None)
    return compress_network(base, candidate, dict(COMPRESSIBLE_LAYERS), plan)


@pytest.fixture(scope="module")
def storage(base: nn.Module) -> StorageLayout:
    return storage_layout(base, dict(COMPRESSIBLE_LAYERS), lambda candidate: compress_untrained(base, candidate))


def _space(specs, storage=None, **kwargs) -> SearchSpace:  # type: ignore[no-untyped-def]
    return SearchSpace(specs, Constraints(storage_mb_max=0.42), {"storage_mb": 1.69, "energy_mj": 0.2},
                       storage=storage, **kwargs)


def test_layer_facts_match_the_network(specs) -> None:  # type: ignore[no-untyped-def]
    conv1, conv2, fc1 = specs
    assert (conv1.kind, conv1.in_channels, conv1.out_channels, conv1.kernel) == ("conv", 1, 32, 3)
    assert conv2.flops == 14 * 14 * 64 * 32 * 9  # output positions x out channels x taps
    assert (fc1.kind, fc1.in_channels, fc1.out_channels, fc1.params) == ("fc", 3136, 128, 3136 * 128 + 128)


def test_observations_have_a_fixed_size_and_track_flops_reduced(specs) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs)
    first = space.observation(0, [], [])
    assert first.shape == (space.observation_size,) and first.dtype == np.float32
    pruned = space.observation(2, [1, 1], [1.0, 1.0])  # l1 at ratio 0.9 on both convs
    kept = space.observation(2, [0, 0], [1.0, 1.0])  # technique none: nothing removed
    flops_reduced = 11
    assert pruned[flops_reduced] > 0.3 and kept[flops_reduced] == 0
    assert first[15 + 3] == pytest.approx(0.42 / 1.69)  # the storage limit, relative to the original


def test_decode_maps_actions_to_a_valid_candidate(specs) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs)
    candidate = space.decode([3, 2, 1, 4], [-1.0, 0.0, 1.0, 0.2])
    assert candidate.layers["conv1"] == LayerChoice("fpgm", 0.0)
    assert candidate.layers["conv2"] == LayerChoice("l2", 0.45)
    assert candidate.layers["fc1"] == LayerChoice("svd", 0.9)
    assert candidate.human == HumanChoice("majority", 0.6, 2, tau_high=1.0)  # the space's max_tau
    assert space.decode([0, 0, 0, 0], [0.0] * 4).human.tau == 0  # option "off"


def test_compression_only_never_involves_people(specs) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs, human_enabled=False)
    rng = np.random.default_rng(0)
    assert all(space.decode(*space.random_actions(rng)).human.tau == 0 for _ in range(50))
    assert all(space.decode([0, 0, 0, a], [0.0] * 4).human.tau == 0 for a in range(NUM_DISCRETE_ACTIONS))


def test_chains_longer_than_the_pool_are_not_in_the_space(specs) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs, pool_size=2)
    ks = {space.decode([0, 0, 0, a], [0.0] * 4).human.k for a in range(NUM_DISCRETE_ACTIONS)}
    assert ks == {1, 2}


def test_candidate_config_round_trip_is_validated() -> None:
    candidate = Candidate(layers={"conv1": LayerChoice("l1", 0.5)}, human=HumanChoice("majority", 0.3, 3))
    assert config_to_candidate({**candidate_to_config(candidate), "other": 1}) == candidate
    with pytest.raises(ConfigError, match="candidate.layers.conv1.ratio"):
        config_to_candidate({"layers": {"conv1": {"technique": "l1", "ratio": 2.0}}})


def test_layers_shrink_just_enough_to_keep_the_storage_limit_reachable(specs, storage, base) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs, storage, int8=False)  # storage limit 0.42 of 1.69 MB
    discrete: list[int] = []
    continuous: list[float] = []
    for step in range(space.num_steps):  # an agent that wants no compression and no people at all
        action, value = space.within_budget(step, discrete, continuous, 0, -1.0)
        discrete.append(action)
        continuous.append(value)
    candidate = space.decode(discrete, continuous)
    assert candidate.layers["conv1"].technique == "none" and candidate.layers["conv2"].technique == "none"
    assert candidate.layers["fc1"].technique == "svd"  # the last layer had to take what the limit needs
    stored = storage_mb(compress_untrained(base, candidate))
    less_cut = {**candidate.layers, "fc1": LayerChoice("svd", round(candidate.layers["fc1"].ratio - 0.01, 4))}
    assert stored <= 0.42 < storage.projected_bytes(less_cut) / 1e6  # enough, and one ratio step less is not
    assert space.within_budget(0, [], [], 2, 0.5) == (2, 0.5)  # already within budget: untouched


def test_where_no_ratio_is_enough_at_32_bits_the_layer_takes_int8(specs, storage) -> None:  # type: ignore[no-untyped-def]
    space = SearchSpace(specs, Constraints(storage_mb_max=0.06), {"storage_mb": 1.69, "energy_mj": 0.2},
                        storage=storage)
    discrete, continuous = space.legal_actions([0] * space.num_steps, [-1.0] * space.num_steps)
    candidate = space.decode(discrete, continuous)
    assert candidate.layers["fc1"].bits == 8 and candidate.layers["fc1"].technique == "svd"
    assert storage.projected_bytes(candidate.layers) <= 0.06e6


def test_the_projection_equals_the_measured_storage_on_50_random_candidates(specs, storage, base) -> None:  # type: ignore[no-untyped-def]
    space = _space(specs, storage)
    rng = np.random.default_rng(7)
    for _ in range(50):
        layers = space.decode(*space.random_actions(rng)).layers
        assert storage.projected_bytes(layers) == round(storage_mb(compress_untrained(base, Candidate(layers))) * 1e6)
    unlimited = SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2})
    assert unlimited.within_budget(2, [0, 0], [-1.0, -1.0], 0, -1.0) == (0, -1.0)


def test_tau_is_lowered_until_the_estimated_labour_fits_the_limit(specs) -> None:  # type: ignore[no-untyped-def]
    taus = np.linspace(0.0, 1.0, 101)
    labor = LaborEstimate(taus, person_s_per_sample=taus * 4.0)  # the gate defers a share tau of samples
    space = SearchSpace(specs, Constraints(labor_s_per_1k_max=700.0), {"storage_mb": 1.69, "energy_mj": 0.2},
                        labor={"msp": labor})
    human = len(specs)
    pair = space.human_options.index(("majority", 2))
    action, value = space.within_budget(human, [0, 0, 0], [0.0, 0.0, 0.0], pair, 1.0)
    assert action == pair and space.level(value, "msp") == pytest.approx(0.07)  # 2 people x 4 s: 0.07 gives 560 <= 0.9 x 700, 0.08 gives 640
    assert space.within_budget(human, [0, 0, 0], [0.0] * 3, pair, -0.99) == (pair, -0.99)  # already affordable
    assert space.within_budget(human, [0, 0, 0], [0.0] * 3, 0, 1.0) == (0, 1.0)  # people off: nothing to limit


def test_a_band_that_narrows_as_tau_grows_gets_a_floor_under_tau(specs) -> None:  # type: ignore[no-untyped-def]
    taus = np.linspace(0.0, 1.0, 101)
    cells = np.where(taus > 0, 1.0 - taus, 0.0)  # H-YOLO: the band [tau, 1] holds fewer cells as tau grows
    space = SearchSpace(specs, Constraints(labor_s_per_1k_max=700.0), {"storage_mb": 1.69, "energy_mj": 0.2},
                        labor={"msp": LaborEstimate(taus, person_s_per_sample=cells * 4.0)})
    assert not space.tau_caps and set(space.tau_floors) == {("msp", 1), ("msp", 2), ("msp", 3)}
    human, pair = len(specs), space.human_options.index(("majority", 2))
    action, value = space.within_budget(human, [0, 0, 0], [0.0] * 3, pair, -0.9)
    assert action == pair and space.level(value, "msp") == pytest.approx(0.93)  # 2 x 4 s x 0.07 = 560 <= 630; 0.92 gives 640
    assert space.within_budget(human, [0, 0, 0], [0.0] * 3, pair, 0.99) == (pair, 0.99)  # already affordable


def _stored_mb(space: SearchSpace, candidate: Candidate) -> float:
    return space.storage.projected_bytes(candidate.layers) / 1e6  # type: ignore[union-attr]


def _labour(labor: LaborEstimate, candidate: Candidate) -> float:
    return 0.0 if candidate.human.tau == 0 else labor.labor_s_per_1k(candidate.human.tau, candidate.human.k)


@pytest.mark.parametrize("strategy", ["random", "optuna"])
def test_random_and_optuna_proposals_get_the_same_projection_as_hgens(specs, storage, strategy: str) -> None:  # type: ignore[no-untyped-def]
    from ray.tune.search.optuna import OptunaSearch

    from hgen_ray.controller import RandomSearcher
    from hgen_ray.controller.projection import ProjectedSearcher, action_space

    taus = np.linspace(0.0, 1.0, 101)
    labor = LaborEstimate(taus, person_s_per_sample=taus * 4.0)
    space = SearchSpace(specs, Constraints(storage_mb_max=0.42, labor_s_per_1k_max=700.0),
                        {"storage_mb": 1.69, "energy_mj": 0.2}, labor={"msp": labor}, storage=storage)
    searcher = (RandomSearcher(space, seed=3) if strategy == "random" else
                ProjectedSearcher(OptunaSearch(space=action_space(space), metric="reward", mode="max", seed=3), space))
    proposals = [config_to_candidate(searcher.suggest(f"t{i}")) for i in range(40)]
    assert all(_stored_mb(space, c) <= 0.42 for c in proposals)  # storage limit kept, as hgen's
    assert all(_labour(labor, c) <= 0.9 * 700.0 + 1e-9 for c in proposals)  # the same labour cap
    raw = [space.random_actions(np.random.default_rng(i)) for i in range(40)]
    unprojected = [space.decode(*actions) for actions in raw]
    assert any(_stored_mb(space, c) > 0.42 for c in unprojected)  # without it, proposals break the limit


def test_hgens_warm_up_rollouts_get_exactly_the_projection_the_baselines_get(specs, storage) -> None:  # type: ignore[no-untyped-def]
    from hgen_ray.config import RewardConfig, SearchConfig
    from hgen_ray.controller import HGenSearcher

    taus = np.linspace(0.0, 1.0, 101)
    space = SearchSpace(specs, Constraints(storage_mb_max=0.42, labor_s_per_1k_max=700.0),
                        {"storage_mb": 1.69, "energy_mj": 0.2},
                        labor={"msp": LaborEstimate(taus, person_s_per_sample=taus * 4.0)}, storage=storage)
    hgen = HGenSearcher(space, RewardConfig(), SearchConfig(trials=20, warmup_trials=10), seed=5)
    same_draws = np.random.default_rng([5, 1])  # the warm-up's own stream (see HGenSearcher._build)
    for index in range(10):
        baseline = candidate_to_config(space.decode(*space.legal_actions(*space.random_actions(same_draws))))
        assert hgen.suggest(f"t{index}") == baseline  # step by step through within_budget, as legal_actions


def test_a_gate_step_chooses_the_score_and_the_labour_cap_follows_the_score_chosen(specs) -> None:  # type: ignore[no-untyped-def]
    shares = np.linspace(0.0, 1.0, 101)
    labor = {"msp": LaborEstimate(shares, person_s_per_sample=shares * 2.0),  # defers d of the challenges too
             "mahalanobis": LaborEstimate(shares, person_s_per_sample=np.minimum(shares * 3, 1.0) * 4.0)}  # 3x d
    space = SearchSpace(specs, Constraints(labor_s_per_1k_max=700.0), {"storage_mb": 1.69, "energy_mj": 0.2},
                        labor=labor, gate_scores=("msp", "mahalanobis"), rate_scores=("msp", "mahalanobis"),
                        max_deferral=0.3, combine="bayes")
    assert space.num_steps == len(specs) + 2 and space.step_kind(len(specs)) == "gate"
    assert space.options(len(specs)) == ("msp", "mahalanobis")
    pair = space.human_options.index(("majority", 2))
    layers = [0] * len(specs)
    caps = {}
    for gate in (0, 1):
        _, value = space.within_budget(space.human_step, [*layers, gate], [0.0] * (len(specs) + 1), pair, 1.0)
        score = space.options(len(specs))[gate]
        caps[score] = space.level(value, score)
    assert caps["msp"] == pytest.approx(0.15)  # 2 x 2 s x 0.15 = 600 <= 630; 0.16 gives 640
    assert caps["mahalanobis"] == pytest.approx(0.02)  # 2 x 4 s x 3 x 0.02 = 480; 0.03 gives 720
    candidate = space.decode([*layers, 1, pair], [0.0] * len(specs) + [0.0, 1.0])
    assert candidate.human == HumanChoice("majority", 0.0, 2, gate="mahalanobis", deferral=0.3, combine="bayes")


def test_a_detector_space_gives_msp_a_raw_tau_and_its_shift_score_a_share_each_on_its_own_range(specs) -> None:  # type: ignore[no-untyped-def]
    space = SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2}, max_tau=0.9,
                        gate_scores=("msp", "mahalanobis"), rate_scores=("mahalanobis",), max_deferral=0.3)
    pair, layers = space.human_options.index(("majority", 2)), [0] * len(specs)
    by_msp = space.decode([*layers, 0, pair], [0.0] * len(specs) + [0.0, 1.0]).human
    by_shift = space.decode([*layers, 1, pair], [0.0] * len(specs) + [0.0, 1.0]).human
    assert (by_msp.gate, by_msp.tau, by_msp.tau_high, by_msp.deferral) == ("msp", 0.9, 0.9, None)
    assert (by_shift.gate, by_shift.deferral) == ("mahalanobis", 0.3)


def test_compression_only_has_no_gate_step(specs) -> None:  # type: ignore[no-untyped-def]
    space = SearchSpace(specs, Constraints(), {"storage_mb": 1.69, "energy_mj": 0.2}, human_enabled=False,
                        gate_scores=("msp", "energy", "mahalanobis", "rejector"), rate_scores=GATE_SCORES)
    assert space.num_steps == len(specs) + 1 and space.gate_step is None
    pair = HUMAN_OPTIONS.index(("majority", 2))  # a chain the space would offer, were people on
    assert not space.decode([0] * len(specs) + [pair], [0.0] * space.num_steps).human.asks_people

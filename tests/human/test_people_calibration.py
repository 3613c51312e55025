"""Which figures people meet on which data: the ``human_pool.calibration`` block and its resolver."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from hgen_ray.config import (
    CHALLENGE_CATEGORIES,
    ConfigError,
    HumanPoolConfig,
    PeopleCalibrationConfig,
    as_dict,
    build_dataclass,
    without_legacy_pool_keys,
)
from hgen_ray.human.calibration import (
    FASHION_MNIST_CALIBRATION,
    GENERIC_CROWD_MAJORITY_OF_3_ACCURACY,
    GENERIC_SOURCE,
    HUMAN_RETENTION_AT_SEVERITY_5,
    answer_median_s,
    resolve_calibration,
    wrong_answer_distribution,
)
from hgen_ray.human.simulated_human import HumanTask, answer_task

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
PETS = ("cat", "dog", "rabbit", "hamster", "parrot")
RETENTION = {category: 0.5 for category in CHALLENGE_CATEGORIES}
EXACT_KEYS = ("human_pool.calibration.retention_at_severity_5: expected exactly the keys low_resolution, small_size, "
              "motion_blur, defocus_blur, gaussian_noise, impulse_noise, low_light, low_contrast, fog, occlusion, jpeg, "
              "rotation; ")


def _pool(block: dict) -> HumanPoolConfig:
    return build_dataclass(HumanPoolConfig, {"calibration": block}, "human_pool")


def test_fashion_mnist_without_a_block_takes_the_sourced_figures() -> None:
    calibration = resolve_calibration(None, "fashion-mnist", FASHION_NAMES)
    assert calibration == FASHION_MNIST_CALIBRATION
    assert calibration.clean_majority_of_3_accuracy == 0.835 and calibration.chance == 0.1  # Xiao et al. 2017
    assert "Xiao et al. 2017" in calibration.source and "Geirhos" in calibration.source


def test_other_data_without_a_block_takes_the_generic_default_says_so_and_warns_once(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hgen_ray.human.calibration"):
        calibration = resolve_calibration(None, "pets-warned-once", PETS)
        assert resolve_calibration(PeopleCalibrationConfig(), "pets-warned-once", PETS) == calibration
    assert calibration.source == GENERIC_SOURCE
    assert calibration.source.startswith("generic default (assumed): not calibrated to this data")
    assert calibration.num_classes == 5 and calibration.chance == pytest.approx(0.2)
    assert calibration.clean_majority_of_3_accuracy == GENERIC_CROWD_MAJORITY_OF_3_ACCURACY
    assert calibration.retention_at_severity_5 == HUMAN_RETENTION_AT_SEVERITY_5
    assert calibration.look_alike_groups == ()
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "set human_pool.calibration" in caplog.text


def test_without_look_alike_groups_wrong_answers_are_even_over_the_other_classes() -> None:
    calibration = resolve_calibration(None, "pets", PETS)
    assert wrong_answer_distribution(2, calibration).tolist() == [0.25, 0.25, 0.0, 0.25, 0.25]
    pair = resolve_calibration(PeopleCalibrationConfig(look_alike_groups=(("cat", "dog"),)), "cats-dogs", PETS[:2])
    assert wrong_answer_distribution(0, pair).tolist() == [0.0, 1.0]  # a group of every class takes every error


def test_the_users_block_wins_and_its_source_is_named() -> None:
    block = _pool({"clean_majority_of_3_accuracy": 0.9, "retention_at_severity_5": RETENTION,
                   "look_alike_groups": [["cat", "dog"], ["hamster", "rabbit"]], "source": "our pilot, 2024"})
    calibration = resolve_calibration(block.calibration, "pets", PETS)
    assert calibration.clean_majority_of_3_accuracy == 0.9 and calibration.retention_at_severity_5 == RETENTION
    assert calibration.look_alike_groups == ((0, 1), (3, 2))
    assert calibration.source == "human_pool.calibration: our pilot, 2024"
    wrong = wrong_answer_distribution(3, calibration)
    assert wrong[2] == pytest.approx(0.8) and wrong[[0, 1, 4]] == pytest.approx([0.2 / 3] * 3)


def test_a_partial_block_on_fashion_mnist_keeps_the_sourced_rest_and_says_which_is_which() -> None:
    calibration = resolve_calibration(PeopleCalibrationConfig(clean_majority_of_3_accuracy=0.8), "fashion-mnist",
                                      FASHION_NAMES)
    assert calibration.clean_majority_of_3_accuracy == 0.8
    assert calibration.retention_at_severity_5 == FASHION_MNIST_CALIBRATION.retention_at_severity_5
    assert calibration.look_alike_groups == FASHION_MNIST_CALIBRATION.look_alike_groups
    assert calibration.source.startswith("human_pool.calibration: no source given (clean_majority_of_3_accuracy); ")
    assert calibration.source.endswith("(retention_at_severity_5, look_alike_groups)")


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ({c: 0.5 for c in CHALLENGE_CATEGORIES if c != "fog"}, EXACT_KEYS + "'fog' is missing"),
        ({**RETENTION, "snow": 0.5}, EXACT_KEYS + "'snow' is not one of them"),
        ({**RETENTION, "fog": 1.5}, "human_pool.calibration.retention_at_severity_5.fog: 1.5 is out of range [0.0, 1.0]"),
        ({**RETENTION, "fog": "high"}, "human_pool.calibration.retention_at_severity_5.fog: expected a number"),
        ([0.5] * 12, "human_pool.calibration.retention_at_severity_5: expected a mapping"),
    ],
)
def test_a_bad_retention_table_is_refused_in_one_line_naming_the_key(retention: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _pool({"retention_at_severity_5": retention})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([["cat", "wolf"]], "human_pool.calibration.look_alike_groups: 'wolf' is not a class of this data; "
                            "allowed: cat, dog, rabbit, hamster, parrot"),
        ([["cat"]], "human_pool.calibration.look_alike_groups: the group ['cat'] names fewer than 2 classes"),
        ([["cat", "dog"], ["dog", "parrot"]], "human_pool.calibration.look_alike_groups: 'dog' is named twice"),
    ],
)
def test_look_alike_groups_must_name_classes_of_the_data(groups: list, message: str) -> None:
    block = _pool({"look_alike_groups": groups}).calibration
    with pytest.raises(ConfigError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        resolve_calibration(block, "pets", PETS)


@pytest.mark.parametrize("groups", ["cat", [["cat", 3]], ["cat", "dog"], {"a": ["cat"]}])
def test_look_alike_groups_must_be_lists_of_names(groups: object) -> None:
    with pytest.raises(ConfigError, match="^human_pool.calibration.look_alike_groups: expected a list of lists of names"):
        _pool({"look_alike_groups": groups})


def test_the_crowd_target_must_beat_chance_on_this_data() -> None:
    block = PeopleCalibrationConfig(clean_majority_of_3_accuracy=0.45)
    assert resolve_calibration(block, "pets", PETS).clean_majority_of_3_accuracy == 0.45  # chance 0.2
    with pytest.raises(ConfigError, match=r"^human_pool.calibration.clean_majority_of_3_accuracy: 0.45 is not above "
                                          r"chance \(0.5 for 2 classes\); allowed: \(0.5, 1\]"):
        resolve_calibration(block, "cats-dogs", PETS[:2])
    with pytest.raises(ConfigError, match=r"^human_pool.calibration.clean_majority_of_3_accuracy: 1.2 is out of range"):
        _pool({"clean_majority_of_3_accuracy": 1.2})


def test_the_block_round_trips_through_yaml() -> None:
    pool = _pool({"clean_majority_of_3_accuracy": 0.9, "retention_at_severity_5": RETENTION,
                  "look_alike_groups": [["cat", "dog"]], "source": "pilot"})
    for config in (pool, HumanPoolConfig()):
        document = yaml.safe_load(yaml.safe_dump(as_dict(config)))
        assert build_dataclass(HumanPoolConfig, document, "human_pool") == config


def test_an_experiment_saved_with_the_old_top_level_crowd_key_still_reads() -> None:
    saved = {"seed": 1, "human_pool": {"size": 8, "arrival_rate_per_s": 24.0, "clean_majority_of_3_accuracy": 0.8}}
    converted = without_legacy_pool_keys(saved)["human_pool"]
    assert converted["calibration"]["clean_majority_of_3_accuracy"] == 0.8
    pool = build_dataclass(HumanPoolConfig, converted, "human_pool")
    assert pool.calibration.clean_majority_of_3_accuracy == 0.8 and pool.clean_majority_of_3_accuracy == 0.8
    assert "earlier version" in resolve_calibration(pool.calibration, "fashion-mnist", FASHION_NAMES).source
    assert HumanPoolConfig().clean_majority_of_3_accuracy == 0.835  # unset: Xiao et al. 2017's crowd
    with pytest.raises(ConfigError, match="^human_pool.clean_majority_of_3_accuracy: unknown key"):
        build_dataclass(HumanPoolConfig, saved["human_pool"], "human_pool")  # a config a user writes: the new key


def test_the_fitted_answer_times_set_how_long_simulated_people_take() -> None:
    fitted = resolve_calibration(PeopleCalibrationConfig(answer_median_s=1.5, answer_sigma=0.2), "fashion-mnist",
                                 FASHION_NAMES)
    assert answer_median_s(1.0, fitted) == 1.5  # a sure person takes the fitted median
    times = np.array([answer_task(HumanTask((0, 0, n, 0), 1, 1.0, answer_median_s(1.0, fitted)), 0, 0, fitted)
                      .response_s for n in range(2000)])
    assert np.median(times) == pytest.approx(1.5, rel=0.05)
    assert np.log(times).std() == pytest.approx(0.2, rel=0.1)
    assert "answer_median_s" in fitted.source

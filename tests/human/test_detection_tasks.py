"""Simulated people on detection tasks: cell checks and box drawing, alone and through the pool.

Checks the calibration against the published numbers (extreme clicking: 7 s and 88% mIoU
per box; cell checks of 1-2 s), the small-item misses, determinism per (task, person, seed),
and how :meth:`HumanPool.answer_images` hands out and collects whole images.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hgen_ray.config import HumanPoolConfig
from hgen_ray.human import HumanPool
from hgen_ray.human.calibration import HUMAN_RETENTION_AT_SEVERITY_5, human_accuracy
from hgen_ray.human.detection_tasks import (
    BOX_DRAW_MEDIAN_S,
    CELL_CHECK_MEDIAN_S,
    CELL_VERDICT_ACCURACY_CLEAN,
    EDGE_VISIBILITY_FLOOR,
    EXTREME_CLICK_MEAN_IOU,
    SMALL_ITEM_MAX_SIDE_PX,
    SMALL_ITEM_MISS_CLEAN,
    SMALL_ITEM_MISS_WORST,
    BoxAnswer,
    BoxTask,
    CellAnswer,
    CellTask,
    check_cell,
    draw_boxes,
    missed_small_item_probability,
)
from hgen_ray.human.pool import ImageRequest, routed_person
from hgen_ray.human.simulated_human import AnyTask, answer_any

SEED = 13
VISIBLE = 0.8  # well above EDGE_VISIBILITY_FLOOR


def _iou(drawn: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (n, 4) arrays of x1, y1, x2, y2 boxes."""
    width = np.clip(np.minimum(drawn[:, 2], truth[:, 2]) - np.maximum(drawn[:, 0], truth[:, 0]), 0.0, None)
    height = np.clip(np.minimum(drawn[:, 3], truth[:, 3]) - np.maximum(drawn[:, 1], truth[:, 1]), 0.0, None)
    inter = width * height
    area_drawn = (drawn[:, 2] - drawn[:, 0]) * (drawn[:, 3] - drawn[:, 1])
    area_truth = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    return inter / (area_drawn + area_truth - inter)


def _large_boxes(key: int) -> tuple[tuple[float, float, float, float], ...]:
    """Two to four large boxes of varied sizes and aspect ratios, side by side, never overlapping."""
    sizes = [(20.0, 20.0), (60.0, 30.0), (25.0, 80.0), (120.0, 45.0)]
    boxes = []
    x = 5.0 + key % 7
    for w, h in sizes[: 2 + key % 3]:
        boxes.append((x, 10.0, x + w, 10.0 + h))
        x += w + 30.0
    return tuple(boxes)


def _cell_tasks(n: int, category: str, severity: int, start: int = 0) -> list[CellTask]:
    return [CellTask(key=(start + i,), on_item=i % 2 == 0, true_label=i % 10, category=category, severity=severity)
            for i in range(n)]


# --- draw_boxes ------------------------------------------------------------------------------


def test_drawn_boxes_reach_the_extreme_clicking_mean_iou() -> None:
    """Visible, large boxes come back in task order with the published 88% mIoU."""
    ious = []
    for key in range(1500):
        truth = _large_boxes(key)
        task = BoxTask((key,), truth, (VISIBLE,) * len(truth), "clean", 1)
        answer = draw_boxes(task, person=key % 5, seed=SEED)
        assert len(answer.boxes) == len(truth)  # large visible items are never missed
        drawn = np.array(answer.boxes)
        assert (drawn[:, 2] > drawn[:, 0]).all() and (drawn[:, 3] > drawn[:, 1]).all()
        ious.append(_iou(drawn, np.array(truth)))
    ious = np.concatenate(ious)
    assert len(ious) > 4000
    assert ious.mean() == pytest.approx(EXTREME_CLICK_MEAN_IOU, abs=0.02)
    assert ious.min() > 0.5  # noise of a few % of the side: always a recognisable box


def test_mean_iou_does_not_depend_on_box_shape() -> None:
    """The edge noise is scaled to the side, so a wide and a tall box are drawn equally well."""
    for w, h in [(20.0, 20.0), (200.0, 25.0), (25.0, 200.0)]:
        truth = ((3.0, 4.0, 3.0 + w, 4.0 + h),)
        drawn = np.array([draw_boxes(BoxTask((k,), truth, (VISIBLE,), "clean", 1), 0, SEED).boxes[0]
                          for k in range(2000)])
        assert _iou(drawn, np.repeat(np.array(truth), len(drawn), axis=0)).mean() == pytest.approx(
            EXTREME_CLICK_MEAN_IOU, abs=0.02)


def test_drawing_time_grows_with_the_number_of_boxes_drawn() -> None:
    """About 7 s per drawn box: the median per box, and the mean in proportion to the count."""
    per_box, by_count = [], {}
    for key in range(3000):
        truth = _large_boxes(key)
        answer = draw_boxes(BoxTask((key,), truth, (VISIBLE,) * len(truth), "clean", 1), person=1, seed=SEED)
        per_box.append(answer.response_s / len(answer.boxes))
        by_count.setdefault(len(answer.boxes), []).append(answer.response_s)
    assert np.median(per_box) == pytest.approx(BOX_DRAW_MEDIAN_S, rel=0.15)
    assert set(by_count) == {2, 3, 4}
    means = {count: np.mean(times) for count, times in by_count.items()}
    assert means[4] / means[2] == pytest.approx(2.0, rel=0.1)
    assert means[3] / means[2] == pytest.approx(1.5, rel=0.1)


def test_single_box_time_has_the_published_median() -> None:
    truth = ((0.0, 0.0, 40.0, 30.0),)
    times = [draw_boxes(BoxTask((k,), truth, (VISIBLE,), "clean", 1), 2, SEED).response_s for k in range(3000)]
    assert np.median(times) == pytest.approx(BOX_DRAW_MEDIAN_S, rel=0.05)


def test_items_with_faint_edges_are_not_drawn_and_cost_nothing() -> None:
    faint = EDGE_VISIBILITY_FLOOR * 0.99
    for key in range(200):
        truth = _large_boxes(key)
        answer = draw_boxes(BoxTask((key,), truth, (faint,) * len(truth), "clean", 1), person=key % 3, seed=SEED)
        assert answer.boxes == () and answer.response_s == 0.0
    # Only the visible one of two items is drawn; the floor itself counts as visible.
    truth = ((0.0, 0.0, 40.0, 40.0), (100.0, 100.0, 150.0, 160.0))
    for key in range(200):
        answer = draw_boxes(BoxTask((key,), truth, (faint, EDGE_VISIBILITY_FLOOR), "clean", 1), 0, SEED)
        assert len(answer.boxes) == 1
        x1, y1, x2, y2 = answer.boxes[0]
        assert (x1 + x2) / 2 > 80 and (y1 + y2) / 2 > 80  # the second, visible box


# --- small items ------------------------------------------------------------------------------


def test_small_item_miss_probability_rises_with_difficulty_and_is_capped() -> None:
    assert missed_small_item_probability("clean", 1) == SMALL_ITEM_MISS_CLEAN
    assert missed_small_item_probability("clean", 5) == SMALL_ITEM_MISS_CLEAN
    for category in ("fog", "gaussian_noise"):
        assert missed_small_item_probability(category, 5) > missed_small_item_probability(category, 1)
        assert missed_small_item_probability(category, 1) > SMALL_ITEM_MISS_CLEAN
    for category in HUMAN_RETENTION_AT_SEVERITY_5:
        levels = [missed_small_item_probability(category, s) for s in range(1, 6)]
        assert all(a < b for a, b in zip(levels, levels[1:]))
        assert SMALL_ITEM_MISS_CLEAN < levels[0] and levels[-1] <= SMALL_ITEM_MISS_WORST
    # The category people find hardest reaches the worst miss rate at the top severity.
    hardest = min(HUMAN_RETENTION_AT_SEVERITY_5, key=HUMAN_RETENTION_AT_SEVERITY_5.__getitem__)
    assert missed_small_item_probability(hardest, 5) == pytest.approx(SMALL_ITEM_MISS_WORST)


@pytest.mark.parametrize(("category", "severity"), [("clean", 1), ("fog", 5), ("gaussian_noise", 5)])
def test_small_items_are_missed_at_the_modelled_rate_and_large_ones_never(category: str, severity: int) -> None:
    """One small item (at the top left) and one just-too-large item (bottom right) per image."""
    small_side = SMALL_ITEM_MAX_SIDE_PX  # the boundary is inclusive: 14 px is small
    large_side = SMALL_ITEM_MAX_SIDE_PX + 1.0
    truth = ((10.0, 10.0, 10.0 + small_side, 10.0 + small_side - 4.0),
             (200.0, 200.0, 200.0 + large_side, 200.0 + large_side))
    n = 4000
    small_seen = 0
    for key in range(n):
        answer = draw_boxes(BoxTask((key,), truth, (VISIBLE, VISIBLE), category, severity), key % 4, SEED)
        centres_x = [(b[0] + b[2]) / 2 for b in answer.boxes]
        assert sum(x > 100 for x in centres_x) == 1  # the large item is always drawn
        small_seen += sum(x < 100 for x in centres_x)
    expected = missed_small_item_probability(category, severity)
    assert 1.0 - small_seen / n == pytest.approx(expected, abs=0.025)  # > 3 std errors even at p = 0.5


# --- check_cell -------------------------------------------------------------------------------


def test_cell_checks_on_clean_images_are_calibrated() -> None:
    tasks = _cell_tasks(6000, "clean", 1)
    answers = [check_cell(t, person=t.key[0] % 3, seed=SEED) for t in tasks]
    verdicts = np.array([a.is_item == t.on_item for t, a in zip(tasks, answers)])
    assert verdicts.mean() == pytest.approx(CELL_VERDICT_ACCURACY_CLEAN, abs=0.02)
    assert verdicts[::2].mean() == pytest.approx(CELL_VERDICT_ACCURACY_CLEAN, abs=0.03)  # boxes on an item
    assert verdicts[1::2].mean() == pytest.approx(CELL_VERDICT_ACCURACY_CLEAN, abs=0.03)  # boxes on nothing
    times = np.array([a.response_s for a in answers])
    assert (times > 0).all()
    assert np.median(times) == pytest.approx(CELL_CHECK_MEDIAN_S, rel=0.1)
    assert 1.0 < np.median(times) < 2.0  # DESIGN.md: about 1-2 s per cell
    with_item = [(t, a) for t, a in zip(tasks, answers) if t.on_item]
    class_right = np.mean([a.label == t.true_label for t, a in with_item])
    assert class_right == pytest.approx(human_accuracy("clean", 1), abs=0.03)
    assert all(0 <= a.label < 10 for a in answers)


def test_a_hard_category_lowers_cell_verdict_accuracy() -> None:
    clean = _cell_tasks(4000, "clean", 1)
    hard = _cell_tasks(4000, "gaussian_noise", 5)
    accuracy = {name: np.mean([check_cell(t, 0, SEED).is_item == t.on_item for t in tasks])
                for name, tasks in (("clean", clean), ("hard", hard))}
    assert accuracy["hard"] < accuracy["clean"] - 0.1
    assert accuracy["hard"] > 0.6  # still well above a coin toss


# --- determinism and dispatch -----------------------------------------------------------------


def test_same_task_person_and_seed_give_the_identical_answer() -> None:
    cells = _cell_tasks(300, "fog", 3)
    boxes = [BoxTask((k,), _large_boxes(k) + ((300.0, 5.0, 310.0, 15.0),), (VISIBLE,) * 5, "fog", 4)
             for k in range(300)]
    for task in [*cells, *boxes]:
        first = answer_any(task, 2, SEED)
        assert answer_any(task, 2, SEED) == first  # a retried actor task answers exactly the same
        assert answer_any(dataclasses.replace(task), 2, SEED) == first  # an equal copy, too
    assert sum(check_cell(t, 2, SEED) != check_cell(t, 3, SEED) for t in cells) == len(cells)  # times differ
    assert sum(draw_boxes(t, 2, SEED).boxes != draw_boxes(t, 3, SEED).boxes for t in boxes) == len(boxes)
    assert sum(check_cell(t, 2, SEED) != check_cell(t, 2, SEED + 1) for t in cells) == len(cells)


def test_answer_any_routes_each_task_kind_to_its_answerer() -> None:
    cell = CellTask((7,), True, 3, "clean", 1)
    box = BoxTask((7,), ((0.0, 0.0, 30.0, 30.0),), (VISIBLE,), "clean", 1)
    assert answer_any(cell, 1, SEED) == check_cell(cell, 1, SEED)
    assert isinstance(answer_any(cell, 1, SEED), CellAnswer)
    assert answer_any(box, 1, SEED) == draw_boxes(box, 1, SEED)
    assert isinstance(answer_any(box, 1, SEED), BoxAnswer)


# --- HumanPool.answer_images ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(ray_session: None):
    with HumanPool(HumanPoolConfig(size=4), seed=SEED) as running:
        yield running


def _image(index: int, tasks: tuple[AnyTask, ...], category: int = 9) -> ImageRequest:
    return ImageRequest((1, category, index), tasks)


@pytest.mark.parametrize("mechanism", ["majority", "sequential"])
def test_every_request_gets_k_full_answer_lists_in_task_order_from_its_routed_people(pool: HumanPool,
                                                                                    mechanism: str) -> None:
    k = 2
    requests = [_image(r, tuple(_cell_tasks(3 + r % 4, "fog", 2, start=100 * r))) for r in range(12)]
    result = pool.answer_images(requests, mechanism, k)
    assert len(result.answers) == len(requests) == len(result.durations)
    for request, answers, durations in zip(requests, result.answers, result.durations):
        assert len(answers) == len(durations) == k
        for step, (said, seconds) in enumerate(zip(answers, durations)):
            person = routed_person(request.key, step, len(pool.people))
            expected = [answer_any(dataclasses.replace(task, key=(*request.key, *task.key, step)), person, SEED)
                        for task in request.tasks]
            assert said == expected  # task order kept, the routed person's own answers
            assert seconds == pytest.approx(sum(a.response_s for a in said))
        assert len({routed_person(request.key, step, len(pool.people)) for step in range(k)}) == k
    assert pool.answer_images(requests, mechanism, k) == result


def test_an_image_gets_the_same_answers_whatever_else_is_asked(pool: HumanPool) -> None:
    shared = [_image(r, tuple(_cell_tasks(4, "fog", 2, start=10 * r))) for r in range(6)]
    alone = pool.answer_images(shared, "majority", 3)
    crowded = pool.answer_images([_image(50 + r, tuple(_cell_tasks(3, "fog", 2))) for r in range(9)] + shared,
                                 "majority", 3)
    assert crowded.answers[9:] == alone.answers and crowded.durations[9:] == alone.durations


def test_box_drawing_requests_come_back_as_box_answers(pool: HumanPool) -> None:
    truth = _large_boxes(2)
    request = _image(0, (BoxTask((0,), truth, (VISIBLE,) * len(truth), "clean", 1),), category=0)
    result = pool.answer_images([request], "majority", 3)
    assert [len(step) for step in result.answers[0]] == [1, 1, 1]
    for step in result.answers[0]:
        assert isinstance(step[0], BoxAnswer) and len(step[0].boxes) == len(truth)


def test_answer_images_with_nothing_to_do(pool: HumanPool) -> None:
    empty = pool.answer_images([], "majority", 2)
    assert empty.answers == [] and empty.durations == []
    no_tasks = pool.answer_images([_image(0, ())], "sequential", 2)
    assert no_tasks.answers == [[[], []]] and no_tasks.durations == [[0, 0]]


@pytest.mark.parametrize(("mechanism", "k", "match"), [
    ("majority", 0, "k=0"),
    ("sequential", 5, "k=5"),
    ("vote", 2, "unknown human mechanism"),
])
def test_answer_images_refuses_bad_chains(pool: HumanPool, mechanism: str, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pool.answer_images([_image(0, tuple(_cell_tasks(2, "fog", 1)))], mechanism, k)

"""The people queue: who sees what, when a request is done, and that a restart loses nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hgen_ray.config import HumanChoice
from hgen_ray.human.calibration import FASHION_MNIST_CALIBRATION
from hgen_ray.serve.chain import ChainRule
from hgen_ray.serve.people_queue import LookError, PeopleQueue

IMAGE = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 28, 28)
NETWORK = [0.05] * 10
NETWORK[7] = 0.55  # the network says class 7


def _queue(folder: Path, mechanism: str = "majority", k: int = 2, timeout_s: float = 60.0,
           lease_s: float = 120.0) -> PeopleQueue:
    rule = ChainRule.of(HumanChoice(mechanism=mechanism, k=k, combine="replace"), 3, FASHION_MNIST_CALIBRATION)
    return PeopleQueue(folder / "queue.sqlite", folder / "answers.csv", rule, timeout_s, lease_s)


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "answers.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_request_goes_to_k_different_people_and_their_plurality_is_its_answer(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    request = queue.add(IMAGE, 7, NETWORK, 0.2, now=100.0)
    first = queue.next_request_look("person-1", now=101.0)
    assert first is not None and np.array_equal(first.image, IMAGE)
    second = queue.next_request_look("person-2", now=102.0)
    assert second is not None
    assert queue.next_request_look("person-3", now=102.5) is None  # two looks out: the chain of 2 is covered
    assert queue.answer(first.id, "person-1", 3, 4.0, now=103.0) is None
    assert queue.answer(second.id, "person-2", 3, 2.0, now=104.0) == request
    state = queue.state(request, now=105.0)
    assert state is not None and (state.state, state.final_label, state.source) == ("answered", 3, "people")
    assert state.finished_at == 104.0


def test_a_sequential_chain_of_3_asks_a_third_person_only_when_two_disagree(tmp_path: Path) -> None:
    queue = _queue(tmp_path, mechanism="sequential", k=3)
    agreed, split = queue.add(IMAGE, 7, NETWORK, 0.2, 1.0), queue.add(IMAGE, 7, NETWORK, 0.2, 2.0)
    for person, labels in (("person-1", (4, 4)), ("person-2", (4, 5))):
        for label in labels:
            look = queue.next_request_look(person, now=3.0)
            assert look is not None
            queue.answer(look.id, person, label, 1.0, now=4.0)
    assert queue.state(agreed, 5.0).state == "answered"  # type: ignore[union-attr]
    assert queue.state(split, 5.0).state == "waiting"  # type: ignore[union-attr]
    third = queue.next_request_look("person-3", now=6.0)
    assert third is not None
    assert queue.answer(third.id, "person-3", 5, 1.0, now=7.0) == split
    assert queue.state(split, 8.0).final_label == 5  # type: ignore[union-attr]


def test_an_answer_is_only_taken_from_the_person_shown_the_image_and_only_once(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=1.0)
    look = queue.next_request_look("person-1", now=2.0)
    assert look is not None
    with pytest.raises(LookError):
        queue.answer(look.id, "person-2", 1, 1.0, now=3.0)
    queue.answer(look.id, "person-1", 1, 1.0, now=3.0)
    with pytest.raises(LookError):
        queue.answer(look.id, "person-1", 2, 1.0, now=4.0)


def test_a_request_nobody_answers_in_time_falls_back_to_the_network(tmp_path: Path) -> None:
    queue = _queue(tmp_path, timeout_s=10.0)
    request = queue.add(IMAGE, 7, NETWORK, 0.2, now=0.0)
    assert queue.state(request, now=9.0).state == "waiting"  # type: ignore[union-attr]
    state = queue.state(request, now=10.5)
    assert state is not None and (state.state, state.final_label, state.source) == ("timed_out", 7,
                                                                                    "model, people timed out")
    assert queue.next_request_look("person-1", now=11.0) is None  # no longer shown to anyone


def test_a_look_left_unanswered_past_its_lease_goes_back_to_the_queue(tmp_path: Path) -> None:
    queue = _queue(tmp_path, k=1, lease_s=30.0)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=0.0)
    assert queue.next_request_look("person-1", now=1.0) is not None
    assert queue.next_request_look("person-2", now=20.0) is None
    assert queue.next_request_look("person-2", now=31.5) is not None


def test_a_restart_keeps_the_queue_and_answers_and_requeues_what_was_shown(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    waiting = queue.add(IMAGE, 7, NETWORK, 0.2, now=1.0)
    answered_look = queue.next_request_look("person-1", now=2.0)
    shown_look = queue.next_request_look("person-2", now=2.0)
    assert answered_look is not None and shown_look is not None
    queue.answer(answered_look.id, "person-1", 2, 3.0, now=5.0)
    queue.db.close()  # as if the process died here

    reopened = _queue(tmp_path)
    assert reopened.state(waiting, now=6.0).state == "waiting"  # type: ignore[union-attr]
    with pytest.raises(LookError):
        reopened.answer(shown_look.id, "person-2", 2, 1.0, now=6.0)  # its look was dropped on reopening...
    again = reopened.next_request_look("person-2", now=7.0)  # ...so the image is shown again
    assert again is not None
    assert reopened.answer(again.id, "person-2", 2, 1.0, now=8.0) == waiting
    assert [(r["person"], r["label"]) for r in _rows(tmp_path)] == [("person-1", "2"), ("person-2", "2")]


def test_an_answer_recorded_but_not_yet_in_answers_csv_is_written_there_on_reopening(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    look = queue.calibration_look("person-1", IMAGE, "fog", 4, 6, now=1.0)
    with queue.db:  # the state between the answer's commit and its row in answers.csv
        queue.db.execute("UPDATE looks SET answered_at = 3.0, label = 6, seconds = 2.0 WHERE id = ?", (look.id,))
    queue.db.close()
    _queue(tmp_path)
    rows = _rows(tmp_path)
    assert len(rows) == 1
    assert (rows[0]["category"], rows[0]["severity"], rows[0]["true_label"], rows[0]["seconds"]) == ("fog", "4", "6",
                                                                                                    "2.0")


def test_seconds_are_the_page_s_own_but_never_longer_than_the_server_saw(tmp_path: Path) -> None:
    queue = _queue(tmp_path, k=1)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=0.0)
    look = queue.next_request_look("person-1", now=10.0)
    assert look is not None
    queue.answer(look.id, "person-1", 1, 999.0, now=12.5)
    assert float(_rows(tmp_path)[0]["seconds"]) == pytest.approx(2.5)


def test_stats_count_the_queue_answers_and_turnaround(tmp_path: Path) -> None:
    queue = _queue(tmp_path, k=1)
    done = queue.add(IMAGE, 7, NETWORK, 0.2, now=100.0)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=101.0)
    look = queue.next_request_look("person-1", now=102.0)
    assert look is not None
    assert queue.answer(look.id, "person-1", 1, 6.0, now=104.0) == done
    stats = queue.stats(now=110.0, people=2)
    assert stats["queue_length"] == 1 and stats["people_active"] == 1 and stats["answers_total"] == 1
    assert stats["turnaround_s_p50"] == pytest.approx(4.0)
    assert stats["pool_utilisation"] == pytest.approx(2.0 / (2 * 300.0))  # 2 s of the page's timing, clamped


def test_a_crash_between_an_answer_and_its_request_s_end_keeps_neither(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    queue = _queue(tmp_path, k=1)
    request = queue.add(IMAGE, 7, NETWORK, 0.2, now=1.0)
    look = queue.next_request_look("person-1", now=2.0)
    assert look is not None

    def crash(request_id: str, now: float) -> None:
        raise KeyboardInterrupt("the process dies here")

    monkeypatch.setattr(queue, "_finish_if_done", crash)
    with pytest.raises(KeyboardInterrupt):
        queue.answer(look.id, "person-1", 3, 1.0, now=3.0)
    monkeypatch.undo()
    assert queue.state(request, now=4.0).state == "waiting"  # type: ignore[union-attr]
    assert queue.answer(look.id, "person-1", 3, 1.0, now=5.0) == request  # the look is still open: answer again
    assert len(_rows(tmp_path)) == 1


def test_asking_again_drops_the_person_s_unanswered_look_so_it_holds_no_place(tmp_path: Path) -> None:
    queue = _queue(tmp_path, k=1)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=1.0)
    first = queue.next_request_look("person-1", now=2.0)  # then the page reloads, or a second tab asks
    assert first is not None
    again = queue.next_request_look("person-1", now=3.0)
    assert again is not None and again.id != first.id  # the same image, under a new look
    assert queue.next_request_look("person-2", now=4.0) is None  # only one look holds the chain's one place
    with pytest.raises(LookError):
        queue.answer(first.id, "person-1", 1, 1.0, now=5.0)
    queue.answer(again.id, "person-1", 1, 1.0, now=5.0)
    assert queue.next_request_look("person-1", now=6.0) is None  # answered: never shown to them again


@pytest.mark.parametrize("page_seconds", [float("nan"), 0.0, -1.0, float("inf")])
def test_seconds_the_page_could_not_time_are_the_server_s_own(tmp_path: Path, page_seconds: float) -> None:
    queue = _queue(tmp_path, k=1)
    queue.add(IMAGE, 7, NETWORK, 0.2, now=0.0)
    look = queue.next_request_look("person-1", now=10.0)
    assert look is not None
    queue.answer(look.id, "person-1", 1, page_seconds, now=11.25)
    assert float(_rows(tmp_path)[0]["seconds"]) == pytest.approx(1.25)

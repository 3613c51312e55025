"""The deferred samples waiting for people, and every look and answer, kept in SQLite so a restart loses nothing.

A **request** is a deferred sample: its image, the network's answer and probabilities, and its state
(``waiting``, ``answered`` or ``timed_out``). A **look** is one person shown one image: a request's, or a
calibration image's (a held-out test image of known category and label). A person gets a request's image
only once, and a request is shown to no more people at a time than its chain still needs.

Why SQLite: each change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), fsynced
(``synchronous=FULL``), so a killed app keeps every queued request and every answer it acknowledged, and an
answer is never kept without the request it finished. A person works on one image at a time: asking for
the next drops their earlier look if unanswered (a reload, a second tab), so it holds no place in a chain. On opening, the looks shown but not answered are dropped,
which puts their requests back in the queue, and any answer not yet in ``answers.csv`` is appended there.
A request still waiting when ``people_timeout_s`` has passed since it arrived is answered by the network.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hgen_ray.serve.answers_log import append_answer
from hgen_ray.serve.chain import ChainRule

__all__ = ["Look", "LookError", "PeopleQueue", "RequestState"]

WAITING, ANSWERED, TIMED_OUT = "waiting", "answered", "timed_out"
ACTIVE_WINDOW_S = 300.0  # the window /v1/stats counts active people, answers per minute and utilisation over
PEOPLE, MODEL_TIMED_OUT = "people", "model, people timed out"

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, image BLOB NOT NULL, network_label INTEGER NOT NULL,
    probabilities TEXT NOT NULL, gate_score REAL NOT NULL, state TEXT NOT NULL,
    final_label INTEGER, finished_at REAL);
CREATE TABLE IF NOT EXISTS looks (
    id TEXT PRIMARY KEY, request_id TEXT, person TEXT NOT NULL, shown_at REAL NOT NULL,
    answered_at REAL, label INTEGER, seconds REAL, category TEXT, severity INTEGER, true_label INTEGER,
    logged INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS looks_by_request ON looks (request_id);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, created_at);
"""


class LookError(LookupError):
    """An answer to a look that is not this person's, or no longer open."""


@dataclass(frozen=True)
class Look:
    id: str
    image: np.ndarray  # [C, H, W] float in [0, 1]


@dataclass(frozen=True)
class RequestState:
    id: str
    state: str
    network_label: int
    final_label: int | None
    gate_score: float
    created_at: float
    finished_at: float | None

    @property
    def source(self) -> str:
        return {ANSWERED: PEOPLE, TIMED_OUT: MODEL_TIMED_OUT}.get(self.state, "waiting for people")


def _array_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(image, dtype=np.float32), allow_pickle=False)  # .npy: shape and dtype travel with it
    return buffer.getvalue()


def _array_of(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


class PeopleQueue:
    """The queue of one served H-DNN, in ``serve_dir/queue.sqlite``, with answers mirrored to ``answers.csv``."""

    def __init__(self, database: Path, answers_csv: Path, rule: ChainRule, timeout_s: float, lease_s: float) -> None:
        self.answers_csv, self.rule, self.timeout_s, self.lease_s = answers_csv, rule, timeout_s, lease_s
        # isolation_level=None: sqlite3 opens no transaction of its own; _transaction() says where each one is
        self.db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        with self._transaction():
            self.db.execute("DELETE FROM looks WHERE answered_at IS NULL")  # shown before a restart: requeued
        self._log_unlogged()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Every statement inside commits together, or none does."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _log_unlogged(self) -> None:
        rows = self.db.execute("SELECT id, request_id, person, label, seconds, shown_at, answered_at, category, "
                               "severity, true_label FROM looks WHERE answered_at IS NOT NULL AND logged = 0 "
                               "ORDER BY answered_at").fetchall()
        for look_id, request_id, person, label, seconds, shown_at, answered_at, category, severity, truth in rows:
            append_answer(self.answers_csv, {
                "request_id": request_id or f"calibration-{look_id}", "person": person, "label": label,
                "seconds": max(round(seconds, 3), 0.001), "shown_at": round(shown_at, 3), "answered_at": round(answered_at, 3),
                "category": category, "severity": severity, "true_label": truth})
            with self._transaction():
                self.db.execute("UPDATE looks SET logged = 1 WHERE id = ?", (look_id,))

    # --- requests --------------------------------------------------------------------------------------

    def add(self, image: np.ndarray, network_label: int, probabilities: list[float], gate_score: float,
            now: float) -> str:
        request_id = uuid.uuid4().hex
        with self._transaction():
            self.db.execute("INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                            (request_id, now, _array_bytes(image), network_label, json.dumps(probabilities),
                             gate_score, WAITING))
        return request_id

    def _expire(self, now: float) -> None:
        """Requests past the people timeout fall back to the network; looks past their lease go back."""
        with self._transaction():
            self.db.execute("UPDATE requests SET state = ?, final_label = network_label, finished_at = created_at + ? "
                            "WHERE state = ? AND created_at <= ?", (TIMED_OUT, self.timeout_s, WAITING,
                                                                    now - self.timeout_s))
            self.db.execute("DELETE FROM looks WHERE answered_at IS NULL AND shown_at <= ?", (now - self.lease_s,))

    def state(self, request_id: str, now: float) -> RequestState | None:
        self._expire(now)
        row = self.db.execute("SELECT id, state, network_label, final_label, gate_score, created_at, finished_at "
                              "FROM requests WHERE id = ?", (request_id,)).fetchone()
        return RequestState(*row) if row else None

    # --- looks -------------------------------------------------------------------------------------------

    def _drop_open_looks(self, person: str) -> None:
        self.db.execute("DELETE FROM looks WHERE person = ? AND answered_at IS NULL", (person,))

    def next_request_look(self, person: str, now: float) -> Look | None:
        """The oldest waiting request ``person`` has not looked at and that needs another look, now shown to them."""
        self._expire(now)
        with self._transaction():
            self._drop_open_looks(person)
        waiting = self.db.execute(
            "SELECT id, image FROM requests WHERE state = ? AND id NOT IN "
            "(SELECT request_id FROM looks WHERE person = ? AND request_id IS NOT NULL) ORDER BY created_at",
            (WAITING, person)).fetchall()
        for request_id, image in waiting:
            looks = self.db.execute("SELECT label FROM looks WHERE request_id = ? ORDER BY shown_at",
                                    (request_id,)).fetchall()
            answered = [label for (label,) in looks if label is not None]
            if len(looks) < self.rule.needed(answered):
                look_id = uuid.uuid4().hex
                with self._transaction():
                    self.db.execute("INSERT INTO looks (id, request_id, person, shown_at) VALUES (?, ?, ?, ?)",
                                    (look_id, request_id, person, now))
                return Look(look_id, _array_of(image))
        return None

    def calibration_look(self, person: str, image: np.ndarray, category: str, severity: int, true_label: int,
                         now: float) -> Look:
        look_id = uuid.uuid4().hex
        with self._transaction():
            self._drop_open_looks(person)
            self.db.execute("INSERT INTO looks (id, person, shown_at, category, severity, true_label) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (look_id, person, now, category, severity, true_label))
        return Look(look_id, image)

    def answer(self, look_id: str, person: str, label: int, seconds: float, now: float) -> str | None:
        """Record ``person``'s answer; the request it finished, if any (its waiting caller can be told).

        Raises:
            LookError: The look is not ``person``'s, was answered already, or went back to the queue.
        """
        row = self.db.execute("SELECT request_id, shown_at FROM looks WHERE id = ? AND person = ? AND "
                              "answered_at IS NULL", (look_id, person)).fetchone()
        if row is None:
            raise LookError("this image is no longer waiting for your answer; allowed: an image shown to you "
                            "and not yet answered")
        request_id, shown_at = row
        window = now - shown_at
        # the page's clock where it gave one, never beyond what the server saw; else the server's own
        seconds = min(seconds, window) if math.isfinite(seconds) and seconds > 0 else window
        finished = None
        with self._transaction():
            self.db.execute("UPDATE looks SET answered_at = ?, label = ?, seconds = ? WHERE id = ?",
                            (now, label, seconds, look_id))
            if request_id is not None:
                finished = self._finish_if_done(request_id, now)
        self._log_unlogged()
        return finished

    def _finish_if_done(self, request_id: str, now: float) -> str | None:
        state, probabilities = self.db.execute("SELECT state, probabilities FROM requests WHERE id = ?",
                                               (request_id,)).fetchone()
        labels = [label for (label,) in self.db.execute(
            "SELECT label FROM looks WHERE request_id = ? AND answered_at IS NOT NULL ORDER BY answered_at",
            (request_id,))]
        if state != WAITING or not self.rule.done(labels):
            return None  # a late answer to a request already timed out is recorded, and changes nothing
        final = self.rule.final(labels, json.loads(probabilities))
        self.db.execute("UPDATE requests SET state = ?, final_label = ?, finished_at = ? WHERE id = ?",
                        (ANSWERED, final, now, request_id))
        return request_id

    # --- figures -----------------------------------------------------------------------------------------

    def stats(self, now: float, people: int) -> dict[str, float | int | None]:
        """What ``/v1/stats`` shows: the queue, who is active, how fast people answer, and turnaround."""
        self._expire(now)
        since = now - ACTIVE_WINDOW_S
        waiting = self.db.execute("SELECT COUNT(*) FROM requests WHERE state = ?", (WAITING,)).fetchone()[0]
        active = self.db.execute("SELECT COUNT(DISTINCT person) FROM looks WHERE shown_at >= ?",
                                 (since,)).fetchone()[0]
        answers, busy_s = self.db.execute("SELECT COUNT(*), COALESCE(SUM(seconds), 0) FROM looks "
                                          "WHERE answered_at >= ?", (since,)).fetchone()
        total = self.db.execute("SELECT COUNT(*) FROM looks WHERE answered_at IS NOT NULL").fetchone()[0]
        turnaround = np.array([r[0] for r in self.db.execute(
            "SELECT finished_at - created_at FROM requests WHERE state = ?", (ANSWERED,))])
        counts = dict(self.db.execute("SELECT state, COUNT(*) FROM requests GROUP BY state").fetchall())
        return {
            "queue_length": waiting, "people": people, "people_active": active, "answers_total": total,
            "answers_per_minute": answers / (ACTIVE_WINDOW_S / 60.0),
            "pool_utilisation": busy_s / (people * ACTIVE_WINDOW_S),
            "turnaround_s_p50": float(np.percentile(turnaround, 50)) if turnaround.size else None,
            "turnaround_s_p95": float(np.percentile(turnaround, 95)) if turnaround.size else None,
            "deferred_answered": counts.get(ANSWERED, 0), "deferred_timed_out": counts.get(TIMED_OUT, 0),
            "window_s": ACTIVE_WINDOW_S,
        }

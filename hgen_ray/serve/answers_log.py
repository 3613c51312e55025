"""``answers.csv``: one row per answer a person gives, appended so that a crash never leaves half a row.

Each row is one ``write`` to a file opened with ``O_APPEND`` and is fsynced before the answer counts, so a
reader sees whole rows only and a restart loses none (:mod:`hgen_ray.serve.people_queue` logs again any
answer it holds that the file does not).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

from hgen_ray.human.answer_fit import ANSWER_COLUMNS

__all__ = ["append_answer"]


def _line(values: list[object]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def append_answer(path: Path, row: Mapping[str, object]) -> None:
    """Append ``row`` (the keys of ``ANSWER_COLUMNS``; None is written empty), with the header on a new file."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        payload = _line([row.get(c) if row.get(c) is not None else "" for c in ANSWER_COLUMNS])
        if os.fstat(descriptor).st_size == 0:
            payload = _line(list(ANSWER_COLUMNS)) + payload
        os.write(descriptor, payload)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

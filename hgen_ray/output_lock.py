"""One run at a time in an output folder: a lock that says who holds it.

Two ``search --out X`` runs used to race between the check that X holds no search
and the first write, which comes after base training; two ``--resume X`` runs were
never checked at all. Every command that writes into a folder (search, resume,
export, bench) now holds an exclusive lock on it (filelock: ``flock`` on Linux,
released by the kernel when the process dies, so a killed run leaves no stale lock).
A second run is refused in one line naming the holder.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from hgen_ray.config import ConfigError

__all__ = ["HOLDER_FILE", "LOCK_FILE", "holding"]

LOCK_FILE = ".hgen-ray.lock"
HOLDER_FILE = ".hgen-ray.holder"  # apart from the lock file, which each attempt to take it truncates


@contextmanager
def holding(folder: Path, command: str) -> Iterator[None]:
    """Hold ``folder`` (which must exist) for ``command`` while the block runs.

    Raises:
        ConfigError: Another run holds it; the message names that run.
    """
    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"{folder}: in use by {_holder(folder)}; wait for it to finish, or choose another "
                          "folder") from None
    holder = folder / HOLDER_FILE
    try:
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        holder.write_text(f"`hgen-ray {command}` (pid {os.getpid()} on {socket.gethostname()}, since {since})")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _holder(folder: Path) -> str:
    try:
        return (folder / HOLDER_FILE).read_text().strip() or "another run"
    except OSError:
        return "another run"

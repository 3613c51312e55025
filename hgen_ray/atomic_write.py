"""Write a file so that readers see the old version or the new one, never half of it."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["UNWRITABLE_ERRNOS", "replaced_atomically", "unwritable_cause", "write_text_atomic"]

# Errors that say the output cannot be written at all, as opposed to a bug in the writer.
UNWRITABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The rename is atomic on one filesystem, so a crash or a full disk mid-write
    leaves the previous file intact; the temporary file is removed on failure.
    The new file gets the mode a plain ``open()`` would (the umask's), and the file
    and its folder are fsynced before and after the rename.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The suffix stays last, for writers that pick the format from it (matplotlib's savefig).
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, _mode_for_new_files())  # mkstemp's 0600 would hide results from the user's group
        _fsync(Path(temporary))
        os.replace(temporary, path)
        _fsync(path.parent)  # the rename itself survives a power cut only once the folder is on disk
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _mode_for_new_files() -> int:
    """The mode ``open()`` gives a new file under the process's umask (0666 less the umask)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (setting it briefly to read it back
    would race with the driver's other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's) data to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_text_atomic(path: Path, text: str) -> None:
    """``path.write_text(text)``, but readers see the old text or the new, never part of it."""
    with replaced_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def unwritable_cause(error: BaseException) -> OSError | None:
    """The "cannot write" OSError behind ``error`` (itself, or what it was raised from or during), if any.

    Ray Tune re-raises a failure in its loop as a ``TuneError`` carrying only the traceback's text;
    the original error survives as the ``TuneError``'s context.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in UNWRITABLE_ERRNOS:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

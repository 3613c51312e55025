"""Where Tune keeps a search's state: ``DIR/tune``, or under ``search.storage_path`` on a multi-node cluster.

Tune's trials write their results from the node they run on, into the
experiment's storage. On one machine ``DIR/tune`` is that storage. On a cluster
of several machines it must be somewhere every node reaches: a folder all of
them mount (NFS) or an object store URI that pyarrow opens (``s3://``,
``gs://``). ``--out DIR`` stays the user's folder of results, written by the
driver alone (trials.csv, report.md, best/).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath

import ray

from hgen_ray.config import ConfigError

__all__ = ["check_shared_storage", "check_storage_path", "local_tune_dir", "tune_location", "tune_run_place"]

log = logging.getLogger(__name__)
TUNE_DIR = "tune"


def check_storage_path(storage_path: str | None) -> None:
    """Raises ConfigError for a relative folder: each node would resolve it in its own working directory."""
    if storage_path is None or "://" in storage_path or PurePosixPath(storage_path).is_absolute():
        return
    raise ConfigError(f"search.storage_path: {storage_path!r} is relative, and every node would read it from its "
                      "own working directory; allowed: an absolute folder every node mounts, or a URI such as "
                      "s3://bucket/prefix or gs://bucket/prefix")


def tune_location(out: Path, storage_path: str | None) -> str:
    """This search's Tune experiment: ``out/tune``, or a folder under ``storage_path`` named after ``out`` (its name
    and a hash of its full path, so two searches never share one)."""
    if storage_path is None:
        return str(out / TUNE_DIR)
    digest = hashlib.sha256(str(out).encode()).hexdigest()[:8]
    return f"{storage_path.rstrip('/')}/{out.name}-{digest}"


def tune_run_place(location: str) -> tuple[str, str]:
    """The (storage_path, name) pair Tune's RunConfig takes for an experiment at ``location``."""
    parent, _, name = location.rstrip("/").rpartition("/")
    return parent, name


def local_tune_dir(location: str) -> Path | None:
    """The experiment's folder when this machine opens it as a file system; None for object storage."""
    return None if "://" in location else Path(location)


def check_shared_storage(storage_path: str | None) -> None:
    """Refuse a multi-node cluster without shared storage (Ray must be up): trials on other nodes would write
    their results to their own disks, where the driver never sees them.

    Raises:
        ConfigError: More than one node is alive and ``search.storage_path`` is not set.
    """
    nodes = sum(1 for node in ray.nodes() if node["Alive"])
    if storage_path is None and nodes > 1:
        raise ConfigError(f"search.storage_path: not set, but this Ray cluster has {nodes} nodes and Tune's trials "
                          "write where every node must reach; allowed: an absolute folder every node mounts (NFS), "
                          "or a URI such as s3://bucket/prefix")

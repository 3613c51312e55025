"""Where a search runs: the one ``ray.init``, a reachable cluster, trials that fit its nodes."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import ray

from hgen_ray.config import ConfigError, ExperimentConfig

__all__ = ["check_cluster_fits", "check_reachable", "init_ray", "leave_job_working_dir"]

RAY_JOB_WORKING_DIRS = "runtime_resources/working_dir_files"
CONNECT_TIMEOUT_S = 10.0  # an unreachable cluster must fail fast, never hang


def check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer."""
    if address in ("auto", "local"):
        return
    host_port = address.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: expected host:port (or ray://host:port, http://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({error.strerror or error})") from None


def init_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        check_reachable(target)
    # "local": a fresh node by default, never a stray `ray start` cluster found on this machine.
    ray.init(address=target or "local", logging_level=logging.WARNING, log_to_driver=False)


def check_cluster_fits(config: ExperimentConfig) -> None:
    """Refuse trials no node can hold: they would wait forever."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    wanted = config.search
    if wanted.gpus_per_trial > 0 and most_gpus == 0:
        raise ConfigError(f"search.gpus_per_trial: {wanted.gpus_per_trial} asked for, but no node of this Ray "
                          "cluster has a GPU; allowed here: 0")
    if wanted.gpus_per_trial > most_gpus:
        raise ConfigError(f"search.gpus_per_trial: {wanted.gpus_per_trial} exceeds the most GPUs on one node "
                          f"({most_gpus:g}); allowed: up to {most_gpus:g}")
    if wanted.cpus_per_trial > most_cpus:
        raise ConfigError(f"search.cpus_per_trial: {wanted.cpus_per_trial:g} exceeds the most CPUs on one node "
                          f"({most_cpus:g}); allowed: up to {most_cpus:g}")


def leave_job_working_dir(out: Path) -> None:
    """Under `ray job submit`, work from the output dir instead of the job's working_dir.

    Ray re-extracts a job's working_dir (deleting the old copy) once the driver
    connects, which leaves the driver in a deleted cwd; Tune then fails resolving
    paths at the end of ``fit()`` (ray-project/ray#52343). Every path is absolute
    by now, and imports come from the absolute PYTHONPATH entry, so moving is safe.
    """
    try:
        inside_job_dir = RAY_JOB_WORKING_DIRS in os.getcwd()
    except FileNotFoundError:  # already deleted under us
        inside_job_dir = True
    if inside_job_dir:
        os.chdir(out)

"""A real 2-node Ray cluster on this machine, a search submitted with the real `ray job submit`."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hgen_ray.config import ExperimentConfig, SearchConfig, as_dict

REPO = Path(__file__).resolve().parents[1]
RAY = REPO / ".venv" / "bin" / "ray"
GCS_PORT, DASHBOARD_PORT, PORT_BASE = 26379, 28265, 31000  # away from Ray's defaults
DASHBOARD = f"http://127.0.0.1:{DASHBOARD_PORT}"
JOB_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Head plus one worker node, each its own `ray start`; stopped even when a test fails."""
    state = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "HGEN_CLUSTER_DIR": str(state), "HGEN_GCS_PORT": str(GCS_PORT),
           "HGEN_DASHBOARD_PORT": str(DASHBOARD_PORT), "HGEN_PORT_BASE": str(PORT_BASE),
           "HGEN_HEAD_CPUS": "1", "HGEN_WORKER_CPUS": "1", "RAY_BIN": str(RAY)}
    env.pop("RAY_ADDRESS", None)
    try:
        started = subprocess.run([str(REPO / "clusters/local/start.sh"), "1"], env=env, capture_output=True,
                                 text=True, timeout=180)
        assert started.returncode == 0, started.stderr + started.stdout
        yield env
    finally:
        subprocess.run([str(REPO / "clusters/local/stop.sh")], env=env, capture_output=True, timeout=120)
        assert not (state / "pgids").exists()


def _ray(env: dict[str, str], *args: str, auth: str = "token", timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(RAY), *args], env={**env, "RAY_AUTH_MODE": auth}, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_search_submitted_as_a_ray_job_succeeds_and_uses_both_nodes(
    cluster: dict[str, str], tmp_path: Path, tiny_config: ExperimentConfig, trained_base
) -> None:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(
        tiny_config,
        # Trials long enough (~6 s) that the worker's trial process is up before the head's finishes them all.
        data=dataclasses.replace(tiny_config.data, test_per_category=400),
        finetune=dataclasses.replace(tiny_config.finetune, subset=2000),
        # A fresh trial process per trial: two concurrent 1-CPU trials on two 1-CPU nodes
        # must then land on different nodes. (With warm-process reuse, a run here once kept
        # every trial on one node; see README.)
        search=SearchConfig(trials=6, max_concurrent_trials=2, warmup_trials=2, updates_per_trial=2,
                            references=False, reuse_actors=False),
    )
    config_file = tmp_path / "job.yaml"
    config_file.write_text(yaml.safe_dump(as_dict(config)))
    out = tmp_path / "results"
    job_id = f"hgen-test-{os.getpid()}-{int(time.time())}"
    submitted = _ray(cluster, "job", "submit", "--address", DASHBOARD, "--submission-id", job_id, "--no-wait",
                     "--working-dir", str(REPO), "--", "hgen-ray", "search", "--config", str(config_file),
                     "--out", str(out))
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    deadline, status = time.time() + JOB_TIMEOUT_S, ""
    while time.time() < deadline:
        status = _ray(cluster, "job", "status", "--address", DASHBOARD, job_id).stdout.lower()
        if any(f"job '{job_id}' {state}" in status for state in ("succeeded", "failed", "stopped")):
            break
        time.sleep(3)
    logs = _ray(cluster, "job", "logs", "--address", DASHBOARD, job_id).stdout
    assert f"job '{job_id}' succeeded" in status, logs[-3000:]
    assert "trial 6/6" in logs
    with open(out / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and all(r["status"] == "TERMINATED" for r in rows)
    assert len({r["node_id"] for r in rows}) == 2, "trials should run on the head and on the worker"
    assert (out / "best" / "model.pt").is_file() and (out / "report.md").is_file()
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    assert token and token not in logs  # the secret never reaches logs or results
    for produced in (f for f in out.rglob("*") if f.is_file() and f.suffix in {".csv", ".json", ".md", ".yaml", ".log"}):
        assert token not in produced.read_text(errors="ignore"), produced


def test_an_unauthenticated_client_is_refused(cluster: dict[str, str]) -> None:
    refused = _ray({**cluster, "RAY_AUTH_TOKEN": "not-the-token"}, "job", "list", "--address", DASHBOARD)
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stderr or "Authentication" in refused.stderr
    allowed = _ray(cluster, "job", "list", "--address", DASHBOARD)
    assert allowed.returncode == 0, allowed.stderr[-1000:]


def test_the_dashboard_listens_on_localhost_only(cluster: dict[str, str]) -> None:
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{DASHBOARD_PORT}"], capture_output=True, text=True)
    if listening.returncode != 0:
        pytest.skip("ss is not available")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.stdout.splitlines() if line.strip()}
    assert addresses == {"127.0.0.1"}


def test_unreachable_address_fails_fast_with_one_line(tmp_path: Path, tiny_config: ExperimentConfig) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(as_dict(tiny_config)))
    started = time.time()
    result = subprocess.run([str(REPO / ".venv/bin/hgen-ray"), "search", "--config", str(config_file), "--out",
                             str(tmp_path / "out"), "--address", "127.0.0.1:1"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and time.time() - started < 60
    assert "no Ray cluster answers there" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("search", "message"),
    [({"gpus_per_trial": 0.25}, "search.gpus_per_trial: 0.25 asked for, but no node"),
     ({"cpus_per_trial": 64}, "search.cpus_per_trial: 64 exceeds the most CPUs on one node (1)")],
)
def test_trials_the_cluster_cannot_hold_are_refused(cluster: dict[str, str], tmp_path: Path,
                                                    tiny_config: ExperimentConfig, search: dict,
                                                    message: str) -> None:
    document = as_dict(tiny_config)
    document["search"].update(search)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(document))
    result = subprocess.run([str(REPO / ".venv/bin/hgen-ray"), "search", "--config", str(config_file), "--out",
                             str(tmp_path / "out"), "--address", f"127.0.0.1:{GCS_PORT}"],
                            env={**cluster, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr

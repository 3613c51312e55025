"""A real multi-node Ray cluster on this machine, searches submitted with the real `ray job submit`."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
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


def _job_config(tiny_config: ExperimentConfig, trials: int, concurrent: int, storage: Path) -> ExperimentConfig:
    """A search for the cluster; Tune's state goes to ``storage``, the folder every node shares."""
    return dataclasses.replace(
        tiny_config,
        # Trials long enough (~6 s) that the worker's trial process is up before the head's finishes them all.
        data=dataclasses.replace(tiny_config.data, test_per_category=400),
        finetune=dataclasses.replace(tiny_config.finetune, subset=2000),
        # A fresh trial process per trial: concurrent 1-CPU trials on 1-CPU nodes must then land on
        # different nodes. (With warm-process reuse, a run here once kept every trial on one node; see README.)
        search=SearchConfig(trials=trials, max_concurrent_trials=concurrent, warmup_trials=2, updates_per_trial=2,
                            references=False, reuse_actors=False, storage_path=str(storage)),
    )


def _submit(env: dict[str, str], config: ExperimentConfig, folder: Path, name: str) -> tuple[str, Path]:
    """Submit `hgen-ray search` as a Ray job without waiting; returns its id and output dir."""
    config_file = folder / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(as_dict(config)))
    out = folder / name
    job_id = f"hgen-test-{name}-{os.getpid()}-{int(time.time())}"
    submitted = _ray(env, "job", "submit", "--address", DASHBOARD, "--submission-id", job_id, "--no-wait",
                     "--working-dir", str(REPO), "--", "hgen-ray", "search", "--config", str(config_file),
                     "--out", str(out))
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    return job_id, out


def _wait_for_job(env: dict[str, str], job_id: str) -> tuple[str, str]:
    """The job's final status line and its logs."""
    deadline, status = time.time() + JOB_TIMEOUT_S, ""
    while time.time() < deadline:
        status = _ray(env, "job", "status", "--address", DASHBOARD, job_id).stdout.lower()
        if any(f"job '{job_id}' {state}" in status for state in ("succeeded", "failed", "stopped")):
            break
        time.sleep(3)
    return status, _ray(env, "job", "logs", "--address", DASHBOARD, job_id).stdout


def _trial_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _state(env: dict[str, str], kind: str, *filters: str) -> list[dict]:
    """Ray's state API through its CLI (`ray list nodes|actors`), as JSON."""
    args = ["list", kind, "--address", DASHBOARD, "--format", "json", "--limit", "10000"]
    for condition in filters:
        args += ["--filter", condition]
    listed = _ray(env, *args)
    assert listed.returncode == 0, listed.stderr[-1000:]
    if listed.stdout.startswith("No resource in the cluster"):  # what the CLI prints instead of []
        return []
    return json.loads(listed.stdout)


def test_search_submitted_as_a_ray_job_succeeds_and_uses_both_nodes(
    cluster: dict[str, str], tmp_path: Path, tiny_config: ExperimentConfig, trained_base
) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared-storage"
    job_id, out = _submit(cluster, _job_config(tiny_config, trials=6, concurrent=2, storage=shared), tmp_path,
                          "results")
    status, logs = _wait_for_job(cluster, job_id)
    assert f"job '{job_id}' succeeded" in status, logs[-3000:]
    assert "trial 6/6" in logs
    rows = _trial_rows(out)
    assert len(rows) == 6 and all(r["status"] == "TERMINATED" for r in rows)
    assert len({r["node_id"] for r in rows}) == 2, "trials should run on the head and on the worker"
    # Every node (each in its own working dir, see start.sh) wrote its trials' results to the shared storage.
    experiment = next(shared.iterdir())
    assert len(list(experiment.glob("*/result.json"))) == 6 and not (out / "tune").exists()
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
     ({"cpus_per_trial": 64}, "search.cpus_per_trial: 64 exceeds the most CPUs on one node (1)"),
     ({}, "search.storage_path: not set, but this Ray cluster has 2 nodes"),
     ({"storage_path": "runs/shared"}, "search.storage_path: 'runs/shared' is relative")],
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


def _start_extra_worker(env: dict[str, str], index: int, log: Path) -> int:
    """One more 1-CPU worker node, in its own process group, marked by a custom resource; returns the group."""
    base = PORT_BASE + 100 * index  # start.sh gives node i the ports from PORT_BASE + 100 * i
    ports = [f"--node-manager-port={base}", f"--object-manager-port={base + 1}",
             f"--dashboard-agent-listen-port={base + 2}", f"--dashboard-agent-grpc-port={base + 3}",
             f"--runtime-env-agent-port={base + 4}", f"--metrics-export-port={base + 5}",
             f"--min-worker-port={base + 10}", f"--max-worker-port={base + 99}"]
    with open(log, "w") as handle:
        node = subprocess.Popen([str(RAY), "start", "--block", f"--address=127.0.0.1:{GCS_PORT}",
                                 "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                                 '--resources={"doomed_node": 1}', *ports],
                                env={**env, "RAY_AUTH_MODE": "token", "HGEN_DATA": str(REPO / "data/fashion-mnist")},
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    return node.pid  # start_new_session: the process leads its own group


def _wait_for(condition, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_a_worker_node_killed_mid_search_has_its_trial_rerun_elsewhere_and_the_job_succeeds(
    cluster: dict[str, str], tmp_path: Path, tiny_config: ExperimentConfig, trained_base
) -> None:  # type: ignore[no-untyped-def]
    group = _start_extra_worker(cluster, index=5, log=tmp_path / "doomed-node.log")
    try:
        doomed = _wait_for(lambda: [n["node_id"] for n in _state(cluster, "nodes", "state=ALIVE")
                                    if "doomed_node" in n.get("resources_total", {})], 120, "the extra node")[0]
        config = _job_config(tiny_config, trials=6, concurrent=3, storage=tmp_path / "shared")
        # Trials of ~15 s, so that the kill, a few seconds after a trial's process appears, lands mid-trial.
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, test_per_category=1000))
        job_id, out = _submit(cluster, config, tmp_path, "survivor")
        # Kill the node as soon as a trial's process (Tune's ImplicitFunc actor) is up on it.
        _wait_for(lambda: _state(cluster, "actors", "state=ALIVE", f"node_id={doomed}", "class_name=ImplicitFunc"),
                  JOB_TIMEOUT_S / 2, "a trial on the extra node")
        os.killpg(group, signal.SIGKILL)
    finally:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    status, logs = _wait_for_job(cluster, job_id)
    assert f"job '{job_id}' succeeded" in status, logs[-3000:]
    assert "running it again (retry 1 of 1)" in logs and "trial 6/6" in logs, logs[-3000:]
    rows = _trial_rows(out)
    assert len(rows) == 6 and all(r["status"] == "TERMINATED" for r in rows)
    assert doomed not in {r["node_id"] for r in rows}, "the lost trial must have finished on a surviving node"
    assert doomed in {n["node_id"] for n in _state(cluster, "nodes", "state=DEAD")}


def test_two_searches_at_once_keep_their_own_results_and_people(
    cluster: dict[str, str], tmp_path: Path, tiny_config: ExperimentConfig, trained_base
) -> None:  # type: ignore[no-untyped-def]
    plans = {"first": (3, 3), "second": (4, 5)}  # name: (trials, people), different so that a mix would show
    jobs = {}
    for name, (trials, people) in plans.items():
        config = _job_config(tiny_config, trials=trials, concurrent=1, storage=tmp_path / "shared")
        config = dataclasses.replace(config, human_pool=dataclasses.replace(config.human_pool, size=people))
        jobs[name] = _submit(cluster, config, tmp_path, name)
    ray_job_ids = {}
    for name, (job_id, out) in jobs.items():
        status, logs = _wait_for_job(cluster, job_id)
        assert f"job '{job_id}' succeeded" in status, logs[-3000:]
        trials, people = plans[name]
        rows = _trial_rows(out)
        assert len(rows) == trials and all(r["status"] == "TERMINATED" for r in rows)
        assert yaml.safe_load((out / "search.yaml").read_text())["human_pool"]["size"] == people
        ray_job_ids[name] = next(j["job_id"] for j in _state(cluster, "jobs") if j["submission_id"] == job_id)
    first, second = (_trial_rows(jobs[n][1]) for n in plans)
    assert not {r["trial_id"] for r in first} & {r["trial_id"] for r in second}
    people = _state(cluster, "actors", "class_name=SimulatedHuman")
    for name, (_, size) in plans.items():  # each search created its own pool of its own size, and no more
        assert sum(1 for a in people if a["job_id"] == ray_job_ids[name]) == size


@pytest.mark.parametrize("variable, value", [("HGEN_PORT_BASE", "1+x"), ("HGEN_GCS_PORT", "80"),
                                             ("HGEN_WORKER_CPUS", "two")])
def test_start_refuses_a_setting_that_is_not_a_number_in_range_before_starting_anything(
        tmp_path: Path, variable: str, value: str) -> None:
    env = {**os.environ, "HGEN_CLUSTER_DIR": str(tmp_path / "state"), variable: value}
    started = subprocess.run([str(REPO / "clusters/local/start.sh"), "1"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [started.stderr.strip()]  # one line
    assert started.stderr.startswith(f"start.sh: {variable} must be a whole number from") and f"'{value}'" in started.stderr
    assert not (tmp_path / "state").exists()  # nothing started, nothing written


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]


def test_stop_kills_only_recorded_groups_whose_leader_is_still_the_node_start_launched(tmp_path: Path) -> None:
    def looks_like_a_node() -> subprocess.Popen[bytes]:  # a process group led by a `ray start --block` command line
        return subprocess.Popen(["bash", "-c", 'exec -a "ray start --block" sleep 300'], start_new_session=True)

    ours, reused, stranger = looks_like_a_node(), looks_like_a_node(), subprocess.Popen(["sleep", "300"],
                                                                                         start_new_session=True)
    try:
        time.sleep(0.5)  # let bash exec the sleeps
        (tmp_path / "pgids").write_text(f"{ours.pid} {_start_time(ours.pid)}\n"
                                        f"{reused.pid} {int(_start_time(reused.pid)) + 1}\n"  # its number, not it
                                        f"{stranger.pid}\n")  # an old record, and not a Ray node
        env = {**os.environ, "HGEN_CLUSTER_DIR": str(tmp_path), "HGEN_STOP_GRACE_S": "5"}
        stopped = subprocess.run([str(REPO / "clusters/local/stop.sh")], env=env, capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0 and "stopped 1 Ray node(s)" in stopped.stdout
        assert ours.wait(timeout=10) is not None
        assert reused.poll() is None and stranger.poll() is None  # left alone, and said so
        assert f"process {reused.pid} is no longer this cluster's node" in stopped.stderr
        assert f"process {stranger.pid} is no longer this cluster's node" in stopped.stderr
    finally:
        for process in (ours, reused, stranger):
            process.kill()
            process.wait()


def test_make_clean_refuses_while_a_recorded_cluster_may_run(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".cache" / "hgen-cluster").mkdir(parents=True)
    (checkout / ".cache" / "hgen-cluster" / "pgids").write_text("12345 678\n")
    (checkout / "Makefile").write_text((REPO / "Makefile").read_text())
    cleaned = subprocess.run(["make", "-s", "clean"], cwd=checkout, capture_output=True, text=True, timeout=60)
    assert cleaned.returncode != 0 and "stop it first: clusters/local/stop.sh" in cleaned.stderr
    assert (checkout / ".cache" / "hgen-cluster" / "pgids").is_file()  # nothing deleted

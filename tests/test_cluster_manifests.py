"""The cloud configs, checked against their own schemas: KubeRay's RayJob CRD and Ray's cluster-config schema.

Neither cloud runs here; what can be checked without one is that each file is
what its tool accepts (with unknown fields refused, as ``kubectl`` does with
strict field validation), and that it carries the fixes a multi-node run needs.
"""

from __future__ import annotations

import copy
import functools
import json
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[1]
KUBERAY_CRDS = REPO.parent / "shared" / "vendor" / "kuberay-v1.7.0"
RAY_CLUSTER_SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones (kubectl --validate=strict)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_schema(kind_file: str) -> dict[str, Any]:
    crd = yaml.safe_load((KUBERAY_CRDS / kind_file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _strict(version["schema"]["openAPIV3Schema"])


@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    return yaml.safe_load((REPO / "clusters" / "kuberay" / "rayjob.yaml").read_text())


@pytest.fixture(scope="module")
def aws() -> dict[str, Any]:
    return yaml.safe_load((REPO / "clusters" / "aws.yaml").read_text())


def test_the_rayjob_is_valid_against_kuberay_s_own_crd(rayjob: dict[str, Any]) -> None:
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    jsonschema.validate(rayjob, _crd_schema("ray.io_rayjobs.yaml"))


@pytest.mark.parametrize("path, typo", [(("spec",), "shutdownAfterJobFinish"),
                                         (("spec", "rayClusterSpec"), "authOption")])
def test_the_check_refuses_a_misspelt_field(rayjob: dict[str, Any], path: tuple[str, ...], typo: str) -> None:
    broken = copy.deepcopy(rayjob)
    node = broken
    for key in path:
        node = node[key]
    node[typo] = True
    with pytest.raises(jsonschema.ValidationError, match=typo):
        jsonschema.validate(broken, _crd_schema("ray.io_rayjobs.yaml"))


def test_the_dashboard_is_reachable_on_the_pod_network_with_token_auth(rayjob: dict[str, Any]) -> None:
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert cluster["authOptions"]["mode"] == "token"


def _option(command: str, name: str) -> str:
    words = shlex.split(command)
    return words[words.index(name) + 1]


def test_every_node_mounts_the_folder_holding_the_results_and_tune_s_state(rayjob: dict[str, Any]) -> None:
    entrypoint = rayjob["spec"]["entrypoint"]
    written = [_option(entrypoint, "--out"), _option(entrypoint, "--storage-path")]
    cluster = rayjob["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        for container in pod["spec"]["containers"]:
            mounts = [m["mountPath"] for m in container["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]]]
            assert all(any(path.startswith(mount + "/") for mount in mounts) for path in written), container["name"]


def test_the_launcher_config_is_valid_against_ray_s_own_schema(aws: dict[str, Any]) -> None:
    jsonschema.validate(aws, json.loads(RAY_CLUSTER_SCHEMA.read_text()))
    broken = {**aws, "rsync_exclud": [".venv"]}  # the schema refuses what it does not know
    with pytest.raises(jsonschema.ValidationError, match="rsync_exclud"):
        jsonschema.validate(broken, json.loads(RAY_CLUSTER_SCHEMA.read_text()))


def test_the_launcher_never_syncs_the_venv_data_caches_or_runs(aws: dict[str, Any]) -> None:
    assert {".venv", "data", ".cache", "runs"} <= set(aws["rsync_exclude"])


def test_every_node_gets_the_one_token_by_file_and_starts_with_token_auth(aws: dict[str, Any]) -> None:
    token_file = "/home/ray/.ray/auth_token"
    assert aws["file_mounts"][token_file] == "~/.ray/auth_token"  # rsynced to head and workers alike
    commands = aws["head_start_ray_commands"] + aws["worker_start_ray_commands"]
    assert not any("get-auth-token" in c for c in commands)  # a token made on the head alone would differ
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 2 and all(c.startswith("RAY_AUTH_MODE=token ray start") for c in starts)
    assert f"chmod 600 {token_file}" in aws["setup_commands"]

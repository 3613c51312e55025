"""Deployment files agree with pyproject.toml and stay valid."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

import hgen_ray

REPO = Path(__file__).resolve().parents[1]
IMAGE = f"REGISTRY/hgen-ray:{hgen_ray.__version__}"  # a placeholder: no public image exists; README says how to push one


def _pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        pins[re.sub(r"\[.*\]", "", name)] = version
    return pins


def test_dockerfile_uses_the_pinned_ray_and_python() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM rayproject/ray:(\S+)-py(\d)(\d+)$", dockerfile, re.MULTILINE)
    assert base, "the image must build on the official Ray image"
    assert base.group(1) == _pins()["ray"]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"{base.group(2)}.{base.group(3)}" in requires
    assert 'ENTRYPOINT ["hgen-ray"]' in dockerfile
    assert 'pip install --no-cache-dir ".[cluster]"' in dockerfile  # the same pins, from pyproject


def test_cluster_extra_pins_the_same_ray() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"ray[default]=={_pins()['ray']}" in extras["cluster"]


def test_cluster_launcher_config_names_this_image_and_a_gpu_worker_type() -> None:
    config = yaml.safe_load((REPO / "clusters" / "aws.yaml").read_text())
    assert config["docker"]["image"] == IMAGE
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] < gpu["max_workers"]
    assert any("pip install" in command and "hgen-ray" in command for command in config["setup_commands"])
    assert all("RAY_AUTH_MODE=token" in c for c in config["head_start_ray_commands"] if "ray start" in c)


def test_rayjob_runs_the_search_with_this_image_and_token_auth() -> None:
    job = yaml.safe_load((REPO / "clusters" / "kuberay" / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob"
    assert job["spec"]["entrypoint"].startswith("hgen-ray search --config configs/")
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == _pins()["ray"] and cluster["authOptions"]["mode"] == "token"
    containers = [cluster["headGroupSpec"]["template"]["spec"]["containers"][0]]
    containers += [g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"]]
    assert all(c["image"] == IMAGE for c in containers)


def test_job_upload_leaves_out_git_data_venv_caches_and_results(tmp_path: Path) -> None:
    from ray._private.runtime_env.packaging import create_package

    package = tmp_path / "working_dir.zip"
    create_package(str(REPO), package, include_gitignore=True)
    import zipfile

    names = zipfile.ZipFile(package).namelist()
    for excluded in (".git/", ".venv/", "data/", ".cache/", "runs/"):
        assert not any(n.startswith(excluded) for n in names), excluded
    assert any(n.startswith("hgen_ray/") for n in names)
    assert package.stat().st_size < 100 * 2**20  # Ray's cap on an uploaded working_dir


def test_the_people_page_ships_inside_the_package(tmp_path: Path) -> None:
    """The Docker image installs a wheel, not the checkout: the page's files must be package data."""
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "hgen_ray", source / "hgen_ray", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(source)], check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("hgen_ray-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"hgen_ray/serve/page/{name}" for name in ("people.html", "people.js", "people.css")} <= names

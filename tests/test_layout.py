"""The package's shape: imports follow the data flow, and no module grows past about 400 lines.

The data flow is config -> controller -> trial -> {compress, human, profile} -> metric -> report,
with data and the architectures feeding the trial, and search and bench driving it all. Each
package below lists every package it may import; an import not listed runs against the flow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hgen_ray"
MAX_MODULE_LINES = 420  # "about 400"

ALLOWED: dict[str, set[str]] = {
    "version": set(),
    "atomic_write": set(),
    "output_lock": {"config"},
    "config": set(),
    "gate_quality": set(),
    "data": {"config", "atomic_write", "version"},
    "metric": {"config"},
    "profile": {"config"},
    "human": {"config"},
    "compress": {"config"},
    "architectures": {"config", "data", "compress", "human", "profile", "atomic_write", "version"},
    "hdnn": {"config", "architectures", "compress", "output_lock"},
    "trial": {"config", "data", "architectures", "compress", "human", "profile", "metric", "hdnn", "gate_quality"},
    "controller": {"config", "metric", "profile"},
    "report": {"config", "data", "metric", "atomic_write", "gate_quality"},
    "search": {"config", "data", "architectures", "controller", "trial", "human", "profile", "metric", "report", "hdnn",
               "atomic_write", "gate_quality", "output_lock"},
    "bench": {"config", "data", "architectures", "search", "trial", "human", "report", "atomic_write", "gate_quality",
              "output_lock"},
    "serve": {"config", "data", "architectures", "human", "hdnn", "search", "atomic_write", "output_lock"},
    "cli": set(),  # the entry point: below it, anything
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


def _stage(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_stages(path: Path) -> set[str]:
    stages = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            if name == "hgen_ray":
                stages.add("hgen_ray")
            elif name.startswith("hgen_ray."):
                stages.add(name.split(".")[1])
    return stages


def test_every_stage_is_listed() -> None:
    assert {_stage(p) for p in _modules()} == set(ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_data_flow(path: Path) -> None:
    stage = _stage(path)
    if stage == "cli":
        return
    against = _imported_stages(path) - ALLOWED[stage] - {stage}
    assert not against, f"{path.relative_to(PACKAGE)} ({stage}) imports {sorted(against)} against the data flow"


def test_the_allowed_imports_have_no_cycle() -> None:
    done: set[str] = set()

    def visit(stage: str, path: tuple[str, ...]) -> None:
        assert stage not in path, " -> ".join((*path, stage))
        if stage not in done:
            for below in ALLOWED[stage]:
                visit(below, (*path, stage))
            done.add(stage)

    for stage in ALLOWED:
        visit(stage, ())


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_about_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_MODULE_LINES


def test_the_version_comes_from_a_module_that_imports_nothing() -> None:
    assert _imported_stages(PACKAGE / "version.py") == set()
    assert not any("hgen_ray" in _imported_stages(p) for p in _modules())  # nobody imports the package root

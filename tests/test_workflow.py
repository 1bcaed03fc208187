"""The CI workflow: it loads, every tox environment it runs exists, every OS has a job."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

PROJECT = Path(__file__).resolve().parent.parent
WORKFLOW = PROJECT / ".github" / "workflows" / "ci.yml"
#: The runner images of each OS, and the tox environments that test its own API.
RUNNERS = {"ubuntu": "py", "macos": "macos", "windows": "windows"}


def _workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _tox_envs() -> set[str]:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(PROJECT / "tox.ini", encoding="utf-8")
    envs = {name.split(":", 1)[1] for name in tox.sections() if name.startswith("testenv:")}
    envs |= {e.strip() for e in tox["tox"]["envlist"].split(",")}
    return envs


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _tox_calls(job: dict[str, Any]) -> list[str]:
    """The environments a job's steps run with ``tox -e``."""
    named: list[str] = []
    for run in _runs(job):
        for match in re.finditer(r"\btox -e ([\w,-]+)", run):
            named += match.group(1).split(",")
    return named


def test_the_workflow_loads_and_names_its_jobs() -> None:
    workflow = _workflow()
    assert workflow["jobs"], "no jobs"
    for name, job in workflow["jobs"].items():
        assert job["runs-on"], name
        assert _tox_calls(job), f"job {name} runs no tox environment"


def test_every_tox_environment_the_workflow_runs_exists() -> None:
    envs = _tox_envs()
    for name, job in _workflow()["jobs"].items():
        for env in _tox_calls(job):
            assert env in envs, f"job {name} runs tox -e {env}, which tox.ini does not define"


def test_every_os_runs_the_tests_of_its_own_api_on_supported_pythons() -> None:
    jobs = _workflow()["jobs"].values()
    for image, env in RUNNERS.items():
        mine = [j for j in jobs if str(j["runs-on"]).startswith(image)]
        assert mine, f"no job on {image}"
        assert any(env in _tox_calls(j) for j in mine), f"no {image} job runs tox -e {env}"
        versions = {str(v) for j in mine for v in j.get("strategy", {}).get("matrix", {}).get(
            "python", []
        )}
        assert "3.11" in versions, f"{image} does not test the oldest supported Python"


def test_the_local_ci_runs_every_linux_environment_the_workflow_runs() -> None:
    """``.ci/run`` runs plain ``tox``: its envlist must hold what the Linux jobs run."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(PROJECT / "tox.ini", encoding="utf-8")
    envlist = {e.strip() for e in tox["tox"]["envlist"].split(",")}
    for job in _workflow()["jobs"].values():
        if str(job["runs-on"]).startswith("ubuntu"):
            assert set(_tox_calls(job)) <= envlist

"""Selection for a watcher asked for access events: only backends that can report them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import crosswatch
from crosswatch import BackendUnavailableError, Plugins, Watcher
from crosswatch._polling import PollingBackend
from crosswatch._select import Needs, select_backend
from crosswatch.backend import Capabilities, Probe
from crosswatch.testing import ScriptedBackend

PROJECT = Path(crosswatch.__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("clean_env")


class Hearing(ScriptedBackend):
    """Reports access events (ScriptedBackend's capabilities say so)."""

    name = "hearing"

    @classmethod
    def probe(cls, path: str) -> Probe:
        return Probe(cls.name, True, score=50)


class Blind(ScriptedBackend):
    """Scores higher but cannot report access events."""

    name = "blind"
    capabilities = Capabilities(recursive=False)

    @classmethod
    def probe(cls, path: str) -> Probe:
        return Probe(cls.name, True, score=80)


ACCESS = Needs(access=True)


def plugins(*backends: type[ScriptedBackend]) -> Plugins:
    return Plugins(autoload=False, disable=["polling"], extra=backends)


def test_the_test_backends_declare_what_they_claim() -> None:
    assert Hearing.capabilities.access_events
    assert not Blind.capabilities.access_events


def test_auto_skips_backends_without_access_events(tmp_path: Path) -> None:
    both = plugins(Blind, Hearing)
    assert select_backend(str(tmp_path), None, frozenset(), both)[0] is Blind
    chosen, _ = select_backend(str(tmp_path), None, frozenset(), both, needs=ACCESS)
    assert chosen is Hearing


def test_a_preference_list_skips_backends_without_access_events(tmp_path: Path) -> None:
    both = plugins(Blind, Hearing)
    preference = ("blind", "hearing")
    assert select_backend(str(tmp_path), preference, frozenset(), both)[0] is Blind
    chosen, _ = select_backend(
        str(tmp_path), preference, frozenset(), both, needs=ACCESS
    )
    assert chosen is Hearing


def test_a_preference_list_with_none_that_hears_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(
            str(tmp_path), ("blind",) * 2, frozenset(), plugins(Blind, Hearing), needs=ACCESS
        )
    message = str(info.value)
    assert "blind: available, but cannot report access events" in message
    assert "available but not listed: hearing" in message


def test_forcing_a_backend_without_access_events_names_those_that_can(tmp_path: Path) -> None:
    both = plugins(Blind, Hearing)
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(str(tmp_path), ("blind",), frozenset(), both, needs=ACCESS)
    message = str(info.value)
    assert message.startswith("backend 'blind' cannot report access events")
    assert "backends available for this path that can: hearing" in message


def test_forcing_when_no_backend_hears(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(str(tmp_path), ("blind",), frozenset(), plugins(Blind), needs=ACCESS)
    assert "no available backend can for this path; watch without access=True" in str(info.value)


def test_auto_with_no_backend_that_hears(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(str(tmp_path), None, frozenset(), plugins(Blind), needs=ACCESS)
    message = str(info.value)
    assert "and report access events" in message
    assert "blind: available, but cannot report access events" in message
    assert "watch without access=True" in message


def test_probe_shows_the_access_choice(tmp_path: Path) -> None:
    both = plugins(Blind, Hearing)
    plain = crosswatch.probe(str(tmp_path), plugins=both)
    assert (plain.choice, plain.access) == ("blind", False)
    report = crosswatch.probe(str(tmp_path), access=True, plugins=both)
    assert (report.choice, report.access) == ("hearing", True)
    assert report.reason == (
        "highest score (50) among the available backends that report access events"
    )


def test_the_watcher_selects_for_access(tmp_path: Path) -> None:
    with Watcher(tmp_path, access=True, plugins=plugins(Blind, Hearing)) as w:
        assert w.backends == {str(tmp_path): "hearing"}
    with Watcher(tmp_path, plugins=plugins(Blind, Hearing)) as w:
        assert w.backends == {str(tmp_path): "blind"}


def test_the_watcher_refuses_a_forced_backend_without_access_events(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path, access=True, backend="polling", plugins=Plugins(autoload=False))
    with pytest.raises(BackendUnavailableError, match="'polling' cannot report access events"):
        watcher.start()
    watcher = Watcher(tmp_path, access=True, backend=PollingBackend)
    with pytest.raises(BackendUnavailableError, match="'polling' cannot report access events"):
        watcher.start()
    with Watcher(tmp_path, access=True, backend=Hearing) as w:
        assert w.backends == {str(tmp_path): "hearing"}


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH")) if p)
    env["CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "crosswatch", *args],
        capture_output=True,
        env=env,
        timeout=20,
        check=False,
    )


def test_cli_backends_access(tmp_path: Path) -> None:
    result = _cli("backends", str(tmp_path), "--access", "--json")
    assert result.returncode == 4
    report = json.loads(result.stdout)
    assert report["access"] is True
    assert report["choice"] is None
    (polling,) = report["backends"]
    assert polling["lacks_access"] is True
    human = _cli("backends", str(tmp_path), "--access")
    assert b"polling  available, cannot report access events" in human.stdout
    plain = json.loads(_cli("backends", str(tmp_path), "--json").stdout)
    assert plain["choice"] == "polling"
    assert plain["backends"][0]["lacks_access"] is False


def test_cli_watch_access_with_polling_exits_4(tmp_path: Path) -> None:
    result = _cli("watch", str(tmp_path), "--access", "--backend", "polling")
    assert result.returncode == 4
    assert result.stderr.startswith(b"crosswatch: error: backend 'polling' cannot report access")

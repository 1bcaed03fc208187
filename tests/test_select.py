"""Probing and backend selection, with small fake backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crosswatch._backend import Backend, Probe
from crosswatch._errors import (
    BackendUnavailableError,
    ConfigError,
    UnknownBackendError,
    WatchPathError,
)
from crosswatch._plugins import Plugins
from crosswatch._select import ProbeReport, probe, probe_all, select_backend
from crosswatch.testing import StubBackend

pytestmark = pytest.mark.usefixtures("clean_env")


class Inotify(StubBackend):
    name = "inotify"
    answer = Probe("inotify", True, score=50)


class Fanotify(StubBackend):
    name = "fanotify"
    answer = Probe("fanotify", True, score=80)


class Kqueue(StubBackend):
    name = "kqueue"
    answer = Probe.unavailable("kqueue", "needs macOS or BSD")


class Slow(StubBackend):
    name = "slow"
    answer = Probe("slow", True, score=10)


class Twin(StubBackend):
    """Same score as Inotify: the tie goes to the name that sorts first."""

    name = "twin"
    answer = Probe("twin", True, score=50)


class Broken(StubBackend):
    name = "broken"

    @classmethod
    def probe(cls, path: str) -> Probe:
        raise RuntimeError("boom")


class Liar(StubBackend):
    name = "liar"

    @classmethod
    def probe(cls, path: str) -> Probe:
        return "yes"  # type: ignore[return-value]


class Misnamed(StubBackend):
    name = "misnamed"
    answer = Probe("something-else", True, score=1)


def plugins(*backends: type[Backend]) -> Plugins:
    # The built-in polling backend is left out so these tests depend on fakes only.
    return Plugins(autoload=False, disable=["polling"], extra=backends)


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path)


# --- probe_all ----------------------------------------------------------------------------


def test_probe_all_sorted_by_name(root: str) -> None:
    results = probe_all(root, plugins(Slow, Kqueue, Inotify))
    assert [p.backend for p in results] == ["inotify", "kqueue", "slow"]
    assert results[1] == Probe.unavailable("kqueue", "needs macOS or BSD")


def test_raising_probe_becomes_unavailable(root: str) -> None:
    (result,) = probe_all(root, plugins(Broken))
    assert result.backend == "broken"
    assert not result.available
    assert result.reason == "probe failed: RuntimeError('boom')"


def test_non_probe_answer_becomes_unavailable(root: str) -> None:
    (result,) = probe_all(root, plugins(Liar))
    assert not result.available
    assert result.reason.startswith("probe failed:")
    assert "'yes'" in result.reason


def test_probe_answer_carries_registered_name(root: str) -> None:
    (result,) = probe_all(root, plugins(Misnamed))
    assert result.backend == "misnamed"
    assert result.available


# --- automatic selection ------------------------------------------------------------------


def test_auto_picks_highest_score(root: str) -> None:
    cls, result = select_backend(root, None, frozenset(), plugins(Inotify, Fanotify, Slow))
    assert cls is Fanotify
    assert result == Fanotify.answer


def test_auto_skips_unavailable_and_broken(root: str) -> None:
    cls, _ = select_backend(root, None, frozenset(), plugins(Kqueue, Broken, Slow))
    assert cls is Slow


def test_auto_tie_broken_by_name(root: str) -> None:
    cls, _ = select_backend(root, None, frozenset(), plugins(Twin, Inotify))
    assert cls is Inotify


def test_deny_excludes(root: str) -> None:
    cls, _ = select_backend(root, None, frozenset({"fanotify"}), plugins(Inotify, Fanotify))
    assert cls is Inotify


def test_auto_nothing_available_lists_each(root: str) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(root, None, frozenset({"inotify"}), plugins(Inotify, Kqueue, Broken))
    message = str(info.value)
    assert root in message
    assert "inotify: denied" in message
    assert "kqueue: unavailable: needs macOS or BSD" in message
    assert "broken: unavailable: probe failed: RuntimeError('boom')" in message


def test_auto_no_backends_registered(root: str) -> None:
    with pytest.raises(BackendUnavailableError, match="no backends are registered"):
        select_backend(root, None, frozenset(), plugins())


# --- forced backends ----------------------------------------------------------------------


def test_forced_available(root: str) -> None:
    cls, result = select_backend(root, ("slow",), frozenset(), plugins(Inotify, Slow))
    assert cls is Slow
    assert result.backend == "slow"


def test_forced_probes_only_what_it_needs(root: str) -> None:
    class Counted(StubBackend):
        name = "counted"
        answer = Probe("counted", True)

    class Other(StubBackend):
        name = "other"
        answer = Probe("other", True)

    select_backend(root, ("counted",), frozenset(), plugins(Counted, Other))
    assert (Counted.calls, Other.calls) == (1, 0)


def test_forced_unknown_suggests_close_name(root: str) -> None:
    with pytest.raises(UnknownBackendError) as info:
        select_backend(root, ("inotfy",), frozenset(), plugins(Inotify, Slow))
    message = str(info.value)
    assert "'inotfy'" in message
    assert "did you mean 'inotify'?" in message
    assert "pip install" not in message
    assert "registered backends: inotify, slow" in message


def test_forced_unknown_without_close_name(root: str) -> None:
    with pytest.raises(UnknownBackendError) as info:
        select_backend(root, ("zzz",), frozenset(), plugins(Inotify))
    assert "did you mean" not in str(info.value)
    assert "pip install crosswatch-zzz" in str(info.value)


def test_unknown_is_a_config_error(root: str) -> None:
    with pytest.raises(ConfigError):
        select_backend(root, ("inotify", "nope"), frozenset(), plugins(Inotify))


def test_forced_unavailable_names_available_ones(root: str) -> None:
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(
            root, ("kqueue",), frozenset({"fanotify"}), plugins(Kqueue, Inotify, Slow, Fanotify)
        )
    message = str(info.value)
    assert "'kqueue'" in message
    assert "needs macOS or BSD" in message
    assert "available for this path: inotify, slow" in message
    assert "fanotify" not in message  # denied, so not offered


def test_forced_unavailable_when_nothing_else_is(root: str) -> None:
    with pytest.raises(BackendUnavailableError, match="no other backend is available"):
        select_backend(root, ("kqueue",), frozenset(), plugins(Kqueue))


def test_forced_and_denied(root: str) -> None:
    with pytest.raises(ConfigError, match="'inotify' is both requested and denied"):
        select_backend(root, ("inotify",), frozenset({"inotify"}), plugins(Inotify))


# --- preference lists ---------------------------------------------------------------------


def test_list_takes_first_available_in_order(root: str) -> None:
    preference = ("kqueue", "slow", "fanotify")
    cls, _ = select_backend(root, preference, frozenset(), plugins(Kqueue, Slow, Fanotify))
    assert cls is Slow  # list order wins over score


def test_list_skips_denied(root: str) -> None:
    preference = ("slow", "inotify")
    cls, _ = select_backend(root, preference, frozenset({"slow"}), plugins(Slow, Inotify))
    assert cls is Inotify


def test_list_none_available(root: str) -> None:
    preference = ("kqueue", "broken", "slow")
    with pytest.raises(BackendUnavailableError) as info:
        select_backend(
            root, preference, frozenset({"slow"}), plugins(Kqueue, Broken, Slow, Inotify)
        )
    message = str(info.value)
    assert "kqueue: unavailable: needs macOS or BSD" in message
    assert "broken: unavailable: probe failed" in message
    assert "slow: denied" in message
    assert "available but not listed: inotify" in message


# --- probe() ------------------------------------------------------------------------------


def test_probe_report(root: str) -> None:
    report = probe(root, plugins=plugins(Slow, Kqueue, Inotify))
    assert isinstance(report, ProbeReport)
    assert report.path == os.path.abspath(root)
    assert [p.backend for p in report.results] == ["inotify", "kqueue", "slow"]
    assert report.choice == "inotify"
    assert "score" in report.reason


def test_probe_report_honours_deny_and_backend(root: str) -> None:
    pl = plugins(Slow, Inotify)
    assert probe(root, deny=["inotify"], plugins=pl).choice == "slow"
    assert probe(root, backend="slow", plugins=pl).choice == "slow"
    assert probe(root, backend="slow,inotify", deny=["slow"], plugins=pl).choice == "inotify"


def test_probe_report_without_choice(root: str) -> None:
    report = probe(root, plugins=plugins(Kqueue, Broken))
    assert report.choice is None
    assert "kqueue: unavailable: needs macOS or BSD" in report.reason
    assert len(report.results) == 2


def test_probe_forced_unavailable_is_reported_not_raised(root: str) -> None:
    report = probe(root, backend="kqueue", plugins=plugins(Kqueue, Inotify))
    assert report.choice is None
    assert "available for this path: inotify" in report.reason


def test_probe_honours_environment(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSWATCH_DENY", "inotify")
    assert probe(root, plugins=plugins(Slow, Inotify)).choice == "slow"
    assert probe(root, plugins=plugins(Slow, Inotify), environ={}).choice == "inotify"
    # An explicit deny argument replaces the environment's.
    assert probe(root, deny=[], plugins=plugins(Slow, Inotify)).choice == "inotify"


def test_probe_config_errors_raise(root: str) -> None:
    with pytest.raises(UnknownBackendError):
        probe(root, backend="inotfy", plugins=plugins(Inotify))
    with pytest.raises(ConfigError, match="'auto' cannot be part"):
        probe(root, backend=["auto", "inotify"], plugins=plugins(Inotify))


def test_probe_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    report = probe("src", plugins=plugins(Inotify))
    assert report.path == os.path.join(os.getcwd(), "src")


def test_probe_file_path(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert probe(str(target), plugins=plugins(Inotify)).choice == "inotify"


def test_probe_missing_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(WatchPathError) as info:
        probe(missing, plugins=plugins(Inotify))
    assert missing in str(info.value)
    assert "does not exist" in str(info.value)
    assert isinstance(info.value, OSError)

"""Limits used up, and a watcher closed while it starts: fallbacks, errors, no leaks."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from crosswatch import BackendUnavailableError, Change, Watcher
from crosswatch._backend import Backend, Handle, Probe
from crosswatch._errors import WatchLimitError
from crosswatch._plugins import Plugins
from crosswatch._polling import PollingBackend
from crosswatch._select import probe, select_backend
from crosswatch.testing import StubBackend, collect, open_fds

pytestmark = pytest.mark.usefixtures("clean_env")


class Exhausted(StubBackend):
    """Its probe says its OS limit is used up (``limit=0``)."""

    name = "exhausted"
    answer = Probe("exhausted", False, "every instance is taken; raise max_instances", limit=0)


class Elsewhere(StubBackend):
    """Unavailable for a reason no user can change here: passed over in silence."""

    name = "elsewhere"
    answer = Probe.unavailable("elsewhere", "needs another OS")


class Racing(StubBackend):
    """Says yes, then cannot open: the limit was used up between probe and open."""

    name = "racing"
    answer = Probe("racing", True, score=100)
    opened: ClassVar[int] = 0

    def __init__(self, options: object) -> None:
        type(self).opened += 1
        raise WatchLimitError(errno.EMFILE, "every instance is taken; raise max_instances")


def plugins(*backends: type[Backend]) -> Plugins:
    return Plugins(autoload=False, extra=backends)  # polling included


@pytest.fixture
def root() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield os.path.realpath(tmp)  # as the OS names it (macOS: /var is /private/var)


# ------------------------------------------------------------ selection


def test_auto_passing_over_a_used_up_limit_warns_why(root: str) -> None:
    said: list[str] = []
    found = plugins(Exhausted, Elsewhere)
    cls, _ = select_backend(root, None, frozenset(), found, warn=said.append)
    assert cls is PollingBackend
    assert len(said) == 1
    assert "watched with polling" in said[0]
    assert "instead of exhausted: every instance is taken; raise max_instances" in said[0]
    report = probe(root, plugins=plugins(Exhausted, Elsewhere))
    assert report.choice == "polling"
    assert "raise max_instances" in report.reason
    assert "elsewhere" not in report.reason


def test_an_unavailable_backend_is_passed_over_in_silence(root: str) -> None:
    said: list[str] = []
    cls, _ = select_backend(root, None, frozenset(), plugins(Elsewhere), warn=said.append)
    assert cls is PollingBackend
    assert said == []


def test_a_denied_backend_whose_limit_is_used_up_is_not_warned_of(root: str) -> None:
    said: list[str] = []
    select_backend(root, None, frozenset({"exhausted"}), plugins(Exhausted), warn=said.append)
    assert said == []


def test_a_preference_list_falls_back_with_a_warning(root: str) -> None:
    said: list[str] = []
    cls, _ = select_backend(
        root, ("exhausted", "polling"), frozenset(), plugins(Exhausted), warn=said.append
    )
    assert cls is PollingBackend
    assert len(said) == 1
    assert "raise max_instances" in said[0]


# ------------------------------------------------------------ opening fails after the probe


def test_auto_falls_back_when_opening_fails_after_a_yes(root: str) -> None:
    said: list[str] = []
    with Watcher(root, plugins=plugins(Racing), poll_interval=0.05, on_warning=said.append) as w:
        assert w.backends == {root: "polling"}
        open(os.path.join(root, "new"), "w").close()
        events = collect(w, lambda ev: any(e.kind is Change.CREATED for e in ev), timeout=10)
    assert [e.path for e in events if e.kind is Change.CREATED] == [os.path.join(root, "new")]
    assert len(said) == 1
    assert "instead of racing: every instance is taken; raise max_instances" in said[0]


def test_two_roots_open_a_refused_backend_once(root: str) -> None:
    Racing.opened = 0
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    os.mkdir(a)
    os.mkdir(b)
    with Watcher(a, b, plugins=plugins(Racing), on_warning=lambda message: None) as w:
        assert w.backends == {a: "polling", b: "polling"}
    assert Racing.opened == 1


@pytest.mark.parametrize("forced", ["racing", Racing], ids=["by-name", "by-class"])
def test_forced_opening_fails_with_the_limit_named(root: str, forced: object) -> None:
    w = Watcher(root, plugins=plugins(Racing), backend=forced)  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailableError, match="raise max_instances"):
        w.start()
    w.close()


# ------------------------------------------------------------ close() during start()


class ClosedAtTheRoot(PollingBackend):
    """Its root's watch has the watcher closed from another thread, then goes on."""

    name = "closed-at-the-root"
    watcher: ClassVar[Watcher | None] = None

    def watch(self, path: str, *, recursive: bool) -> Handle:
        handle = super().watch(path, recursive=recursive)
        w = type(self).watcher
        assert w is not None
        closer = threading.Thread(target=w.close)
        closer.start()
        for _ in range(1000):  # until close() has said so (it then waits for start())
            if w.closed:
                break
            time.sleep(0.01)
        return handle


def test_close_while_starting_stops_the_reading_quietly(root: str) -> None:
    for i in range(50):
        os.makedirs(os.path.join(root, f"d{i}", "sub"))
    before = open_fds()
    said: list[str] = []
    w = Watcher(root, backend=ClosedAtTheRoot, on_warning=said.append)
    ClosedAtTheRoot.watcher = w
    assert w.start() is w
    assert w.closed
    assert list(w) == []
    w.close()
    (watched,) = w._engine.watched
    assert len(watched.node.children) == 0  # stopped before the first listing
    assert said == []
    assert open_fds() == before


def test_close_before_start_opens_nothing(root: str) -> None:
    before = open_fds()
    w = Watcher(root, backend="polling")
    w.close()
    assert w.start() is w
    assert w.backends == {}
    assert list(w) == []
    assert open_fds() == before

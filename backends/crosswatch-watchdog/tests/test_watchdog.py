"""The watchdog adapter: its probe, and what it does when watchdog's threads fail."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from crosswatch_watchdog import WatchdogBackend
from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT

from crosswatch import Change, Event, Watcher, WatchError
from crosswatch.testing import LINUX, collect, linux_only, open_fds


class Boom(RuntimeError):
    """What the failing emitters raise."""


def _observer_classes() -> tuple[type[Any], type[Any]]:
    """watchdog's inotify emitter and observer; its polling ones off Linux, where
    there is no inotify (what fails is the emitter's thread, whichever it is)."""
    if LINUX:
        from watchdog.observers.inotify import InotifyEmitter, InotifyObserver

        return InotifyEmitter, InotifyObserver
    from watchdog.observers.polling import PollingEmitter, PollingObserver

    return PollingEmitter, PollingObserver


def failing_observer(times: int, *, log: bool = False) -> type[Any]:
    """An inotify observer whose emitter thread raises (or, with ``log``, logs an
    overflow as watchdog does) the first ``times`` times it sees an entry "boom"."""
    left = [times]
    base_emitter, base_observer = _observer_classes()

    class Emitter(base_emitter):  # type: ignore[valid-type,misc]
        def queue_event(self, event: Any) -> None:
            if os.path.basename(os.fsdecode(event.src_path)) == "boom" and left[0] > 0:
                left[0] -= 1
                if not log:
                    raise Boom("the emitter failed")
                logging.getLogger("watchdog.observers.inotify_c").warning(
                    "Inotify queue overflowed; filesystem events were lost"
                )
                return  # the event is lost, as in an overflow
            super().queue_event(event)

    class Observer(base_observer):  # type: ignore[valid-type,misc]
        def __init__(self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT) -> None:
            super().__init__(timeout=timeout)  # its own inotify descriptor, closed at stop
            self._emitter_class = Emitter

    return Observer


def backend_with(observer: type[Any]) -> type[WatchdogBackend]:
    return type("Failing", (WatchdogBackend,), {"observer_class": observer})


def test_probe_ranks_below_native_backends(tmp_path: Path) -> None:
    probe = WatchdogBackend.probe(str(tmp_path))
    assert probe.available
    assert 10 < probe.score < 100  # above polling, below inotify
    assert "watchdog" in probe.reason


def test_without_watchdog_the_plugin_imports_and_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['watchdog'] = None\n"
        "import crosswatch_watchdog\n"
        f"p = crosswatch_watchdog.WatchdogBackend.probe({str(tmp_path)!r})\n"
        "print(p.available, p.reason)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False install watchdog (pip install crosswatch[watchdog])"


@pytest.mark.parametrize("log", [False, True], ids=["raises", "overflows"])
def test_a_failing_emitter_is_restarted_and_the_tree_rescanned(
    tmp_path: Path, log: bool
) -> None:
    """An emitter that dies (or loses events) once: a rescan, and nothing is lost."""
    root = str(tmp_path / "root")
    os.mkdir(root)
    fds, threads = open_fds(), set(threading.enumerate())
    w = Watcher(root, backend=backend_with(failing_observer(1, log=log))).start()
    try:
        Path(root, "boom").write_text("x")  # the emitter fails on this one
        Path(root, "later").write_text("x")

        def seen(ev: list[Event]) -> bool:
            paths = {e.path for e in ev if e.kind is Change.CREATED}
            return {os.path.join(root, "boom"), os.path.join(root, "later")} <= paths

        events = collect(w, seen, timeout=10, settle=1.0)
        assert seen(events), events
        assert (Change.RESCAN, root) in [(e.kind, e.path) for e in events]
        Path(root, "after").write_text("x")  # watched again
        events = collect(w, bool, timeout=10, settle=1.0)
        assert [(e.kind, e.path) for e in events][:1] == [
            (Change.CREATED, os.path.join(root, "after"))
        ]
    finally:
        w.close()
    assert open_fds() == fds
    assert set(threading.enumerate()) == threads


def test_an_emitter_that_fails_now_and_then_but_works_between_is_kept(tmp_path: Path) -> None:
    """Failures with events delivered between them are not a crash loop: each is
    followed by a rescan, however many there are, and nothing is lost."""
    root = str(tmp_path / "root")
    os.mkdir(root)
    w = Watcher(root, backend=backend_with(failing_observer(5))).start()
    try:
        made: set[str] = set()
        for i in range(5):
            Path(root, f"ok{i}").touch()  # delivered: the observer works
            made.add(os.path.join(root, f"ok{i}"))
            collect(w, lambda ev: any(e.path in made for e in ev), timeout=10, settle=0.3)
            Path(root, "boom").touch()  # and then it fails on this one
            os.unlink(os.path.join(root, "boom"))
            collect(w, lambda ev: any(e.kind is Change.RESCAN for e in ev), timeout=10,
                    settle=0.3)
        Path(root, "last").touch()
        events = collect(w, lambda ev: any(e.path.endswith("last") for e in ev), timeout=10,
                         settle=0.5)
        assert (Change.CREATED, os.path.join(root, "last")) in [(e.kind, e.path) for e in events]
    finally:
        w.close()


def test_an_emitter_that_keeps_failing_ends_the_stream_with_a_clear_error(
    tmp_path: Path,
) -> None:
    root = str(tmp_path / "root")
    os.mkdir(root)
    threads = set(threading.enumerate())
    w = Watcher(root, backend=backend_with(failing_observer(100))).start()
    try:
        deadline = time.monotonic() + 20
        with pytest.raises(WatchError, match=r"failed 3 times in its threads.*Boom"):  # noqa: PT012
            while time.monotonic() < deadline:
                Path(root, "boom").write_text("x")
                if w.get(timeout=0.2) is None:
                    break
        assert time.monotonic() < deadline, "no error within 20 s"
    finally:
        w.close()
    assert set(threading.enumerate()) == threads


@linux_only("the helper thread that dies is the inotify observer's reader")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_helper_thread_that_dies_is_noticed_and_the_observer_replaced(
    tmp_path: Path,
) -> None:
    """The inotify observer's reader thread dies (as it can under a storm, on a
    KeyError): the adapter notices within its check interval, starts a new observer
    and has the tree rescanned."""
    root = str(tmp_path / "root")
    os.mkdir(root)
    fds, threads = open_fds(), set(threading.enumerate())
    w = Watcher(root, backend=WatchdogBackend).start()
    try:
        backend = w.backend("watchdog")
        assert isinstance(backend, WatchdogBackend)
        (reader,) = backend._helpers  # the observer's inotify reader

        def fail(event: Any) -> None:
            raise KeyError(event)

        reader.handle_event = fail  # type: ignore[attr-defined]
        Path(root, "lost").write_text("x")  # the reader dies on it
        reader.join(timeout=5)
        assert not reader.is_alive()
        Path(root, "meanwhile").write_text("x")
        events = collect(w, lambda ev: len(ev) >= 3, timeout=10, settle=1.0)
        assert sorted((e.kind, e.path) for e in events) == sorted(
            [
                (Change.CREATED, os.path.join(root, "lost")),
                (Change.CREATED, os.path.join(root, "meanwhile")),
                (Change.RESCAN, root),
            ]
        )
        # The new observer reports. (An empty file: a write after the creation may
        # be reported as modified too, if the engine looks in between.)
        Path(root, "after").touch()
        events = collect(w, bool, timeout=10, settle=1.0)
        assert [(e.kind, e.path) for e in events] == [
            (Change.CREATED, os.path.join(root, "after"))
        ]
    finally:
        w.close()
    assert open_fds() == fds
    assert set(threading.enumerate()) == threads

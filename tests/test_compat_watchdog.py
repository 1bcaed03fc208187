"""crosswatch.compat.watchdog: watchdog's Observer API, emitting what watchdog does.

The comparisons run watchdog's own inotify observer and the compat observer on
the same tree at once, make the same changes, and compare what each handler
saw. Where the two must differ, the test states the difference and checks it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue as queue_module
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crosswatch import ConfigError, WatchPathError
from crosswatch.testing import open_fds, tmpfs
from crosswatch.testing._marks import linux_only

watchdog_version = pytest.importorskip("watchdog.version")
if watchdog_version.VERSION_MAJOR < 7:
    pytest.skip("the compat layer follows watchdog 7", allow_module_level=True)

from watchdog.events import (  # noqa: E402
    DirCreatedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    LoggingEventHandler,
    PatternMatchingEventHandler,
    RegexMatchingEventHandler,
)
from watchdog_scenarios import (  # noqa: E402
    SCENARIOS,
    WAIT,
    Recorder,
    Scenario,
    Seen,
    append,
    deleted,
    named,
    out,
    p,
    raw,
    record,
    touch,
    tree,
)

from crosswatch.compat.watchdog import Observer, WatchPathNotFoundError  # noqa: E402


@pytest.fixture
def root() -> Iterator[str]:
    """``root`` to watch, beside ``out``, a directory outside it; nothing leaked after."""
    threads, fds = set(threading.enumerate()), open_fds()
    with tempfile.TemporaryDirectory(dir=tmpfs()) as tmp:
        top = os.path.realpath(tmp)
        os.mkdir(os.path.join(top, "root"))
        os.mkdir(os.path.join(top, "out"))
        yield os.path.join(top, "root")
    deadline = time.monotonic() + WAIT
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - threads == set()
    assert open_fds() == fds


@linux_only("watchdog's inotify observer is the reference")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_events_as_watchdog(name: str, root: str) -> None:
    scenario = SCENARIOS[name]
    theirs, ours = record(scenario, root)
    assert theirs, "the scenario made watchdog report nothing: it tests nothing"
    assert scenario.normalise(ours) == scenario.normalise(theirs)


def _inside(top: str) -> Callable[[Seen], bool]:
    """Events about entries below ``top``, and the DirModifiedEvents of ``top``."""
    return lambda e: (
        str(e[1]).startswith(top + os.sep) or (e[1] == top and e[0] == "DirModifiedEvent")
    )


@linux_only("watchdog's inotify observer is the reference")
def test_directory_moved_in_names_its_entries_as_created(root: str) -> None:
    # watchdog names the entries of a directory moved in without a DirModifiedEvent
    # for the directories holding them, a mkdir'ed one with them; crosswatch cannot
    # tell the two apart, so the compat layer always adds them, and lists the
    # entries depth first.
    d = p(root, "d")
    move_in = Scenario(lambda r: os.rename(p(out(r), "d"), d), lambda r: tree(p(out(r), "d")))
    inside = _inside(d)

    def others(events: list[Seen]) -> list[Seen]:
        return sorted(e for e in events if not (inside(e) and e[0] == "DirModifiedEvent"))

    theirs, ours = record(move_in, root, check=lambda t, o: others(o) == others(t))
    assert others(ours) == others(theirs)
    modified_inside = {e[1] for e in ours if inside(e) and e[0] == "DirModifiedEvent"}
    assert sorted(modified_inside) == [d, p(d, "sub")]
    assert ours[:2] == theirs[:2] == [("DirCreatedEvent", d, ""), ("DirModifiedEvent", root, "")]


@linux_only("watchdog's inotify observer is the reference")
def test_directory_moved_out_names_its_entries_as_deleted(root: str) -> None:
    # watchdog names the directory (and, from 7.1.1 on, the directories below it,
    # but no file); crosswatch reports the move out as the directory's deletion,
    # which the compat layer reports as rmtree's would be, every entry deleted
    # before the directory holding it.
    d = p(root, "d")
    move_out = Scenario(lambda r: os.rename(d, p(out(r), "d")), lambda r: tree(d))
    inside = _inside(d)

    def outside(events: list[Seen]) -> list[Seen]:
        return [e for e in events if not inside(e)]

    def named_inside(events: list[Seen]) -> set[Seen]:
        return {e for e in events if inside(e) and e[0] != "DirModifiedEvent"}

    theirs, ours = record(move_out, root, check=lambda t, o: outside(o) == outside(t))
    assert outside(ours) == outside(theirs) == [
        ("DirDeletedEvent", d, ""), ("DirModifiedEvent", root, "")
    ]
    assert named_inside(theirs) <= named_inside(ours)
    deleted = [e[1] for e in ours if inside(e) and e[0].endswith("DeletedEvent")]
    assert sorted(deleted) == [p(d, "a.txt"), p(d, "sub"), p(d, "sub", "b.txt")]
    assert deleted.index(p(d, "sub", "b.txt")) < deleted.index(p(d, "sub"))


@linux_only("watchdog's inotify observer is the reference")
@pytest.mark.parametrize("spelling", ["bytes", "relative", "file"])
def test_paths_spelled_as_given(spelling: str, root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path: str | bytes = root
    if spelling == "bytes":
        path = os.fsencode(root)
    elif spelling == "relative":
        monkeypatch.chdir(os.path.dirname(root))
        path = os.path.join(".", "root")
    else:  # a file: only its own events
        path = p(root, "f")
    write = Scenario(
        lambda r: (append(r, "f"), touch(r, "g"), append(r, "f"), os.unlink(p(r, "f"))),
        lambda r: touch(r, "f"),
    )
    gone = path if spelling == "file" else p(os.fsdecode(path), "f")
    theirs, ours = record(write, root, path, last=deleted(gone))
    assert ours == theirs
    assert {type(p) for e in ours for p in e[1:] if p} == {type(path)}


@linux_only("watchdog's inotify observer is the reference")
@pytest.mark.parametrize("name", ["rename_dir", "rmtree", "new_tree", "create"])
def test_flat_watch_as_watchdog(name: str, root: str) -> None:
    scenario = SCENARIOS[name]
    theirs, ours = record(scenario, root, recursive=False)
    assert ours == theirs
    assert not any(str(e[1]).count(os.sep) > root.count(os.sep) + 1 for e in ours)


@linux_only("watchdog's inotify observer is the reference")
def test_event_filter_as_watchdog(root: str) -> None:
    churn = Scenario(
        lambda r: (
            touch(r, "d", "c"),
            append(r, "d", "a.txt"),
            os.unlink(p(r, "d", "sub", "b.txt")),
        ),
        lambda r: tree(p(r, "d")),
    )
    theirs, ours = record(
        churn, root, event_filter=[FileCreatedEvent, FileDeletedEvent, DirCreatedEvent]
    )
    assert ours == theirs
    assert [e[0] for e in ours] == ["FileCreatedEvent", "FileDeletedEvent"]


class Collecting(FileSystemEventHandler):
    """Keeps the path of each event that passes the handler's own matching."""

    def __init__(self, **keywords: Any) -> None:
        super().__init__(**keywords)
        self.paths: set[str | bytes] = set()

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.paths.add(event.src_path)


class Matching(Collecting, PatternMatchingEventHandler):
    pass


class Regex(Collecting, RegexMatchingEventHandler):
    pass


def _until(handler: Recorder, name: str) -> None:
    found = handler.wait(lambda: any(named(name)(e.src_path) for e in handler.events))
    assert found, handler.seen()


def test_watchdog_handlers(root: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    every, txt, log = (
        Recorder(),
        Matching(patterns=["**/*.txt"], ignore_directories=True),
        Regex(regexes=[r".*\.log$"]),
    )
    with Observer() as observer:
        watch = observer.schedule(every, root, recursive=True)
        for handler in (txt, log, LoggingEventHandler()):
            observer.add_handler_for_watch(handler, watch)
        os.mkdir(p(root, "c.txt"))
        touch(root, "a.txt")
        touch(root, "b.log")
        _until(every, "b.log")
        observer.remove_handler_for_watch(log, watch)
        touch(root, "d.log")
        _until(every, "d.log")
        assert observer.is_alive()
    assert not observer.is_alive()
    assert txt.paths == {p(root, "a.txt")}
    assert log.paths == {p(root, "b.log")}
    assert f"Created file: {p(root, 'a.txt')}" in caplog.text
    assert f"Created directory: {p(root, 'c.txt')}" in caplog.text


def test_unschedule_ends_the_emitter(root: str) -> None:
    first, second = Recorder(), Recorder()
    observer = Observer()
    watch = observer.schedule(first, root, recursive=True)
    assert (watch.path, watch.is_recursive) == (root, True)
    observer.start()
    try:
        other = observer.schedule(second, root, recursive=False)  # started at once
        assert len(observer.emitters) == 2
        (flat,) = [e for e in observer.emitters if e.watch == other]
        observer.unschedule(watch)
        assert [e.watch for e in observer.emitters] == [other]
        touch(root, "f")
        _until(second, "f")
        assert first.events == []
        observer.unschedule_all()
        assert observer.emitters == set()
        assert not flat.is_alive()
    finally:
        observer.stop()
        observer.join()


def test_the_emitter_alone_puts_event_and_watch_pairs_on_the_queue(root: str) -> None:
    """Built and run as watchdog's own emitters are, with no observer around it."""
    from watchdog.observers.api import EventQueue, ObservedWatch

    from crosswatch.compat.watchdog import CrosswatchEmitter

    queue: EventQueue = EventQueue()
    watch = ObservedWatch(root, recursive=True)
    emitter = CrosswatchEmitter(queue, watch, timeout=0.1)
    emitter.start()
    try:
        touch(root, "f")
        deadline = time.monotonic() + WAIT
        pairs: list[tuple[FileSystemEvent, ObservedWatch]] = []
        while not any(named("f")(e.src_path) for e, _ in pairs):
            assert time.monotonic() < deadline, pairs
            with contextlib.suppress(queue_module.Empty):
                pairs.append(queue.get(timeout=0.1))
        event, seen = next((e, w) for e, w in pairs if named("f")(e.src_path))
        assert isinstance(event, FileCreatedEvent)
        assert seen is watch
        shutil.rmtree(root)  # it stops by itself, after the deletions
        emitter.join(WAIT)
        assert not emitter.is_alive()
    finally:
        emitter.stop()
        emitter.join(WAIT)


def test_root_deleted_stops_the_emitter(root: str) -> None:
    handler = Recorder()
    tree(root)
    with Observer() as observer:
        observer.schedule(handler, root, recursive=True)
        (emitter,) = observer.emitters
        shutil.rmtree(root)
        assert handler.wait(lambda: any(map(deleted(root), raw(handler)))), handler.seen()
        emitter.join(WAIT)
        assert not emitter.is_alive()
        assert observer.is_alive()
    assert raw(handler)[-1] == ("DirDeletedEvent", root, "")


def test_no_access_events_where_the_backend_has_none(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSWATCH_BACKEND", "polling")  # sees no opens or closes
    monkeypatch.setenv("CROSSWATCH_POLL_INTERVAL", "0.05")
    handler = Recorder()
    with Observer() as observer:
        observer.schedule(handler, root, recursive=True)
        touch(root, "f")
        _until(handler, "f")
    assert handler.seen()[:2] == [
        ("FileCreatedEvent", p(root, "f"), ""),
        ("DirModifiedEvent", root, ""),
    ]


def test_missing_path(root: str) -> None:
    observer = Observer()
    observer.schedule(Recorder(), p(root, "missing"), recursive=True)
    with pytest.raises(WatchPathNotFoundError, match="does not exist") as info:
        observer.start()
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, WatchPathError)
    assert info.value.errno == errno.ENOENT
    assert not observer.is_alive()
    observer.unschedule_all()


def test_arguments_refused() -> None:
    with pytest.raises(ConfigError, match="generate_full_events"):
        Observer(generate_full_events=True)
    with pytest.raises(TypeError, match="bool"):
        Observer(timeout=True)


def test_clear_error_without_watchdog() -> None:
    code = "import sys; sys.modules['watchdog'] = None; import crosswatch.compat.watchdog"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT
    )
    assert result.returncode != 0
    assert "WatchdogMissingError" in result.stderr
    assert "pip install 'watchdog>=7'" in result.stderr

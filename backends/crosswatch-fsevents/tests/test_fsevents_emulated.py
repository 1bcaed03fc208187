"""The FSEvents backend's driving logic against its Linux emulation, and the
emulation's own semantics (coalescing, renames, ids, drops, RootChanged, history)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crosswatch_fsevents import FSEventsBackend, _flags
from crosswatch_fsevents._emulated_tree import Tree
from crosswatch_fsevents._stream import StreamError
from crosswatch_fsevents.testing import STRAY, EmulatedFSEvents, FSEventsEmulation

from crosswatch import Change, ConfigError, CrosswatchWarning, Watcher, WatchError
from crosswatch.backend import DirDirty, Observation, SubtreeLost
from crosswatch.testing import Mirror, collect, converge, open_fds
from crosswatch.testing._inotify import IN_Q_OVERFLOW, Record

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the emulation stands on inotify (Linux)")

CREATED = _flags.kFSEventStreamEventFlagItemCreated
REMOVED = _flags.kFSEventStreamEventFlagItemRemoved
MODIFIED = _flags.kFSEventStreamEventFlagItemModified
RENAMED = _flags.kFSEventStreamEventFlagItemRenamed
META = _flags.kFSEventStreamEventFlagItemInodeMetaMod
FILE = _flags.kFSEventStreamEventFlagItemIsFile
DIR = _flags.kFSEventStreamEventFlagItemIsDir
LINK = _flags.kFSEventStreamEventFlagItemIsSymlink
ROOT_CHANGED = _flags.kFSEventStreamEventFlagRootChanged
HISTORY_DONE = _flags.kFSEventStreamEventFlagHistoryDone
LOST = _flags.kFSEventStreamEventFlagMustScanSubDirs | _flags.kFSEventStreamEventFlagUserDropped
SINCE_NOW = _flags.kFSEventStreamEventIdSinceNow


class Recording(FSEventsEmulation):
    """The emulation, noting the ``sinceWhen`` of each stream created and the paths
    of every event delivered."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.since: list[int] = []
        self.delivered: list[str] = []

    def stream_create(self, callback: Any, paths: Any, since_when: int, latency: float,
                      flags: int) -> Any:
        self.since.append(since_when)

        def noted(events: list[object], flags: list[int], ids: list[int]) -> None:
            for e in events:
                if isinstance(e, dict):
                    self.delivered.append(os.fsdecode(e["path"]))
            callback(events, flags, ids)

        return super().stream_create(noted, paths, since_when, latency, flags)


def emulated(latency: float = 0.05, **kwargs: Any) -> type[FSEventsBackend]:
    """A backend class of its own, over an emulation of its own."""

    class Emulated(FSEventsBackend):
        system = Recording(**kwargs)

    Emulated.latency = latency
    return Emulated


@pytest.fixture
def root(tmp_path: Path) -> str:
    path = tmp_path / "root"
    path.mkdir()
    return str(path)


def until(read: Callable[[], list[Any]], done: Callable[[list[Any]], bool],
          timeout: float = 10.0) -> list[Any]:
    """What ``read`` returns, gathered until ``done`` holds (or ``timeout``)."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while not done(got) and time.monotonic() < deadline:
        got += read()
        time.sleep(0.01)
    return got


# ------------------------------------------------------------------ the emulation itself


class Raw:
    """One emulated stream, its callbacks kept as they come."""

    def __init__(self, emulation: FSEventsEmulation, paths: list[str], *, latency: float = 0.05,
                 since: int = SINCE_NOW, flags: int = _flags.STREAM_FLAGS) -> None:
        self.emulation = emulation
        self.calls: list[tuple[list[object], list[int], list[int]]] = []
        self._lock = threading.Lock()
        self.queue = emulation.queue_create("test")
        self.stream = emulation.stream_create(self._callback, paths, since, latency, flags)
        emulation.stream_set_dispatch_queue(self.stream, self.queue)
        assert emulation.stream_start(self.stream)

    def _callback(self, events: list[object], flags: list[int], ids: list[int]) -> None:
        with self._lock:
            self.calls.append((events, flags, ids))

    def events(self) -> list[tuple[str, int, int, int | None]]:
        """(path, flags, id, file id) of every event so far."""
        out = []
        with self._lock:
            calls = list(self.calls)
        for events, flags, ids in calls:
            for e, f, i in zip(events, flags, ids, strict=True):
                assert isinstance(e, dict)
                out.append((os.fsdecode(e["path"]), f, i, e.get("fileID")))
        return out

    def wait(self, done: Callable[[list[tuple[str, int, int, int | None]]], bool]) -> list[Any]:
        deadline = time.monotonic() + 10
        while not done(self.events()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events()

    def close(self) -> None:
        e = self.emulation
        e.stream_flush_sync(self.stream)
        e.stream_stop(self.stream)
        e.stream_invalidate(self.stream)
        e.stream_release(self.stream)
        e.queue_release(self.queue)


@pytest.fixture
def raw() -> Iterator[Callable[..., Raw]]:
    opened: list[Raw] = []

    def open_(*args: Any, **kwargs: Any) -> Raw:
        r = Raw(*args, **kwargs)
        opened.append(r)
        return r

    yield open_
    for r in opened:
        r.close()


def test_changes_of_one_window_are_one_event_per_path_their_order_lost(
    root: str, raw: Callable[..., Raw]
) -> None:
    r = raw(FSEventsEmulation(), [root], latency=0.5)
    Path(root, "first").write_text("x")  # after a quiet spell: delivered at once (NoDefer)
    r.wait(lambda ev: len(ev) >= 1)
    t = os.path.join(root, "t")
    Path(t).write_text("1")  # created, written and removed within the window
    os.remove(t)
    Path(t).write_text("2")
    os.chmod(t, 0o600)
    events = r.wait(lambda ev: any(p == t for p, *_ in ev))
    on_t = [(f, fid) for p, f, _, fid in events if p == t]
    assert len(on_t) == 1
    flags, fid = on_t[0]
    assert flags == CREATED | REMOVED | MODIFIED | META | FILE
    assert fid == os.lstat(t).st_ino
    ids = [i for *_, i, _ in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_renames_are_reported_at_both_paths_with_the_inode_as_file_id(
    root: str, raw: Callable[..., Raw]
) -> None:
    os.mkdir(os.path.join(root, "d"))
    Path(root, "a").write_text("x")
    os.symlink("a", os.path.join(root, "l"))
    ino = os.lstat(os.path.join(root, "a")).st_ino
    r = raw(FSEventsEmulation(), [root])
    os.rename(os.path.join(root, "a"), os.path.join(root, "d", "b"))
    r.wait(lambda ev: len(ev) >= 2)  # (renamed on at once, its new path is gone)
    os.rename(os.path.join(root, "d"), os.path.join(root, "e"))
    Path(root, "e", "b").write_text("more")  # the moved directory is watched at its new path
    os.remove(os.path.join(root, "l"))
    events = r.wait(lambda ev: any(p.endswith("/l") for p, *_ in ev))
    got = {os.path.relpath(p, root): (f, fid) for p, f, _, fid in events}
    assert got["a"] == (RENAMED | FILE, ino)
    assert got["d/b"] == (RENAMED | FILE, ino)
    assert got["d"][0] == RENAMED | DIR
    assert got["e"][0] == RENAMED | DIR
    assert got["d"][1] == got["e"][1] == os.lstat(os.path.join(root, "e")).st_ino
    assert got["e/b"][0] == MODIFIED | FILE
    assert got["l"][0] & REMOVED


def test_what_is_made_in_a_new_directory_before_its_watch_is_reported(
    root: str, raw: Callable[..., Raw]
) -> None:
    r = raw(FSEventsEmulation(), [root])
    os.makedirs(os.path.join(root, "n", "m", "k"))
    open(os.path.join(root, "n", "m", "k", "f"), "x").close()
    events = r.wait(lambda ev: any(p.endswith("/k/f") for p, *_ in ev))
    got = {os.path.relpath(p, root): f for p, f, _, _ in events if not p.endswith("/")}
    assert got["n"] == CREATED | DIR
    assert got["n/m/k"] == CREATED | DIR
    assert got["n/m/k/f"] == CREATED | FILE


def test_root_changed_when_the_root_or_a_directory_above_it_moves(
    tmp_path: Path, raw: Callable[..., Raw]
) -> None:
    root = str(tmp_path / "up" / "root")
    os.makedirs(root)
    r = raw(FSEventsEmulation(), [root])
    os.rename(str(tmp_path / "up"), str(tmp_path / "away"))
    events = r.wait(lambda ev: any(f & ROOT_CHANGED for _, f, _, _ in ev))
    assert (root, ROOT_CHANGED, 0, None) in events
    os.makedirs(root)  # the path leads to a directory again: watched again
    Path(root, "f").write_text("x")
    events = r.wait(lambda ev: any(p == os.path.join(root, "f") for p, *_ in ev))
    assert [f for p, f, _, _ in events if p == root].count(ROOT_CHANGED) >= 2


def test_a_stream_since_an_id_replays_what_happened_then_says_history_done(
    root: str, raw: Callable[..., Raw]
) -> None:
    emulation = FSEventsEmulation()
    first = raw(emulation, [root])
    Path(root, "before").write_text("x")
    first.wait(lambda ev: len(ev) >= 1)
    time.sleep(0.3)  # its changes all delivered
    Path(root, "after").write_text("x")
    events = first.wait(lambda ev: any(p.endswith("/after") for p, *_ in ev))
    since = max(i for p, _, i, _ in events if p.endswith("/before"))
    second = raw(emulation, [root], since=since)
    events = second.wait(lambda ev: any(f & HISTORY_DONE for _, f, _, _ in ev))
    paths = [os.path.basename(p) for p, f, _, _ in events if not f & HISTORY_DONE]
    assert paths == ["after"]
    assert events[-1][1] == HISTORY_DONE
    assert all(i > since for _, f, i, _ in events if not f & HISTORY_DONE)


def test_more_paths_than_the_queue_holds_are_dropped_for_a_rescan(
    root: str, raw: Callable[..., Raw]
) -> None:
    r = raw(FSEventsEmulation(queue_bound=5), [root], latency=0.3)
    Path(root, "first").write_text("x")
    r.wait(lambda ev: len(ev) >= 1)
    for n in range(20):
        Path(root, f"f{n}").write_text("x")
    events = r.wait(lambda ev: any(f & LOST for _, f, _, _ in ev))
    lost = [e for e in events if e[1] & LOST]
    assert [(p, f) for p, f, _, _ in lost] == [(root, LOST)]
    assert not any(os.path.basename(p).startswith("f1") for p, *_ in events)


def test_inotify_s_own_overflow_is_a_drop(root: str) -> None:
    tree = Tree([root], watch_root=False, record=lambda change: None)
    try:
        tree._on_tree(Record(-1, IN_Q_OVERFLOW, 0, b""), {})
        assert tree.overflowed
    finally:
        tree.close()


def tree_changes(root: str) -> tuple[Tree, list[tuple[str, int, int | None]]]:
    """A stream's tree over ``root``, read by hand: records queue up between reads."""
    changes: list[tuple[str, int, int | None]] = []
    return Tree([root], watch_root=False, record=changes.append), changes


def test_a_directory_made_where_one_moved_away_keeps_its_watch(root: str) -> None:
    """A directory renamed into one not watched yet, and another made at its old
    name, in one read: the new one's changes are still reported (FSEvents watches
    paths), as are the old one's at its new place."""
    tree, changes = tree_changes(root)
    try:
        os.mkdir(os.path.join(root, "a"))
        os.mkdir(os.path.join(root, "t"))
        os.rename(os.path.join(root, "a"), os.path.join(root, "t", "a"))
        os.makedirs(os.path.join(root, "a", "sub"))
        tree.read()
        changes.clear()
        for where in ("a", "a/sub", "t/a"):
            Path(root, where, "f").write_text("x")
        tree.read()
        made = {os.path.relpath(p, root) for p, f, _ in changes if f & CREATED}
        assert made >= {"a/f", "a/sub/f", "t/a/f"}
    finally:
        tree.close()


def test_a_directory_renamed_where_another_was_listed_first_is_watched(root: str) -> None:
    """``mkdir a; mv a b; mkdir a`` in one read: the listing made for the first
    ``mkdir`` found the second ``a``; ``b`` is still watched, at its own path."""
    tree, changes = tree_changes(root)
    try:
        os.mkdir(os.path.join(root, "a"))
        os.rename(os.path.join(root, "a"), os.path.join(root, "b"))
        os.mkdir(os.path.join(root, "a"))
        tree.read()
        changes.clear()
        for where in ("a", "b"):
            Path(root, where, "f").write_text("x")
        tree.read()
        made = {os.path.relpath(p, root) for p, f, _ in changes if f & CREATED}
        assert made >= {"a/f", "b/f"}
    finally:
        tree.close()


def test_a_directory_made_in_one_that_moved_before_its_record_was_read_is_watched(
    root: str,
) -> None:
    """``mkdir d/sub; mv d e`` in one read: ``d/sub`` is not there to watch when its
    record is read; it is found under ``e``, and what was made in it is reported."""
    tree, changes = tree_changes(root)
    try:
        os.mkdir(os.path.join(root, "d"))
        tree.read()
        os.mkdir(os.path.join(root, "d", "sub"))
        Path(root, "d", "sub", "f").write_text("x")
        os.rename(os.path.join(root, "d"), os.path.join(root, "e"))
        tree.read()
        Path(root, "e", "sub", "g").write_text("x")
        tree.read()
        made = {os.path.relpath(p, root) for p, f, _ in changes if f & CREATED}
        assert made >= {"e/sub/f", "e/sub/g"}
    finally:
        tree.close()


def test_what_went_from_a_new_directory_before_its_watch_is_a_look_at_it(root: str) -> None:
    """``mkdir d; touch d/f; rm d/f`` before the watch of ``d``: nothing records the
    removal, which a reader that listed ``d`` meanwhile must learn; ``d`` is named at
    directory level (no item flag), which the decoder makes a listing of ``d``."""
    tree, changes = tree_changes(root)
    try:
        os.mkdir(os.path.join(root, "d"))
        Path(root, "d", "f").write_text("x")
        os.unlink(os.path.join(root, "d", "f"))
        tree.read()
        assert (os.path.join(root, "d") + "/", _flags.kFSEventStreamEventFlagNone, None) in changes
    finally:
        tree.close()


def test_without_extended_data_the_paths_come_plain(root: str) -> None:
    emulation = FSEventsEmulation(extended=False)
    got: list[list[object]] = []
    q = emulation.queue_create("t")
    s = emulation.stream_create(lambda e, f, i: got.append(e), [root], SINCE_NOW, 0.0,
                                _flags.STREAM_FLAGS)
    emulation.stream_set_dispatch_queue(s, q)
    assert emulation.stream_start(s)
    Path(root, "f").write_text("x")
    emulation.stream_flush_sync(s)
    for call in (emulation.stream_stop, emulation.stream_invalidate, emulation.stream_release):
        call(s)
    assert got[:1] == [[os.fsencode(os.path.join(root, "f"))]]


def test_a_stream_without_a_queue_or_on_a_refused_volume_does_not_start(root: str) -> None:
    emulation = FSEventsEmulation()
    s = emulation.stream_create(lambda e, f, i: None, [root], SINCE_NOW, 0.0, 0)
    assert not emulation.stream_start(s)  # never scheduled
    emulation.stream_release(s)
    emulation.refuse.add(os.path.dirname(root))
    s = emulation.stream_create(lambda e, f, i: None, [root], SINCE_NOW, 0.0, 0)
    emulation.stream_set_dispatch_queue(s, emulation.queue_create("t"))
    assert not emulation.stream_start(s)
    emulation.stream_release(s)
    assert emulation.stream_create(lambda e, f, i: None, ["relative"], SINCE_NOW, 0, 0) is None
    with pytest.raises(ValueError, match="unknown injection"):
        emulation.inject("flood")


# ------------------------------------------------------------------ the driving logic


def read_all(b: FSEventsBackend) -> Callable[[], list[Observation]]:
    return lambda: list(b.read())


def test_the_probe_with_the_emulation_says_available(root: str) -> None:
    probe = EmulatedFSEvents.probe(root)
    assert (probe.backend, probe.available) == ("fsevents", True)
    assert EmulatedFSEvents.name == "fsevents"


def test_one_stream_over_every_root_replaced_from_the_latest_id(tmp_path: Path) -> None:
    a, b_, c = (str(tmp_path / n) for n in "abc")
    for p in (a, b_, c):
        os.mkdir(p)
    cls = emulated()
    system = cls.system
    assert isinstance(system, Recording)
    b = cls()
    try:
        ha = b.watch(a, recursive=True)
        assert b.watch(a, recursive=True) == ha
        assert b.stream_paths == (a,)
        Path(a, "x").write_text("x")
        until(read_all(b), lambda got: bool(got))
        seen = b.latest_id
        assert seen is not None
        hb = b.watch(b_, recursive=True)
        assert b.stream_paths == (a, b_)
        assert system.since == [SINCE_NOW, seen]
        assert system.live == 1  # the old stream is gone
        b.unwatch(ha)
        assert b.stream_paths == (b_,)
        assert system.since[-1] == b.latest_id
        b.unwatch(hb)
        assert b.stream_paths == ()
        assert system.live == 0
        b.watch(c, recursive=True)  # after a time without a stream: from the last id seen
        assert system.since[-1] == seen or system.since[-1] == b.latest_id
    finally:
        b.close()
    assert system.live == 0


def test_no_change_is_lost_while_the_stream_is_replaced(tmp_path: Path) -> None:
    """Changes go on in one root while others are added and removed: each of them is
    delivered, since each new stream begins, from the latest event id seen, before
    the old one is flushed and stopped."""
    busy = str(tmp_path / "busy")
    os.mkdir(busy)
    others = [str(tmp_path / f"o{n}") for n in range(8)]
    for p in others:
        os.mkdir(p)
    stop = threading.Event()
    made: list[str] = []

    def write() -> None:
        n = 0
        while not stop.is_set():
            name = os.path.join(busy, f"f{n}")
            Path(name).write_text("x")
            made.append(name)
            n += 1
            time.sleep(0.001)

    cls = emulated(latency=0.2)  # the old stream always holds a window when replaced
    system = cls.system
    assert isinstance(system, Recording)
    b = cls()
    try:
        b.watch(busy, recursive=True)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            handles = []
            for p in others:
                handles.append(b.watch(p, recursive=True))
                time.sleep(0.02)
            for h in handles:
                b.unwatch(h)
                time.sleep(0.02)
        finally:
            stop.set()
            writer.join()
        until(read_all(b), lambda _: set(made) <= set(system.delivered), timeout=10)
    finally:
        b.close()
    assert system.created == 1 + 2 * len(others)
    assert len(made) > 50
    assert set(made) <= set(system.delivered)


def test_a_drop_is_a_rescan_through_the_watcher(root: str) -> None:
    cls = emulated()
    with Watcher(root, backend=cls) as w:
        mirror = Mirror.of(root)
        Path(root, "a").write_text("x")
        converge(w, mirror, settle=0.3)
        cls.system.inject("drop")
        Path(root, "b").write_text("x")
        events = converge(w, mirror, settle=0.5)
        assert (Change.RESCAN, root) in [(e.kind, e.path) for e in events]
        assert Path(root, "b").exists()


def test_a_queue_overflow_is_a_rescan_that_finds_everything(root: str) -> None:
    cls = emulated(latency=0.3, queue_bound=3)
    with Watcher(root, backend=cls) as w:
        mirror = Mirror.of(root)
        for n in range(30):
            Path(root, f"f{n}").write_text("x")
        events = converge(w, mirror, settle=0.5)
    assert sum(e.kind is Change.CREATED for e in events) == 30
    assert Change.RESCAN in [e.kind for e in events]


def test_a_coalesced_create_and_delete_on_one_path_reports_nothing_for_it(root: str) -> None:
    cls = emulated(latency=0.5)
    with Watcher(root, backend=cls) as w:
        mirror = Mirror.of(root)
        os.mkdir(os.path.join(root, "kick"))  # delivered at once; the next go in one window
        converge(w, mirror, settle=0.0)
        t = os.path.join(root, "t")
        Path(t).write_text("1")
        os.remove(t)
        os.mkdir(t)  # and a directory made in its place, then removed too
        os.rmdir(t)
        Path(root, "kept").write_text("1")
        events = converge(w, mirror, settle=0.6)
    assert [(e.kind, os.path.basename(e.path)) for e in events] == [(Change.CREATED, "kept")]
    assert isinstance(cls.system, Recording)
    assert cls.system.delivered.count(t) == 1  # one event for all five changes


@pytest.mark.parametrize("how", ["renamed", "deleted"])
def test_root_changed_ends_a_root_that_is_gone(tmp_path: Path, how: str) -> None:
    root = str(tmp_path / "root")
    os.mkdir(root)
    Path(root, "f").write_text("x")
    with Watcher(root, backend=emulated()) as w:
        if how == "renamed":
            os.rename(root, str(tmp_path / "elsewhere"))
        else:
            shutil.rmtree(root)
        events = collect(w, lambda ev: False, timeout=0, settle=1.0)
        assert (Change.DELETED, root) in [(e.kind, e.path) for e in events]
        assert w.get(timeout=5) is None  # its only root gone: the stream ends


@pytest.mark.parametrize("kind", ["garble-types", "garble-lengths", "garble-entries"])
def test_a_garbled_callback_is_a_warning_and_a_rescan(root: str, kind: str) -> None:
    cls = emulated()
    b = cls()
    try:
        h = b.watch(root, recursive=True)
        cls.system.inject(kind)
        with pytest.warns(CrosswatchWarning, match="could not be read.*every root is rescanned"):
            got = until(read_all(b), lambda obs: SubtreeLost(h) in obs)
        assert SubtreeLost(h) in got
        Path(root, "after").write_text("x")  # and the stream goes on
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once
            got = until(read_all(b), bool)
        assert got == [DirDirty(h, "")]  # created and written: its directory is diffed
    finally:
        b.close()


def test_a_garbled_callback_through_the_watcher_is_one_warning_and_converges(root: str) -> None:
    cls = emulated()
    with Watcher(root, backend=cls) as w:
        mirror = Mirror.of(root)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cls.system.inject("garble-types")
            Path(root, "f").write_text("x")
            events = converge(w, mirror, settle=0.5)
    said = [str(c.message) for c in caught if issubclass(c.category, CrosswatchWarning)]
    assert len(said) == 1
    assert "could not be read" in said[0]
    assert Change.RESCAN in [e.kind for e in events]


def test_an_event_under_no_root_is_ignored_with_a_warning(root: str) -> None:
    cls = emulated()
    b = cls()
    try:
        b.watch(root, recursive=True)
        cls.system.inject("stray")
        with pytest.warns(CrosswatchWarning, match=f"{STRAY}, which is under no root"):
            until(read_all(b), lambda obs: False, timeout=1.0)
    finally:
        b.close()


def test_a_volume_fsevents_cannot_watch_is_a_clear_error(tmp_path: Path) -> None:
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    os.mkdir(good)
    os.mkdir(bad)
    cls = emulated()
    cls.system.refuse.add(bad)
    b = cls()
    try:
        h = b.watch(good, recursive=True)
        with pytest.raises(StreamError, match=r"FSEventStreamStart failed.*backend='kqueue'"):
            b.watch(bad, recursive=True)
        assert b.stream_paths == (good,)  # the stream over the others goes on
        Path(good, "f").write_text("x")
        got = until(read_all(b), bool)
        assert [o.handle for o in got[:1]] == [h]  # type: ignore[union-attr]
    finally:
        b.close()
    with pytest.raises(WatchError, match="FSEvents cannot watch a volume there"):
        Watcher(bad, backend=cls).start()


def test_close_stops_the_stream_and_leaves_no_thread_or_descriptor(root: str) -> None:
    fds, threads = open_fds(), set(threading.enumerate())
    cls = emulated()
    b = cls()
    b.watch(root, recursive=True)
    Path(root, "f").write_text("x")
    assert set(threading.enumerate()) != threads  # the stream's thread
    b.close()
    b.close()
    assert cls.system.live == 0
    assert b.fileno() is None
    assert open_fds() == fds
    assert set(threading.enumerate()) == threads


def test_before_macos_10_13_the_stream_asks_no_extended_data(root: str) -> None:
    cls = emulated(extended=False)
    b = cls()
    try:
        assert not b._stream.flags & _flags.kFSEventStreamCreateFlagUseExtendedData
    finally:
        b.close()
    Path(root, "a").write_text("x")
    os.utime(os.path.join(root, "a"), (0, 1_000_000))  # not written while it is first listed
    with Watcher(root, backend=cls) as w:
        mirror = Mirror.of(root)
        os.rename(os.path.join(root, "a"), os.path.join(root, "b"))
        events = converge(w, mirror, settle=0.5)
    assert [(e.kind, os.path.basename(e.path)) for e in events] == [(Change.MOVED, "b")]


def test_the_latency_is_a_backend_option(tmp_path: Path) -> None:
    with Watcher(tmp_path, backend=EmulatedFSEvents,
                 backend_options={"fsevents": {"latency": 0.25}}) as w:
        backend = w.backend("fsevents")
        assert isinstance(backend, EmulatedFSEvents)
        assert backend.latency == 0.25
    refused = Watcher(tmp_path, backend=EmulatedFSEvents,
                      backend_options={"fsevents": {"latency": -1}})
    with pytest.raises(ConfigError, match="fsevents latency must be 0 or more seconds"):
        refused.start()
    refused.close()
    typo = Watcher(tmp_path, backend=EmulatedFSEvents,
                   backend_options={"fsevents": {"latncy": 1}})
    with pytest.raises(ConfigError, match="did you mean 'latency'"):
        typo.start()
    typo.close()

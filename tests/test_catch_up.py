"""Catch-up in pieces: what a rescan or a big read reports waits for a full consumer.

The consumer's bounds (``max_queue``, ``max_queue_bytes``) must hold for catch-up
events too: a rescan of a directory of 200,000 new files is 200,000 events. The
engine stops between two entries once ``full()`` says the consumer has all it can
take, and goes on from there when asked again; what the cache goes through is the
same as if it had run at once, so the mirror converges and ``rescan`` still comes
after every catch-up event.

Each case changes a cached tree behind the engine's back, then has it rescan (an
overflow) or apply one big read, with a consumer that takes at most ``BOUND``
events a time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crosswatch import Change, Event, Watcher, WatchLimitError
from crosswatch._engine import Engine
from crosswatch._feed import feed
from crosswatch.backend import Action, EntryChange, Observation, SubtreeLost
from crosswatch.testing import Mirror, ScriptedBackend, collect, linux_only, snapshot, tmpfs

BOUND = 25
#: The most a piece can add past the bound: one entry's event (or one
#: observation's) once ``full()`` said no for the last time.
PIECE = 1


def _files(path: Path, n: int, prefix: str = "f") -> None:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (path / f"{prefix}{i}").write_text("x")


def _created(root: Path) -> None:
    _files(root / "big", 300, "new")


def _new_dir(root: Path) -> None:
    _files(root / "fresh", 300)


def _new_tree(root: Path) -> None:
    for a in range(3):
        for b in range(3):
            _files(root / "tree" / f"a{a}" / f"b{b}", 40)


def _modified(root: Path) -> None:
    later = time.time_ns() + 10**12  # past anything the cache may take as unchanged
    for i in range(300):
        os.utime(root / "big" / f"f{i}", ns=(later, later))


def _deleted(root: Path) -> None:
    for i in range(300):
        (root / "big" / f"f{i}").unlink()


def _moved(root: Path) -> None:
    for i in range(150):
        (root / "big" / f"f{i}").rename(root / "other" / f"g{i}")


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[Path], None]
    kind: Change
    """What most of the catch-up is."""


CASES = [
    Case("files created in a cached directory", _created, Change.CREATED),
    Case("a new directory of files", _new_dir, Change.CREATED),
    Case("a new tree of directories", _new_tree, Change.CREATED),
    Case("files modified", _modified, Change.MODIFIED),
    Case("files deleted", _deleted, Change.DELETED),
    Case("files moved to another directory", _moved, Change.MOVED),
]


def _engine(tmp_path: Path) -> tuple[Path, Engine, ScriptedBackend, Mirror]:
    root = tmp_path / "root"
    _files(root / "big", 300)
    (root / "other").mkdir()
    engine = Engine(pair_wait=0.0)
    backend = ScriptedBackend()
    engine.add_root(str(root), backend)
    return root, engine, backend, Mirror.of(str(root))


def _consume(
    engine: Engine, backend: ScriptedBackend, first: list[Observation]
) -> list[list[Event]]:
    """Feed ``first``, then take at most what the bound allows until the work is done."""

    def full() -> bool:
        return len(engine.out) >= BOUND

    pieces = []
    feed(engine, backend, first, full=full)
    while engine.busy() or engine.next_deadline() is not None:
        pieces.append(engine.take())
        assert len(pieces) < 10_000, "the work never ends"
        if not engine.busy():
            engine.expire(float("inf"), full=full)
        else:
            feed(engine, backend, full=full)
    pieces.append(engine.take())
    return [p for p in pieces if p]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_rescan_reports_in_pieces_within_the_bound(tmp_path: Path, case: Case) -> None:
    root, engine, backend, mirror = _engine(tmp_path)
    try:
        case.change(root)
        pieces = _consume(engine, backend, [SubtreeLost(None)])
        events = [e for piece in pieces for e in piece]
        mirror.apply(events)
        assert mirror.entries == snapshot(str(root)), mirror.diff(snapshot(str(root)))
        assert sum(e.kind is case.kind for e in events) >= 100
        assert max(len(p) for p in pieces) <= BOUND + PIECE
        assert len(pieces) >= sum(e.kind is case.kind for e in events) // (BOUND + PIECE)
        assert events[-1].kind is Change.RESCAN  # after every catch-up event
        assert sum(e.kind is Change.RESCAN for e in events) == 1
    finally:
        backend.close()


def test_one_big_read_is_applied_in_pieces(tmp_path: Path) -> None:
    root, engine, backend, mirror = _engine(tmp_path)
    try:
        handle = backend.handle_of(str(root / "big"))
        assert handle is not None
        _files(root / "big", 200, "new")
        read = [EntryChange(handle, f"new{i}", Action.CREATED, False) for i in range(200)]
        pieces = _consume(engine, backend, list(read))
        mirror.apply(e for piece in pieces for e in piece)
        assert mirror.entries == snapshot(str(root)), mirror.diff(snapshot(str(root)))
        assert max(len(p) for p in pieces) <= BOUND + PIECE
        assert len(pieces) >= 200 // (BOUND + PIECE)
    finally:
        backend.close()


def test_a_rescan_paused_for_room_goes_on_before_later_observations(tmp_path: Path) -> None:
    """What is read while a rescan waits for room applies to the cache it leaves."""
    root, engine, backend, mirror = _engine(tmp_path)
    full_now = [True]
    try:
        _created(root)

        def full() -> bool:
            return full_now[0] and len(engine.out) >= BOUND

        feed(engine, backend, [SubtreeLost(None)], full=full)
        assert engine.busy()
        first = engine.take()
        assert len(first) <= BOUND + PIECE
        # Meanwhile a file the rescan has still to report is removed, and its
        # deletion is read: it must come after its creation.
        (root / "big" / "new299").unlink()
        handle = backend.handle_of(str(root / "big"))
        full_now[0] = False
        feed(engine, backend, [EntryChange(handle, "new299", Action.DELETED, False)])
        engine.expire(float("inf"))
        events = first + engine.take()
        mirror.apply(events)
        assert mirror.entries == snapshot(str(root)), mirror.diff(snapshot(str(root)))
    finally:
        backend.close()


@pytest.fixture
def shm() -> Iterator[Path]:
    """A fresh directory on tmpfs when there is one (a flood of files is fast there)."""
    path = tempfile.mkdtemp(prefix="cw-flood-", dir=tmpfs())
    try:
        yield Path(os.path.realpath(path))  # as the OS names it (macOS: /private/var)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _queued_events() -> int:
    """The kernel's inotify queue length (events), or a default where unknown."""
    try:
        return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        return 16_384


@linux_only("overflows the kernel's inotify queue (max_queued_events)")
def test_a_watcher_overflowed_by_a_flood_stays_within_max_queue(shm: Path) -> None:
    """A real kernel queue overflows while the consumer is away; the rescan's
    catch-up then reaches the consumer within ``max_queue``, and it knows every file."""
    files = _queued_events() + 2_000  # at least one event each: the queue overflows
    with Watcher(str(shm), max_queue=200, max_batch=10_000) as w:
        d = shm / "d"
        d.mkdir()
        for i in range(files):
            os.close(os.open(d / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o644))
        known: set[str] = set()
        rescans = 0
        while len(known) < files:
            batch = w.get(timeout=60)
            assert batch, f"stalled with {len(known)} of {files} known"
            known.update(e.path for e in batch if e.kind is Change.CREATED and not e.is_dir)
            rescans += sum(e.kind is Change.RESCAN for e in batch)
        assert rescans >= 1  # the kernel's queue did overflow
        assert w.backlog.peak_events <= w.max_queue + PIECE


class Refusing(ScriptedBackend):
    """Refuses to watch ``big``, as an OS out of watches would: it is polled instead."""

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        if os.path.basename(path) == "big":
            raise WatchLimitError(f"no more watches for {path!r}")
        return super().watch(path, recursive=recursive)


def test_a_fallback_poll_reports_in_pieces_within_the_bound(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _files(root / "big", 10)
    engine = Engine(pair_wait=0.0, fallback_interval=0.0)
    backend = Refusing()
    try:
        engine.add_root(str(root), backend)
        mirror = Mirror.of(str(root))
        _created(root)

        def full() -> bool:
            return len(engine.out) >= BOUND

        pieces = []
        engine.expire(float("inf"), full=full)
        while engine.busy():
            pieces.append(engine.take())
            assert len(pieces) < 10_000, "the work never ends"
            engine.expire(float("inf"), full=full)
        pieces.append(engine.take())
        events = [e for piece in pieces for e in piece]
        mirror.apply(events)
        assert mirror.entries == snapshot(str(root)), mirror.diff(snapshot(str(root)))
        assert sum(e.kind is Change.CREATED for e in events) == 300
        assert max(len(p) for p in pieces) <= BOUND + PIECE
    finally:
        backend.close()


class RefusingTheRoot(ScriptedBackend):
    """Refuses the root itself, as kqueue does a directory of more files than it may open."""

    top = ""

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        if path == self.top:
            raise WatchLimitError(f"too many files to open in {path!r}")
        return super().watch(path, recursive=recursive)


def test_a_root_past_the_limit_is_polled_and_its_subdirectories_watched(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    refuser = type("Refuser", (RefusingTheRoot,), {"top": str(root)})
    warnings: list[str] = []
    with Watcher(str(root), backend=refuser, poll_interval=0.05,
                 on_warning=warnings.append) as w:
        scripted = w.backend("scripted")
        assert isinstance(scripted, ScriptedBackend)
        assert scripted.handle_of(str(root / "sub")) is not None  # still watched
        assert scripted.handle_of(str(root)) is None
        (root / "new").write_text("x")  # seen by the poll of the root alone
        events = collect(w, lambda ev: any(e.path.endswith("new") for e in ev), timeout=30)
    assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(root / "new"))]
    assert len(warnings) == 1
    assert "too many files to open" in warnings[0]
    assert "polled every 0.05 s instead" in warnings[0]

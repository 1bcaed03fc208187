"""Feeding the engine: the reads made for its work, and what happens past their bound.

The engine's work on new directories waits for the backend's queue to run dry. A
queue that never does (a storm) must not keep the watcher from delivering: past
``READS_PER_BATCH`` reads the work is done without waiting. Renames into a new
directory whose ``moved_from`` has not been read by then come out as created and
deleted instead of moved, and the mirror still converges.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from crosswatch._engine import Engine
from crosswatch._feed import READS_PER_BATCH, feed
from crosswatch.backend import Action, EntryChange, Observation
from crosswatch.testing import Mirror, ScriptedBackend, snapshot


class Endless(ScriptedBackend):
    """Every read brings one more write to ``noise``: its queue never runs dry.

    ``late`` is queued behind the read numbered ``at``, as a kernel queues what a
    writer did while the engine was busy.
    """

    def __init__(self, at: int, late: Sequence[Observation]) -> None:
        super().__init__()
        self.reads = 0
        self.at, self.late = at, list(late)
        self.noise: EntryChange | None = None

    def read(self) -> Sequence[Observation]:
        self.reads += 1
        out = list(super().read())
        if self.reads == self.at:
            out += self.late
        if self.noise is not None:
            out.append(self.noise)
        return out


def _setup(tmp_path: Path, at: int) -> tuple[str, Engine, Endless, Mirror]:
    root = str(tmp_path / "root")
    os.mkdir(root)
    (tmp_path / "root" / "noise").write_text("x")
    (tmp_path / "root" / "src").write_text("x")
    os.utime(tmp_path / "root" / "src", (0, 1_000_000))
    engine = Engine(pair_wait=0.0)
    backend = Endless(at, [])
    engine.add_root(root, backend)
    handle = backend.handle_of(root)
    assert handle is not None
    backend.noise = EntryChange(handle, "noise", Action.MODIFIED, False)
    backend.late = [EntryChange(handle, "src", Action.MOVED_FROM, False, 1)]
    return root, engine, backend, Mirror.of(root)


def _created_and_moved(root: str, engine: Engine, backend: Endless, mirror: Mirror) -> list[str]:
    os.mkdir(os.path.join(root, "d"))
    os.rename(os.path.join(root, "src"), os.path.join(root, "d", "x"))
    handle = backend.handle_of(root)
    feed(engine, backend, [EntryChange(handle, "d", Action.CREATED, True)])
    reads = backend.reads
    backend.noise = None
    feed(engine, backend)  # the next batch: what is left in the queue
    engine.expire(float("inf"))
    events = engine.take()
    mirror.apply(events)
    assert mirror.entries == snapshot(root), mirror.diff(snapshot(root))
    assert reads == READS_PER_BATCH  # the first batch stopped reading at the bound
    return [
        f"{e.kind.value} {os.path.relpath(e.src_path, root) + ' -> ' if e.src_path else ''}"
        f"{os.path.relpath(e.path, root)}"
        for e in events
        if not e.path.endswith("noise")
    ]


@pytest.mark.parametrize("at", [3, READS_PER_BATCH - 1])
def test_a_rename_read_within_the_bound_is_one_move(tmp_path: Path, at: int) -> None:
    root, engine, backend, mirror = _setup(tmp_path, at)
    try:
        events = _created_and_moved(root, engine, backend, mirror)
        assert events == ["created d", "moved src -> d/x"]
    finally:
        backend.close()


def test_past_the_bound_the_listing_is_placed_and_the_mirror_converges(tmp_path: Path) -> None:
    root, engine, backend, mirror = _setup(tmp_path, READS_PER_BATCH + 1)
    try:
        assert _created_and_moved(root, engine, backend, mirror) == [
            "created d",
            "created d/x",
            "deleted src",
        ]
    finally:
        backend.close()


def test_work_left_by_a_full_consumer_is_resumed_piece_by_piece(tmp_path: Path) -> None:
    """Listings stopped by ``full`` are not all placed by the next read's ``apply``."""
    root = str(tmp_path / "root")
    os.mkdir(root)
    engine = Engine(pair_wait=0.0)
    backend = ScriptedBackend()
    engine.add_root(root, backend)
    handle = backend.handle_of(root)
    mirror = Mirror.of(root)
    for d in range(10):
        os.mkdir(os.path.join(root, f"d{d}"))
        for f in range(50):
            Path(root, f"d{d}", f"f{f}").write_text("x")
    Path(root, "noise").write_text("x")
    made = [EntryChange(handle, f"d{d}", Action.CREATED, True) for d in range(10)]

    def full() -> bool:
        return len(engine.out) >= 60

    try:
        sizes = []
        feed(engine, backend, made, full=full)
        while engine.busy():
            events = engine.take()
            sizes.append(len(events))
            mirror.apply(events)
            backend.push(EntryChange(handle, "noise", Action.MODIFIED, False))
            feed(engine, backend, full=full)
        mirror.apply(engine.take())
        assert mirror.entries == snapshot(root), mirror.diff(snapshot(root))
        assert len(sizes) >= 8  # in pieces: 510 events at most 61 at a time
        assert max(sizes) <= 60 + 1  # the bound, and one entry past it
    finally:
        backend.close()

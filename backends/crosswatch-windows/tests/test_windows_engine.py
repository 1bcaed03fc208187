"""The translator's observations, applied by the real engine to a real tree.

The records are what ReadDirectoryChangesW documents for each operation (a rename
in one directory: old and new name; a move to another one: removed and added),
built byte for byte; the operations themselves are made on this machine's disk.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest
from crosswatch_windows import _abi
from test_windows_abi import ADDED, NEW, OLD, REMOVED, chain, extended, plain

from crosswatch import Change, Event
from crosswatch._engine import Engine
from crosswatch._feed import feed
from crosswatch.backend import Backend, Capabilities, Observation, Options, Probe
from crosswatch.testing import Mirror, snapshot


class Recursive(Backend):
    """One handle per root, as the Windows backend has; observations come from the test."""

    name = "recursive-test"
    capabilities = Capabilities(recursive=True)

    @classmethod
    def probe(cls, path: str) -> Probe:
        return Probe(cls.name, True)

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        return "root"

    def unwatch(self, handle: Hashable) -> None:
        pass

    def read(self) -> Sequence[Observation]:
        return []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("a", "b", "d", "a/deep"):
        (root / d).mkdir(parents=True)
    for f in ("a/f", "d/old", "a/deep/g"):
        (root / f).write_text(f)
    return root


def run(root: Path, buffers: list[tuple[bytes, bool]], change: object) -> list[Event]:
    """Scan ``root``, make the change, feed the buffers' observations; the events."""
    engine = Engine(pair_wait=0.0)
    backend = Recursive(Options())
    engine.add_root(str(root), backend)
    mirror = Mirror.of(str(root))
    assert callable(change)
    change()
    translator = _abi.Translator()
    for data, ext in buffers:
        feed(engine, backend, translator.completed("root", data, extended=ext))
    engine.expire(float("inf"))
    events = engine.take()
    mirror.apply(events)
    assert mirror.entries == snapshot(str(root)), mirror.diff(snapshot(str(root)))
    return events


def moves(events: list[Event], root: Path) -> list[tuple[str, str]]:
    return [
        (os.path.relpath(e.src_path or "", root), os.path.relpath(e.path, root))
        for e in events
        if e.kind is Change.MOVED
    ]


def test_a_rename_in_one_buffer_is_a_move(tree: Path) -> None:
    buf = chain(plain(OLD, "d\\old"), plain(NEW, "d\\new", last=True))
    events = run(tree, [(buf, False)], lambda: os.rename(tree / "d/old", tree / "d/new"))
    assert moves(events, tree) == [("d/old", "d/new")]


def test_a_rename_split_across_two_buffers_is_one_move(tree: Path) -> None:
    buffers = [(plain(OLD, "d\\old", last=True), False), (plain(NEW, "d\\new", last=True), False)]
    events = run(tree, buffers, lambda: os.rename(tree / "d/old", tree / "d/new"))
    assert moves(events, tree) == [("d/old", "d/new")]


def test_a_move_to_another_directory_pairs_by_file_id(tree: Path) -> None:
    def change() -> None:
        os.rename(tree / "a/deep", tree / "b/deep")

    ino = os.stat(tree / "a/deep").st_ino
    buf = chain(
        extended(REMOVED, "a\\deep", file_id=ino, attributes=0x10),
        extended(ADDED, "b\\deep", file_id=ino, attributes=0x10, last=True),
    )
    events = run(tree, [(buf, True)], change)
    assert moves(events, tree) == [("a/deep", "b/deep")]


def test_an_old_name_whose_new_one_never_comes_is_settled_from_the_disk(tree: Path) -> None:
    def change() -> None:
        os.rename(tree / "d/old", tree.parent / "outside")

    events = run(tree, [(plain(OLD, "d\\old", last=True), False)], change)
    assert [(e.kind, os.path.relpath(e.path, tree)) for e in events] == [
        (Change.DELETED, "d/old")
    ]


def test_a_zero_byte_result_rescans_and_finds_what_was_lost(tree: Path) -> None:
    def change() -> None:
        (tree / "b/new").write_text("x")
        os.remove(tree / "a/f")

    events = run(tree, [(b"", False)], change)
    assert {(e.kind, os.path.relpath(e.path, tree)) for e in events} >= {
        (Change.CREATED, "b/new"),
        (Change.DELETED, "a/f"),
    }
    assert events[-1].kind is Change.RESCAN

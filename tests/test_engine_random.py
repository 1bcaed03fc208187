"""Random operations replayed into the engine with every batching, deterministically.

The scripted backend reports each operation as inotify would, only for directories
watched at that moment; the engine reads the reports every ``k`` operations, so
the disk is up to ``k`` operations ahead of what it reads (stale paths, renamed
parents, entries already gone). A strict mirror fed the events must end equal to
the disk, with no duplicate, out-of-order or unknown-entry event on the way.
"""

from __future__ import annotations

import os
import random
from collections.abc import Hashable, Sequence

import pytest

from crosswatch._engine import Engine
from crosswatch._feed import feed
from crosswatch.backend import Observation
from crosswatch.testing import FileOps, Mirror, ScriptedBackend, snapshot
from crosswatch.testing._operations import random_operation


def _replay(
    root: str,
    backend: ScriptedBackend,
    ops: FileOps,
    seed: int,
    batch: int,
    *,
    mirror: Mirror | None = None,
) -> None:
    """150 random operations, read by the engine every ``batch`` of them; then the
    strict mirror fed every event (``mirror``, else one of the tree now) must equal
    the disk."""
    engine = Engine(pair_wait=0.0)
    engine.add_root(root, backend)
    ops.attach(backend)
    if mirror is None:
        mirror = Mirror.of(root)
    rng = random.Random(seed)

    def read(observations: list[Observation]) -> None:
        feed(engine, backend, observations)
        engine.expire(float("inf"))
        mirror.apply(engine.take())

    try:
        for n in range(1, 151):
            random_operation(rng, root, ops)
            if n % batch == 0:
                read(list(backend.read()))
        more = list(backend.read())
        while True:  # until nothing is left unread (a racing backend may queue more)
            read(more)
            more = list(backend.read())
            if not more:
                break
    finally:
        backend.close()
    disk = snapshot(root)
    assert mirror.entries == disk, mirror.diff(disk)


@pytest.mark.parametrize("batch", [1, 3, 7, 20, 150])
@pytest.mark.parametrize("seed", range(1, 61))
def test_random_operations_any_batching(tmp_path: object, seed: int, batch: int) -> None:
    root = os.path.join(str(tmp_path), "root")
    os.mkdir(root)
    _replay(root, ScriptedBackend(), FileOps(), seed, batch)


class _RacingBackend(ScriptedBackend):
    """Runs up to two random operations each time a directory is watched: a writer
    racing the engine between watching a new directory and listing it."""

    def __init__(self, root: str, ops: FileOps, rng: random.Random) -> None:
        super().__init__()
        self.root, self.ops, self.rng = root, ops, rng
        self.races = 0
        self.racing = False  # not during the first reading: the mirror starts from it

    def read(self) -> Sequence[Observation]:
        self.racing = True
        return super().read()

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        handle = super().watch(path, recursive=recursive)
        for _ in range(self.rng.randrange(3) if self.racing else 0):
            self.races += 1
            random_operation(self.rng, self.root, self.ops)
        return handle


@pytest.mark.parametrize("batch", [1, 3, 7, 20])
@pytest.mark.parametrize("seed", range(1, 41))
def test_random_operations_racing_new_directory_listings(
    tmp_path: object, seed: int, batch: int
) -> None:
    root = os.path.join(str(tmp_path), "root")
    os.mkdir(root)
    ops = FileOps()
    backend = _RacingBackend(root, ops, random.Random(-seed))
    _replay(root, backend, ops, seed, batch)
    assert backend.races > 0

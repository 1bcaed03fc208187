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

import pytest

from crosswatch._engine import Engine
from crosswatch.testing import FileOps, Mirror, ScriptedBackend, snapshot
from crosswatch.testing._conformance import random_operation


@pytest.mark.parametrize("batch", [1, 3, 7, 20, 150])
@pytest.mark.parametrize("seed", range(1, 61))
def test_random_operations_any_batching(tmp_path: object, seed: int, batch: int) -> None:
    root = os.path.join(str(tmp_path), "root")
    os.mkdir(root)
    backend = ScriptedBackend()
    engine = Engine(pair_wait=0.0)
    engine.add_root(root, backend)
    ops = FileOps()
    ops.attach(backend)
    mirror = Mirror.of(root)
    rng = random.Random(seed)
    try:
        for n in range(1, 151):
            random_operation(rng, root, ops)
            if n % batch == 0:
                engine.apply(backend, backend.read())
                engine.expire(float("inf"))
                mirror.apply(engine.take())
        engine.apply(backend, backend.read())
        engine.expire(float("inf"))
        mirror.apply(engine.take())
    finally:
        backend.close()
    disk = snapshot(root)
    assert mirror.entries == disk, mirror.diff(disk)

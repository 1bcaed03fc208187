"""Convergence under load, with fanotify: ten writers, and a flood beside or inside."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crosswatch import Change, Watcher
from crosswatch.testing import Mirror, converge
from crosswatch.testing._storm import reading, storm

CREATOR = (
    "import os, sys\n"
    "for i in range(int(sys.argv[2])):\n"
    "    open(os.path.join(sys.argv[1], f'f{i}'), 'w').close()\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("paused", [False, True], ids=["full-speed", "reader-paused"])
def test_a_mirror_converges_under_a_storm(shm: str, seed: int, paused: bool) -> None:
    """Ten processes create, write, rename and delete at random; the mirror ends true.

    At full speed, a flood of 30,000 files is made beside the root on the same file
    system, which the filesystem mark sees and the backend drops. Paused, the flood
    goes to a second root, the consumer reads nothing while the storm runs and
    ``max_queue`` is small: the kernel queue overflows and the engine rescans.
    """
    flood_dir = os.path.join(os.path.dirname(shm), "flood")
    os.mkdir(flood_dir)
    roots = (shm, flood_dir) if paused else (shm,)
    with Watcher(*roots, backend="fanotify", max_queue=50 if paused else 100_000) as w:
        mirror = Mirror.of(*roots)
        with reading(w, paused=paused) as consumed:
            flood = subprocess.Popen([sys.executable, "-c", CREATOR, flood_dir, "30000"])
            try:
                storm(shm, processes=10, seconds=3.0, seed=seed)
                assert flood.wait(timeout=300) == 0
            finally:
                flood.kill()
                flood.wait()
        mirror.apply(consumed)
        rest = converge(w, mirror, timeout=60)
    events = consumed + rest
    if paused:
        assert Change.RESCAN in {e.kind for e in rest}
    else:
        assert not [e for e in events if e.path.startswith(flood_dir)]

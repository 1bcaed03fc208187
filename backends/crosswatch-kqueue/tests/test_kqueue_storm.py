"""Convergence under load: the kqueue backend on the Linux emulation."""

from __future__ import annotations

import sys

import pytest
from crosswatch_kqueue import KqueueBackend
from crosswatch_kqueue.testing import KqueueEmulation

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the emulation needs inotify"
)


class StormKqueue(KqueueBackend):
    system = KqueueEmulation()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_emulated_kqueue_mirror_converges_under_a_storm(fast_root: str, seed: int) -> None:
    """Four processes create, write, rename and delete files and directories at random."""
    with Watcher(fast_root, backend=StormKqueue, poll_interval=0.05) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, timeout=60)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"
    assert StormKqueue.system.opened == 0  # every descriptor closed with the watcher

"""Convergence under load, with the FSEvents backend over its Linux emulation."""

from __future__ import annotations

import sys

import pytest
from crosswatch_fsevents.testing import EmulatedFSEvents

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the emulation stands on inotify (Linux)")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_emulated_fsevents_mirror_converges_under_a_storm(fast_root: str, seed: int) -> None:
    """Four processes create, write, rename and delete files and directories at random,
    while the stream coalesces each latency's changes per path."""
    with Watcher(fast_root, backend=EmulatedFSEvents) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, timeout=60, settle=0.5)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"

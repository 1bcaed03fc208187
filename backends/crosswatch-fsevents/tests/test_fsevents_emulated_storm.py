"""Convergence under load, with the FSEvents backend over its Linux emulation."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import pytest
from crosswatch_fsevents.testing import EmulatedFSEvents

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the emulation stands on inotify (Linux)")


@pytest.fixture
def fast_root() -> Iterator[str]:
    """A directory on tmpfs when there is one (the disk is slow for storms)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        yield root


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

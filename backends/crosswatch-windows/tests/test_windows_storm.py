"""Convergence under load: the backend on its Linux emulation."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import pytest
from crosswatch_windows.testing import EmulatedWindows

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the emulation stands on inotify"
)


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
def test_emulated_windows_mirror_converges_under_a_storm(fast_root: str, seed: int) -> None:
    """Four processes create, write, rename and delete files and directories at random."""
    with Watcher(fast_root, backend=EmulatedWindows, poll_interval=0.05) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, timeout=60)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"

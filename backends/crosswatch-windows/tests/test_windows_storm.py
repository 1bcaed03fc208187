"""Convergence under load: the backend on its Linux emulation."""

from __future__ import annotations

import sys

import pytest
from crosswatch_windows import _emubirths
from crosswatch_windows.testing import EmulatedWindows

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the emulation stands on inotify"
)


#: Without the privilege fanotify needs, the emulation places a new directory's watch
#: late and cannot tell what lived there meanwhile: under load, rarely, an entry made
#: and removed in it goes unreported, though the engine may have listed it (Windows'
#: recursive watch would have reported both). See docs/windows.md.
WINDOWS_STORM_BLIND = pytest.mark.xfail(
    not _emubirths.available(), strict=False, raises=AssertionError,
    reason="without CAP_SYS_ADMIN the emulation cannot see what lived in a new directory "
           "before its watch (see docs/windows.md)")


@pytest.mark.slow
@WINDOWS_STORM_BLIND
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_emulated_windows_mirror_converges_under_a_storm(fast_root: str, seed: int) -> None:
    """Four processes create, write, rename and delete files and directories at random."""
    with Watcher(fast_root, backend=EmulatedWindows, poll_interval=0.05) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, timeout=60)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"

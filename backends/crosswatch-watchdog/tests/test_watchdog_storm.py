"""Convergence under load, with watchdog's native (inotify) and polling observers."""

from __future__ import annotations

import pytest
from crosswatch_watchdog import WatchdogBackend
from watchdog.observers.polling import PollingObserver

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge


class PollingWatchdogBackend(WatchdogBackend):
    observer_class = PollingObserver


@pytest.mark.slow
@pytest.mark.parametrize("backend", [WatchdogBackend, PollingWatchdogBackend],
                         ids=["inotify-observer", "polling-observer"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_watchdog_mirror_converges_under_a_storm(
    fast_root: str, seed: int, backend: type[WatchdogBackend]
) -> None:
    """Four processes create, write, rename and delete files and directories at random."""
    with Watcher(fast_root, backend=backend, poll_interval=0.05) as w:
        # watchdog's inotify observer holds each unpaired half of a rename 0.5 s
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, timeout=60, settle=1.0)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"

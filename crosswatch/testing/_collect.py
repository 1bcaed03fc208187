"""Reading a watcher's events in tests: until a condition, until convergence, to the end."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._events import Change, Event
from .._watch import Watcher
from ._mirror import Mirror, snapshot

__all__ = ["collect", "converge", "ends_with", "kinds"]


def collect(
    watcher: Watcher,
    until: Callable[[list[Event]], bool],
    *,
    timeout: float = 10.0,
    settle: float = 0.0,
) -> list[Event]:
    """Events until ``until(events)`` holds (or ``timeout``), then ``settle`` seconds more."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while not until(events) and time.monotonic() < deadline:
        batch = watcher.get(timeout=0.05)
        if batch is None:
            break
        events.extend(batch)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        batch = watcher.get(timeout=max(0.0, end - time.monotonic()))
        if batch is None:
            break
        events.extend(batch)
    return events


def converge(
    watcher: Watcher, mirror: Mirror, *, timeout: float = 15.0, settle: float = 0.3
) -> list[Event]:
    """Apply events to ``mirror`` until it equals the disk, then ``settle`` s more; check."""
    applied = 0

    def done(events: list[Event]) -> bool:
        nonlocal applied
        mirror.apply(events[applied:])
        applied = len(events)
        return mirror.entries == snapshot(*mirror.roots)

    events = collect(watcher, done, timeout=timeout)
    done(events)
    late = collect(watcher, lambda _: False, timeout=0, settle=settle)
    mirror.apply(late)
    disk = snapshot(*mirror.roots)
    assert mirror.entries == disk, mirror.diff(disk)
    return events + late


def ends_with(watcher: Watcher) -> list[tuple[Change, str]]:
    """What ``watcher`` reports until its stream ends (which it must, within 5 s)."""
    events = collect(watcher, lambda ev: False, timeout=0, settle=0.5)
    assert watcher.get(timeout=5) is None, "the watch did not end"
    return [(e.kind, e.path) for e in events]


def kinds(events: list[Event], path: str) -> list[str]:
    return [e.kind.value for e in events if e.path == path]

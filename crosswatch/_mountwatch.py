"""Mounts and unmounts at, above or inside watched directories, for Linux backends.

Neither inotify nor fanotify reports a file system mounted over a watched
directory (or one mounted inside a tree), so a backend that cares watches the
mount table: ``/proc/self/mountinfo`` turns readable with ``POLLPRI`` when it
changes. :class:`MountWatch` registers that descriptor in the backend's own epoll
set and says which mount points changed; the engine finds what that means for
the watched trees (``_engine/_mounts.py``).
"""

from __future__ import annotations

import select
import time
from typing import IO

from ._backend import MountsChanged, Observation
from ._mounts import MOUNTINFO, parse

#: After a read with data of the backend's own, the mount table is read again within
#: this many seconds: its readiness may have been used up by the same wake-up.
RECHECK = 1.0


class MountWatch:
    """The mount table, watched through the backend's epoll set.

    Inert (no descriptor, no observations) where ``/proc`` is not mounted.
    """

    def __init__(self, epoll: select.epoll) -> None:
        self._file: IO[bytes] | None = None
        self._mounts: set[tuple[int, str]] = set()  # (mount id, mount point)
        self._read_at = time.monotonic()
        self._recheck_at: float | None = None
        try:
            self._file = open(MOUNTINFO, "rb")  # noqa: SIM115 - closed by close()
            self._mounts = self._points()
            epoll.register(self._file.fileno(), select.EPOLLPRI | select.EPOLLERR)
        except OSError:
            self.close()

    def deadline(self) -> float | None:
        """When the table must be read again although no wake-up said so."""
        return self._recheck_at

    def fileno(self) -> int | None:
        return None if self._file is None else self._file.fileno()

    def observations(self, ready: list[int], own: int) -> list[Observation]:
        """What the mount table's changes are: a :class:`MountsChanged`, or nothing.

        ``ready`` is what the backend's epoll set said (with no timeout), ``own`` its
        event descriptor.

        The table's readiness is used up by the first poll that sees it, which may
        be the watcher's poll of the epoll descriptor: woken with nothing ready means
        the table changed. A change that came with events of the backend's own is
        caught by one recheck a little later (a deadline, not a period: an idle
        watcher has none).
        """
        if self._file is None:
            return []
        own_ready = own in ready
        stale = time.monotonic() - self._read_at > RECHECK
        if not ready or len(ready) > own_ready or stale:
            return self._changes()
        if self._recheck_at is None:
            self._recheck_at = self._read_at + RECHECK
        return []

    def _points(self) -> set[tuple[int, str]]:
        assert self._file is not None
        self._file.seek(0)
        return {(m.id, m.point) for m in parse(self._file.read())}

    def _changes(self) -> list[Observation]:
        self._read_at = time.monotonic()
        self._recheck_at = None
        now = self._points()
        changed = frozenset(point for _, point in now ^ self._mounts)
        self._mounts = now
        return [MountsChanged(changed)] if changed else []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

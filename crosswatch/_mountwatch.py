"""Mounts and unmounts at, above or inside watched directories, for Linux backends.

Neither inotify nor fanotify reports a file system mounted over a watched
directory (or one mounted inside a tree), so a backend that cares watches the
mount table: ``/proc/self/mountinfo`` turns readable with ``POLLPRI`` when it
changes. :class:`MountWatch` registers that descriptor in the backend's own epoll
set and turns each change into the observations the engine acts on.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Hashable, Mapping
from typing import IO

from ._backend import DirDirty, Observation, SubtreeLost
from ._mounts import MOUNTINFO, parse, within

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

    def observations(
        self, ready: list[int], own: int, paths: Callable[[], Mapping[str, Hashable]]
    ) -> list[Observation]:
        """What the mount table's changes mean for the watched directories.

        ``ready`` is what the backend's epoll set said (with no timeout), ``own`` its
        event descriptor; ``paths`` gives each watched directory's path and handle,
        called only when the table changed.

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
            return self._changes(paths)
        if self._recheck_at is None:
            self._recheck_at = self._read_at + RECHECK
        return []

    def _points(self) -> set[tuple[int, str]]:
        assert self._file is not None
        self._file.seek(0)
        return {(m.id, m.point) for m in parse(self._file.read())}

    def _changes(self, placed: Callable[[], Mapping[str, Hashable]]) -> list[Observation]:
        """Inside a watched tree, a mount point is an entry of the nearest watched
        directory above it: rescanned, its new contents are reported and watched.
        At or above the top of a watched tree (a root), the directory watched is no
        longer the one at its path (or is again): ``DirDirty`` makes the engine
        verify that path, and end the root if it leads elsewhere now.
        """
        self._read_at = time.monotonic()
        self._recheck_at = None
        now = self._points()
        changed = {point for _, point in now ^ self._mounts}
        self._mounts = now
        if not changed:
            return []
        paths = placed()
        # The mount table has resolved paths; a root's path may go through links.
        tops = [
            (path, os.path.realpath(path), handle)
            for path, handle in paths.items()
            if os.path.dirname(path) not in paths
        ]
        out: list[Observation] = []
        covered: dict[Hashable, None] = {}
        for point in sorted(changed):
            for top, real, top_handle in tops:
                if within(real, point):
                    covered[top_handle] = None
                elif within(point, real):
                    inner = top + point[len(real) :]
                    parent = os.path.dirname(inner)
                    while parent not in paths:
                        parent = os.path.dirname(parent)
                    out.append(SubtreeLost(paths[parent], os.path.relpath(inner, parent)))
        out += [DirDirty(handle, "") for handle in covered]
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

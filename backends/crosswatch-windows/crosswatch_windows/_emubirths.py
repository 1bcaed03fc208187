"""What happened in a directory before the emulation's inotify watch reached it.

Part of the Linux emulation of kernel32 (see :mod:`crosswatch_windows.testing`).
Windows' one recursive watch covers a new directory from its first instant; the
emulation's inotify watch on it is placed only when it reads that directory's
creation, a little later. An entry made and removed in between would go
unreported, though a listing of the directory (the engine's) may have seen it.

:class:`Births` closes that gap. A fanotify filesystem mark (which needs
CAP_SYS_ADMIN) names every entry created, removed or moved in every directory of
the file system. The names in directories the emulation does not watch yet are
kept, by directory, until their watch is placed: then the emulation reports as
removed those no longer there, as Windows would have. Without the privilege the
emulation goes on without it, and the gap stays open.
"""

from __future__ import annotations

import os
import sys

if sys.platform.startswith("linux"):
    from crosswatch_fanotify import _abi as fan
    from crosswatch_fanotify._sys import Kernel

    _INIT = fan.FAN_CLASS_NOTIF | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK | fan.FAN_REPORT_DFID_NAME
    _MASK = (fan.FAN_CREATE | fan.FAN_DELETE | fan.FAN_MOVED_FROM | fan.FAN_MOVED_TO
             | fan.FAN_ONDIR)
#: Names kept for directories not watched (most lie outside every root); past it,
#: all are dropped, and the gap of every directory watched later is unknown.
BOUND = 200_000


def available() -> bool:
    """Whether this process may open a fanotify group that reports names."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fd = Kernel().init(_INIT)
    except OSError:
        return False
    os.close(fd)
    return True


class Births:
    """The names touched in directories not watched yet, by directory.

    A directory is known by its fsid and file handle, as fanotify reports it.
    """

    def __init__(self) -> None:
        self._kernel: Kernel | None = None
        self._fd = -1
        try:
            if not sys.platform.startswith("linux"):
                raise OSError("fanotify is Linux's")
            self._kernel = Kernel()
            self._fd = self._kernel.init(_INIT)
        except OSError:
            self._kernel = None
        self._buf = bytearray(64 * 1024)
        self._marked: set[bytes] = set()
        self._refused: set[bytes] = set()
        self._key_of: dict[int, bytes] = {}  # inotify watch -> directory key
        self._watched: set[bytes] = set()
        self._names: dict[bytes, dict[str, bool]] = {}  # key -> name -> is a directory
        self._count = 0
        self.lost = False
        """Names were dropped (the bound, or the kernel's queue overflowed): what
        happened in a directory before its watch can no longer be told."""

    @property
    def active(self) -> bool:
        return self._fd >= 0

    def watching(self, wd: int, fd: int) -> None:
        """``wd`` (an inotify watch just placed, on the directory open at ``fd``)
        reports that directory from now on: what fanotify says of it is not kept."""
        if not self.active:
            return
        found = self._key(fd)
        if found is not None:
            self._key_of[wd] = found[0]
            self._watched.add(found[0])

    def gap(self, wd: int, fd: int) -> dict[str, bool] | None:
        """Names (and whether each was a directory) touched in the directory open at
        ``fd`` before its inotify watch ``wd`` was placed, which must have happened
        already: the events are read now, so the kernel has queued every one made
        before. ``None``: they cannot be known (names were lost)."""
        if not self.active:
            return {}
        self.drain()
        if self.lost:
            return None
        found = self._key(fd)
        if found is None:
            return {}  # a file system fanotify cannot tell of
        key, seen = found
        self._key_of[wd] = key
        self._watched.add(key)
        if not seen:
            return {}  # its file system marked only now: nothing known from before
        names = self._names.pop(key, {})
        self._count -= len(names)
        return names

    def unwatched(self, wd: int) -> None:
        """The inotify watch ``wd`` is gone: its directory's names are kept again."""
        key = self._key_of.pop(wd, None)
        if key is not None:
            self._watched.discard(key)

    def drain(self) -> None:
        """Read the events waiting, keeping the names in directories not watched."""
        while self.active:
            try:
                size = os.readv(self._fd, [self._buf])
            except BlockingIOError:
                return
            except OSError:
                self.lost = True
                return
            if not size:
                return
            for event in fan.events(bytes(memoryview(self._buf)[:size])):
                if event.mask & fan.FAN_Q_OVERFLOW:
                    self._lose()
                for _type, key, raw in event.records:
                    if raw and key not in self._watched:
                        self._keep(key, os.fsdecode(raw), bool(event.mask & fan.FAN_ONDIR))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._names.clear()
        self._key_of.clear()
        self._watched.clear()

    def _keep(self, key: bytes, name: str, is_dir: bool) -> None:
        names = self._names.setdefault(key, {})
        if name not in names:
            if self._count >= BOUND:
                self._lose()
                return
            self._count += 1
        names[name] = is_dir or names.get(name, False)

    def _lose(self) -> None:
        self.lost = True
        self._names.clear()
        self._count = 0

    def _key(self, fd: int) -> tuple[bytes, bool] | None:
        """fsid + handle of the directory open at ``fd`` (readable), its file system
        marked, and whether it was marked before; ``None`` where fanotify cannot
        tell of it."""
        assert self._kernel is not None
        try:
            fsid = self._kernel.fsid(fd)
            if fsid in self._refused:
                return None
            key = fsid + self._kernel.handle(fd)
        except OSError:
            return None
        if fsid not in self._marked:
            try:
                self._kernel.mark(self._fd, fan.FAN_MARK_ADD | fan.FAN_MARK_FILESYSTEM, _MASK, fd)
            except OSError:
                self._refused.add(fsid)
                return None
            self._marked.add(fsid)
            return key, False
        return key, True

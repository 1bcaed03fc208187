"""A backend driven by the test: observations are pushed, nothing comes from the OS.

It behaves like a per-directory kernel backend: ``watch`` returns one small integer
per directory inode (the same one for a directory watched twice), ``watch_self``
a negative one per entry watched for its own fate (counted per call), and the
engine lists a directory only after watching it. Tests either push observations by hand
(:meth:`ScriptedBackend.push`) or attach a :class:`FileOps` whose operations are
reported the way inotify reports them, for the directories watched at that moment.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Hashable, Sequence

from .._backend import (
    Action,
    Backend,
    Capabilities,
    EntryChange,
    Gone,
    Observation,
    Options,
    Probe,
)
from .._errors import WatchGoneError
from .._os import Waker


class ScriptedBackend(Backend):
    """Reports exactly what it is told to, when it is told to."""

    name = "scripted"
    description = "observations pushed by a test (crosswatch.testing)"
    capabilities = Capabilities(recursive=False, access_events=True)

    @classmethod
    def probe(cls, path: str) -> Probe:
        return Probe(cls.name, True, "test backend", score=0)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        self._lock = threading.Lock()
        self._queue: list[Observation] = []
        self._by_inode: dict[tuple[int, int], int] = {}
        self._inode_of: dict[int, tuple[int, int]] = {}
        self._selves: dict[tuple[int, int], int] = {}  # (dev, ino) -> watch_self handle
        self._self_uses: dict[int, tuple[tuple[int, int], int]] = {}  # handle -> (key, uses)
        self._next = itertools.count(1)
        self._waker = Waker()

    # ------------------------------------------------------------ Backend API

    def fileno(self) -> int | None:
        return self._waker.fileno()

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise WatchGoneError(f"{path!r} is gone") from None
        if not os.path.isdir(path):
            raise WatchGoneError(f"{path!r} is not a directory")
        key = (st.st_dev, st.st_ino)
        with self._lock:
            handle = self._by_inode.get(key)
            if handle is None:
                handle = next(self._next)
                self._by_inode[key] = handle
                self._inode_of[handle] = key
            return handle

    def watch_self(self, path: str) -> Hashable:
        try:
            st = os.lstat(path)  # a symbolic link is watched itself
        except (FileNotFoundError, NotADirectoryError):
            raise WatchGoneError(f"{path!r} is gone") from None
        key = (st.st_dev, st.st_ino)
        with self._lock:
            handle = self._selves.get(key)
            if handle is None:
                handle = self._selves[key] = -next(self._next)
            _, uses = self._self_uses.get(handle, (key, 0))
            self._self_uses[handle] = (key, uses + 1)
            return handle

    def unwatch(self, handle: Hashable) -> None:
        with self._lock:
            if handle in self._self_uses:
                key, uses = self._self_uses[handle]
                if uses > 1:
                    self._self_uses[handle] = (key, uses - 1)
                else:
                    self._end_self(handle)
                return
            key = self._inode_of.pop(handle, None)  # type: ignore[call-overload]
            if key is not None:
                del self._by_inode[key]

    def _end_self(self, handle: Hashable) -> None:
        found = self._self_uses.pop(handle, None)  # type: ignore[call-overload]
        if found is not None:
            del self._selves[found[0]]

    def read(self) -> Sequence[Observation]:
        self._waker.drain()
        with self._lock:
            out, self._queue = self._queue, []
        return out

    def close(self) -> None:
        self._waker.close()

    # ------------------------------------------------------------ test side

    def push(self, *observations: Observation) -> None:
        """Queue observations and wake the watcher."""
        with self._lock:
            self._queue.extend(observations)
        self._waker.wake()

    def handle_of(self, path: str) -> int | None:
        """The handle of the watched directory at ``path`` now, if it is watched."""
        return self._find(self._by_inode, path, os.stat)

    def fate_of(self, path: str) -> int | None:
        """The ``watch_self`` handle of the entry at ``path`` now (not followed), if any."""
        return self._find(self._selves, path, os.lstat)

    def _find(
        self,
        index: dict[tuple[int, int], int],
        path: str,
        stat: Callable[[str], os.stat_result],
    ) -> int | None:
        try:
            st = stat(path)
        except OSError:
            return None
        with self._lock:
            return index.get((st.st_dev, st.st_ino))

    def self_gone(self, handle: int) -> None:
        """The entry watched by ``watch_self`` is gone: its watch ends, whatever its uses."""
        with self._lock:
            self._end_self(handle)

    def watched(self) -> int:
        with self._lock:
            return len(self._by_inode)


class FileOps:
    """File operations for tests; attached backends hear of each one as a kernel would."""

    def __init__(self) -> None:
        self._listeners: list[ScriptedBackend] = []
        self._cookies = itertools.count(1)

    def attach(self, backend: ScriptedBackend) -> None:
        self._listeners.append(backend)

    def _report(self, path: str, action: Action, is_dir: bool, cookie: int | None = None) -> None:
        parent, name = os.path.split(path)
        for backend in self._listeners:
            handle = backend.handle_of(parent)
            if handle is not None:
                backend.push(EntryChange(handle, name, action, is_dir, cookie))

    def _fates(self, path: str) -> list[tuple[ScriptedBackend, int]]:
        """The watches of the entry at ``path`` for its own fate (``watch_self``)."""
        return [(b, h) for b in self._listeners if (h := b.fate_of(path)) is not None]

    @staticmethod
    def _end_fates(fates: list[tuple[ScriptedBackend, int]], is_dir: bool) -> None:
        """The entry is gone: IN_DELETE_SELF, then IN_IGNORED, on each fate watch."""
        for backend, handle in fates:
            backend.push(EntryChange(handle, "", Action.DELETED, is_dir), Gone(handle))
            backend.self_gone(handle)

    def write(self, path: str, data: bytes = b"x", *, append: bool = False) -> None:
        existed = os.path.lexists(path)
        with open(path, "ab" if append else "wb") as f:
            if not existed:
                self._report(path, Action.CREATED, False)
            f.write(data)
        self._report(path, Action.MODIFIED, False)

    def touch(self, path: str) -> None:
        """Create an empty file (nothing is written), or set an existing one's times."""
        if os.path.lexists(path):
            os.utime(path)
            self._report(path, Action.ATTRIB, False)
        else:
            open(path, "xb").close()
            self._report(path, Action.CREATED, False)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        self._report(path, Action.CREATED, True)

    def makedirs(self, path: str) -> None:
        missing = []
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for p in reversed(missing):
            self.mkdir(p)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)
        self._report(path, Action.CREATED, False)

    def remove(self, path: str) -> None:
        fates = self._fates(path)
        os.unlink(path)
        self._report(path, Action.DELETED, False)
        self._end_fates(fates, False)

    def _watches(self, path: str) -> list[tuple[ScriptedBackend, int]]:
        return [(b, h) for b in self._listeners if (h := b.handle_of(path)) is not None]

    def rmdir(self, path: str) -> None:
        watches, fates = self._watches(path), self._fates(path)
        os.rmdir(path)
        self._report(path, Action.DELETED, True)
        for backend, handle in watches:  # IN_DELETE_SELF, then IN_IGNORED: the watch ends
            backend.push(EntryChange(handle, "", Action.DELETED, True), Gone(handle))
            backend.unwatch(handle)
        self._end_fates(fates, True)

    def rmtree(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            for name in os.listdir(path):
                self.rmtree(os.path.join(path, name))
            self.rmdir(path)
        else:
            self.remove(path)

    def rename(self, src: str, dst: str) -> None:
        is_dir = os.path.isdir(src) and not os.path.islink(src)
        same = os.path.lexists(dst) and os.path.samestat(os.lstat(src), os.lstat(dst))
        moved = self._fates(src)
        replaced = [] if same else self._fates(dst)
        replaced_dir = replaced and os.path.isdir(dst) and not os.path.islink(dst)
        os.replace(src, dst)  # onto an existing entry as rename(2) does (Windows too)
        if same:
            return  # renaming onto the same file does nothing, and the kernel says nothing
        cookie = next(self._cookies)
        self._report(src, Action.MOVED_FROM, is_dir, cookie)
        self._report(dst, Action.MOVED_TO, is_dir, cookie)
        for backend, handle in self._watches(dst) if is_dir else ():
            backend.push(EntryChange(handle, "", Action.MOVED_FROM, True))  # IN_MOVE_SELF
        for backend, handle in moved:
            backend.push(EntryChange(handle, "", Action.MOVED_FROM, is_dir))
        self._end_fates(replaced, bool(replaced_dir))  # the entry replaced is gone

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)
        self._report(path, Action.ATTRIB, os.path.isdir(path))

"""The fanotify backend: one filesystem mark per file system, directories known by handle."""

from __future__ import annotations

import errno
import itertools
import os
import select
import stat
import time
from collections.abc import Hashable, Sequence
from typing import ClassVar

from crosswatch.backend import (
    Backend,
    Capabilities,
    Gone,
    MountWatch,
    Observation,
    Options,
    Probe,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    open_dir,
)

from . import _abi, _probe, _sys

#: Bytes read from the descriptor per call; the queue drains over several calls.
READ_SIZE = 256 * 1024
#: Events about directories not watched (yet) kept for a directory watched later.
KEPT = 4096
_OPEN_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FanotifyBackend(Backend):
    """Linux fanotify: a filesystem mark sees every change on a file system at once.

    The engine still asks for every directory before it lists it (``recursive`` is
    off): the watch costs no kernel object, only the directory's file handle, which
    maps what the kernel reports back to the engine's node with one lookup.
    Everything else on the file system is dropped by that same lookup.
    """

    name = "fanotify"
    description = (
        "Linux fanotify(7): one mark per file system, renames paired by the kernel, "
        "the pid of every change (needs root)"
    )
    capabilities = Capabilities(
        recursive=False, pids=True, dirs_report_themselves=True, merges_later=True
    )
    kernel: ClassVar[type[_sys.Kernel]] = _sys.Kernel
    """The system calls (a test swaps in a kernel this machine is not)."""

    @classmethod
    def probe(cls, path: str) -> Probe:
        return _probe.probe(cls.name, path, cls.kernel)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        self._kernel = self.kernel()
        try:
            self._fd = self._kernel.init(_probe.INIT_FLAGS)
        except OSError as exc:
            err = exc.errno or 0
            error = WatchLimitError if err in (errno.EMFILE, errno.ENFILE) else WatchError
            raise error(err, _probe.init_refused(err)) from None
        self._buf = bytearray(READ_SIZE)
        self._mask = _abi.BASE_MASK | _abi.RENAME_MASK
        self._ids = itertools.count(1)
        # A watched directory's handle is its key (fsid + file handle), the one the
        # kernel names it by, as long as it exists: the map holds each key once.
        self._dirs: dict[bytes, bytes] = {}
        self._selves: dict[tuple[bytes, bytes], int] = {}  # (parent's key, name) -> watch
        self._self_keys: dict[int, tuple[bytes, bytes]] = {}
        self._self_uses: dict[int, int] = {}
        self._marked: dict[bytes, int] = {}  # fsid marked -> watches on it
        self._mark_paths: dict[bytes, str] = {}  # fsid marked -> the path it was marked by
        # Events read about directories not watched, by key; and those of directories
        # watched since, to be given again (see _abi.replay).
        self._kept = _abi.Kept(KEPT)
        self._again: list[_abi.Event] = []
        self._epoll = select.epoll()
        self._epoll.register(self._fd, select.EPOLLIN)
        # A filesystem mark does not see a file system mounted over a watched directory.
        self._mounts = MountWatch(self._epoll)

    def fileno(self) -> int | None:
        return self._epoll.fileno() if self._fd >= 0 else None

    def deadline(self) -> float | None:
        if self._again:
            return time.monotonic()  # events to give again: read at once
        return self._mounts.deadline()

    # ------------------------------------------------------------ watching

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        key = self._key(path, _OPEN_FLAGS)
        handle = self._dirs.get(key)
        if handle is None:
            handle = self._dirs[key] = key
            self._marked[key[: _abi.FSID_SIZE]] += 1
            self._again += self._kept.pop(key)
        return handle

    def watch_self(self, path: str) -> Hashable | None:
        """A watch of the entry at ``path`` for its fate, by an inode mark.

        A directory is marked itself (its deletion and its moves); anything else (a
        symbolic link on the way) in its parent directory, whose entries' removals
        and renames name it. No file system above a root is marked as a whole: its
        every change would wake the watcher.
        """
        parent, name = os.path.split(path.rstrip("/") or "/")
        if not name:
            return None  # "/" is never renamed or removed
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        except FileNotFoundError:
            raise WatchGoneError(errno.ENOENT, os.strerror(errno.ENOENT), path) from None
        except OSError as exc:
            raise self._refused(exc.errno or 0, path) from None
        if is_dir:
            where, mask = path, _abi.FAN_DELETE_SELF | _abi.FAN_MOVE_SELF | _abi.FAN_ONDIR
        else:
            where, mask = parent, _abi.FAN_DELETE | _abi.FAN_ONDIR | (
                self._mask & (_abi.FAN_RENAME | _abi.MOVE_MASK))
        key = self._inode_mark(where, mask)
        entry = (key, b"." if is_dir else os.fsencode(name))
        handle = self._selves.get(entry)
        if handle is None:
            handle = next(self._ids)
            self._selves[entry] = handle
            self._self_keys[handle] = entry
        self._self_uses[handle] = self._self_uses.get(handle, 0) + 1
        return handle

    def _inode_mark(self, path: str, mask: int) -> bytes:
        """Mark the directory at ``path`` alone for ``mask``; its key (fsid + handle).

        Inode marks stay until the group closes or the directory goes: removing one
        would need the directory again, which may be elsewhere by then.
        """
        try:
            dirfd = open_dir(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise self._refused(exc.errno or 0, path) from None
        try:
            handle = self._kernel.handle(dirfd)
            key = self._kernel.fsid(dirfd) + handle
            self._kernel.mark(self._fd, _abi.FAN_MARK_ADD, mask, dirfd)
        except OSError as exc:
            err = exc.errno or 0
            if err in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENODEV, errno.EXDEV):
                raise WatchLimitError(err, _probe.mark_refused(err, path), path) from None
            raise self._refused(err, path) from None
        finally:
            os.close(dirfd)
        return key

    def _key(self, path: str, flags: int) -> bytes:
        """fsid + file handle of the directory at ``path``, its file system marked."""
        try:
            dirfd = open_dir(path, flags)
        except OSError as exc:
            raise self._refused(exc.errno or 0, path) from None
        try:
            try:
                handle = self._kernel.handle(dirfd)
            except OSError as exc:
                err = exc.errno or 0
                if err in (errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise WatchLimitError(err, _probe.handle_refused(err, path), path) from None
                raise self._refused(err, path) from None
            # Not cached by mount id: ids are reused once a file system is unmounted.
            fsid = self._kernel.fsid(dirfd)
            if fsid not in self._marked:
                self._mark(fsid, dirfd, path)
            return fsid + handle
        finally:
            os.close(dirfd)

    def _mark(self, fsid: bytes, dirfd: int, path: str) -> None:
        add = _abi.FAN_MARK_ADD | _abi.FAN_MARK_FILESYSTEM
        try:
            readable = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            raise self._refused(exc.errno or 0, path) from None
        try:
            self._kernel.mark(self._fd, add, self._mask, readable)
        except OSError as exc:
            err = exc.errno or 0
            if err != errno.EINVAL or not self._mask & _abi.FAN_RENAME:
                # Another file system inside the tree that cannot be marked: polled.
                raise WatchLimitError(err, _probe.mark_refused(err, path), path) from None
            # Before Linux 5.17 there is no FAN_RENAME: the halves come unpaired.
            self._mask = _abi.BASE_MASK | _abi.MOVE_MASK
            self._mark(fsid, dirfd, path)
            return
        finally:
            os.close(readable)
        self._marked[fsid] = 0
        self._mark_paths[fsid] = path

    def _refused(self, err: int, path: str) -> WatchError:
        if err in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return WatchGoneError(err, os.strerror(err), path)
        return WatchError(err, os.strerror(err), path)

    def unwatch(self, handle: Hashable) -> None:
        if self._fd < 0:
            return
        if isinstance(handle, bytes):
            if self._dirs.pop(handle, None) is not None:
                self._release(handle)
            return  # else dead already
        if handle in self._self_uses:
            self._self_uses[handle] -= 1
            if self._self_uses[handle] > 0:
                return
            del self._self_uses[handle]
            del self._selves[self._self_keys.pop(handle)]

    def _release(self, key: bytes) -> None:
        """One watch fewer on the key's file system; the mark goes with the last.

        Removing a mark needs a descriptor on its file system: the path the mark was
        placed by (usually a root's, which outlives the directories below it), where
        it still leads there. If it does not, the mark stays until the group closes
        (what it reports is dropped, as any other directory's events).
        """
        fsid = key[: _abi.FSID_SIZE]
        left = self._marked.get(fsid)
        if left is None:
            return
        if left > 1:
            self._marked[fsid] = left - 1
            return
        self._marked[fsid] = 0
        path = self._mark_paths.get(fsid)
        if path is None:
            return
        try:
            dirfd = open_dir(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            if self._kernel.fsid(dirfd) == fsid:
                remove = _abi.FAN_MARK_REMOVE | _abi.FAN_MARK_FILESYSTEM
                self._kernel.mark(self._fd, remove, self._mask, dirfd)
                del self._marked[fsid], self._mark_paths[fsid]
        except OSError:
            pass
        finally:
            os.close(dirfd)

    # ------------------------------------------------------------ reading

    def read(self) -> Sequence[Observation]:
        if self._fd < 0:
            return []
        ready = [fd for fd, _ in self._epoll.poll(0)]
        out: list[Observation] = []
        if self._again:  # older than anything still queued
            again, self._again = self._again, []
            out += self._handled(_abi.replay(again, self._dirs, self._selves, late=True))
        if self._fd in ready:
            out += self._read_events()
        return out + self._mounts.observations(ready, self._fd)

    def _read_events(self) -> list[Observation]:
        """The events waiting; those about directories not watched are kept a while.

        Most of them lie outside every root and are never asked for. Past the bound
        (``KEPT``), all kept are dropped: a directory watched later then has only its
        listing to tell what happened in it before, without pids.
        """
        try:
            size = os.readv(self._fd, [self._buf])
        except BlockingIOError:
            return []
        observed = _abi.observations(bytes(memoryview(self._buf)[:size]), self._dirs,
                                     self._selves, self._kept)
        return self._handled(observed)

    def _handled(self, observed: list[Observation]) -> list[Observation]:
        """``observed``, its dead handles forgotten."""
        for obs in observed:
            if isinstance(obs, Gone) and isinstance(obs.handle, bytes):
                self._forget(obs.handle)
        return observed

    def _forget(self, key: bytes) -> None:
        """A directory deleted: its handle is dead (its mark stays for the others)."""
        if self._dirs.pop(key, None) is None:
            return
        fsid = key[: _abi.FSID_SIZE]
        if self._marked.get(fsid, 0) > 0:
            self._marked[fsid] -= 1

    def close(self) -> None:
        if self._fd >= 0:
            self._epoll.close()
            self._mounts.close()
            os.close(self._fd)  # the marks go with the group
            self._fd = -1
            self._dirs.clear()
            self._selves.clear()
            self._kept.clear()
            self._again.clear()

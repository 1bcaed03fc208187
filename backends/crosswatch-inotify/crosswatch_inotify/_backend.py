"""The inotify backend: the system calls, the probe, and the watch limit."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import sys
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

from crosswatch.backend import (
    REMOTE_FS,
    VIRTUAL_FS,
    Action,
    Backend,
    Capabilities,
    EntryChange,
    Gone,
    MountWatch,
    Observation,
    Options,
    Probe,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    fs_type,
    open_dir,
)

from . import _abi, _limits

#: Bytes read from the descriptor per call; the queue drains over several calls.
READ_SIZE = 256 * 1024
#: Below this many allowed watches the probe counts the tree's directories; above
#: it, a tree rarely comes close, and counting would cost as much as watching.
SMALL_LIMIT = 65_536


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    for fn, args in (
        ("inotify_init1", [ctypes.c_int]),
        ("inotify_add_watch", [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]),
        ("inotify_rm_watch", [ctypes.c_int, ctypes.c_int]),
    ):
        getattr(libc, fn).argtypes = args
        getattr(libc, fn).restype = ctypes.c_int
    return libc


class InotifyBackend(Backend):
    """Linux inotify: one watch per directory, names and rename cookies, no recursion."""

    name = "inotify"
    description = "Linux inotify(7): exact names and renames, one watch per directory"
    capabilities = Capabilities(recursive=False, access_events=True, own_reads=True)

    @classmethod
    def probe(cls, path: str) -> Probe:
        if not sys.platform.startswith("linux"):
            return Probe.unavailable(cls.name, "needs Linux")
        refused = _limits.instances_refused(_libc)
        if refused is not None:
            err, reason = refused
            # limit=0: a limit used up, which selection warns of when it passes over it
            exhausted = err in (errno.EMFILE, errno.ENFILE)
            return Probe(cls.name, False, reason, limit=0 if exhausted else None)
        limit = _limits.watch_limit()
        kind = fs_type(path)
        if kind in VIRTUAL_FS:
            return Probe(
                cls.name,
                True,
                f"changes on {kind} are not reported by the kernel: a virtual file system, "
                "where only writes and directories made through file calls are seen",
                score=5,
                limit=limit,
            )
        if kind in REMOTE_FS or (kind or "").startswith("fuse"):
            return Probe(
                cls.name,
                True,
                f"{kind}: changes made by other hosts (or behind FUSE) are not seen",
                score=5,
                limit=limit,
            )
        if not os.path.isdir(path):
            return Probe(cls.name, True, "watches the file's directory", score=100, limit=limit)
        if limit is None or limit >= SMALL_LIMIT:
            return Probe(cls.name, True, f"up to {limit} watches per user", 100, limit)
        needed, complete = _limits.count_dirs(path, limit)
        shown = f"{needed}" if complete else f"more than {limit}"
        if needed * 4 < limit:
            return Probe(cls.name, True, f"{shown} directories", 100, limit, needed)
        left = limit - _limits.watches_in_use()
        if needed <= left:
            return Probe(cls.name, True, f"{shown} directories, {left} watches left", 100, left,
                         needed)
        return Probe(
            cls.name,
            True,
            f"the tree has {shown} directories but only {left} inotify watches are left: "
            f"the rest would be polled; {_limits.raise_limit('watches')}",
            score=50,
            limit=left,
            needed=needed,
        )

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        self._libc = _libc()
        fd = self._libc.inotify_init1(_abi.IN_NONBLOCK | _abi.IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            if err in (errno.EMFILE, errno.ENFILE):
                raise WatchLimitError(err, _limits.init_refused(err))
            raise WatchError(err, _limits.init_refused(err))
        self._fd = fd
        self._buf = bytearray(READ_SIZE)
        self._mask = _abi.BASE_MASK | (_abi.ACCESS_MASK if self.options.access else 0)
        # The kernel keeps one watch (one wd, one mask) per inode per instance: a
        # directory watched with its entries (by watch) and for its own fate (by
        # watch_self, maybe several times) shares it. Nothing is kept of a wd used by
        # watch alone (the common case, one per directory of a tree); of one used by
        # watch_self, the calls not yet released, and whether watch uses it too.
        self._selves: dict[int, int] = {}
        self._both: set[int] = set()
        self._mask_create = True  # IN_MASK_CREATE (Linux >= 4.18) not refused yet
        # inotify never reports mounts: the mount table is watched in the same epoll set.
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)
        self._mounts = MountWatch(self._epoll)

    def fileno(self) -> int | None:
        return self._epoll.fileno() if self._fd >= 0 else None

    def deadline(self) -> float | None:
        return self._mounts.deadline()

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        wd = self._add_watch(path, self._mask)
        if wd in self._selves:
            self._both.add(wd)
        return wd

    def watch_self(self, path: str) -> Hashable:
        """A watch of ``path``'s own fate; its handle is the negated wd.

        ``IN_MASK_ADD`` leaves the mask of an inode watched with its entries as it
        is; ``watch`` on an inode watched only here replaces the mask with its own,
        which holds these bits too.
        """
        wd, fresh = self._add_self_watch(path)
        if wd not in self._selves and not fresh:
            self._both.add(wd)  # the inode was watched already, and not by watch_self
        self._selves[wd] = self._selves.get(wd, 0) + 1
        return -wd

    def _add_self_watch(self, path: str) -> tuple[int, bool]:
        """The wd of a watch of ``path``'s fate, and whether the inode had none before.

        ``IN_MASK_CREATE`` refuses an inode watched already (``EEXIST``), which tells
        a wd that watch uses from a new one. A kernel without it (``EINVAL``) leaves
        that unknown: the wd is then taken as used by watch too, so that releasing it
        here never removes a watch of entries (at worst a watch lives on until its
        directory goes).
        """
        if self._mask_create:
            create = (_abi.SELF_MASK & ~_abi.IN_MASK_ADD) | _abi.IN_MASK_CREATE
            try:
                return self._add_watch(path, create), True
            except WatchError as exc:
                if exc.errno == errno.EINVAL:
                    self._mask_create = False
                elif exc.errno != errno.EEXIST:
                    raise
        return self._add_watch(path, _abi.SELF_MASK), False

    def _add_watch(self, path: str, mask: int) -> int:
        """``inotify_add_watch`` at any depth; the refusal as a WatchError.

        A path longer than ``PATH_MAX`` is opened through descriptors and watched as
        ``/proc/self/fd/N``, a link the kernel resolves to the opened entry itself:
        the watch is the same one (same wd) the path would have given.
        """
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), mask)
        if wd >= 0:
            return int(wd)
        err = ctypes.get_errno()
        if err != errno.ENAMETOOLONG:
            raise self._refused(err, path)
        flags = os.O_PATH | os.O_CLOEXEC
        flags |= os.O_NOFOLLOW if mask & _abi.IN_DONT_FOLLOW else 0
        flags |= os.O_DIRECTORY if mask & _abi.IN_ONLYDIR else 0
        try:
            fd = open_dir(path, flags)
        except OSError as exc:
            raise self._refused(exc.errno or err, path) from None
        try:
            # The magic link must be followed to reach the entry (IN_DONT_FOLLOW would
            # watch the link); O_NOFOLLOW kept the entry itself from being followed.
            link = f"/proc/self/fd/{fd}".encode()
            wd = self._libc.inotify_add_watch(self._fd, link, mask & ~_abi.IN_DONT_FOLLOW)
            err = ctypes.get_errno()
        finally:
            os.close(fd)
        if wd >= 0:
            return int(wd)
        if err == errno.ENOENT:  # the descriptor is open: /proc is what is missing
            raise WatchError(
                errno.ENAMETOOLONG,
                "paths longer than PATH_MAX are watched through /proc/self/fd, which is "
                "not mounted here; mount /proc or use backend='polling'",
                path,
            )
        raise self._refused(err, path)

    def _refused(self, err: int, path: str) -> WatchError:
        if err in (errno.ENOENT, errno.ENOTDIR):
            return WatchGoneError(err, os.strerror(err), path)
        if err == errno.ENOSPC:
            return WatchLimitError(
                err,
                f"inotify watch limit reached ({_limits.watch_limit()} per user); "
                f"{_limits.raise_limit('watches')} or use backend='polling'",
                path,
            )
        return WatchError(err, os.strerror(err), path)

    def unwatch(self, handle: Hashable) -> None:
        if self._fd < 0 or not isinstance(handle, int):
            return
        wd = abs(handle)
        if handle < 0:
            uses = self._selves.get(wd)
            if uses is None:
                return  # dead already
            if uses > 1:
                self._selves[wd] = uses - 1
                return
            del self._selves[wd]
            if wd in self._both:
                self._both.discard(wd)
                return
        else:
            self._both.discard(wd)
            if wd in self._selves:
                # Still watched for its fate. Its mask keeps the entry bits: setting
                # it again would need its path, which may lead elsewhere by now.
                # What it reports about entries is dropped (see _fates).
                return
        self._libc.inotify_rm_watch(self._fd, wd)  # EINVAL for a dead watch: fine

    def read(self) -> Sequence[Observation]:
        out: list[Observation] = []
        ready = [fd for fd, _ in self._epoll.poll(0)]
        if self._fd in ready:
            out += self._read_events()
        return out + self._mounts.observations(ready, self._fd)

    def _read_events(self) -> list[Observation]:
        # Into a buffer kept from read to read: a fresh 256 KiB buffer per read costs
        # a mapping and its teardown (shootdowns on other CPUs), which was most of
        # the time from a write to its delivery.
        try:
            size = os.readv(self._fd, [self._buf])
        except BlockingIOError:
            return []
        observed = _abi.observations(bytes(memoryview(self._buf)[:size]))
        if self._selves:
            observed = self._fates(observed)
        for obs in observed:
            if isinstance(obs, Gone) and isinstance(obs.handle, int):
                wd = abs(obs.handle)
                self._selves.pop(wd, None)
                self._both.discard(wd)
        return observed

    def _fates(self, observed: list[Observation]) -> list[Observation]:
        """Give what a wd watched by ``watch_self`` says of its own fate to that use too."""
        selves, both = self._selves, self._both
        out: list[Observation] = []
        for obs in observed:
            wd = getattr(obs, "handle", None)
            if wd not in selves or not isinstance(obs, EntryChange | Gone):
                out.append(obs)  # most: a directory watched for its entries only
                continue
            if wd in both:
                out.append(obs)
            if isinstance(obs, Gone):
                out.append(Gone(-wd))
            elif not obs.name and obs.action in (Action.DELETED, Action.MOVED_FROM):
                out.append(replace(obs, handle=-wd))
        return out

    def close(self) -> None:
        if self._fd >= 0:
            self._epoll.close()
            self._mounts.close()
            os.close(self._fd)
            self._fd = -1
            self._selves.clear()
            self._both.clear()

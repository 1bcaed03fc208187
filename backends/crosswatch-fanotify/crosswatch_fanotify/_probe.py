"""What the probe asks of the kernel: privilege, its version's features, file handles."""

from __future__ import annotations

import errno
import os
import platform
import sys
from collections.abc import Callable

from crosswatch.backend import REMOTE_FS, VIRTUAL_FS, Probe, fs_type

from . import _abi
from ._sys import Kernel

#: The group every watcher opens (a notification group that names entries).
INIT_FLAGS = (
    _abi.FAN_CLASS_NOTIF | _abi.FAN_CLOEXEC | _abi.FAN_NONBLOCK | _abi.FAN_REPORT_DFID_NAME
)
#: Below inotify's 100: preferred only where inotify cannot hold the tree (its probe
#: then says 50), or where pids are asked for (only fanotify has them).
SCORE = 90


def init_refused(err: int) -> str:
    """Why fanotify_init refused the group, and what to do."""
    if err == errno.EINVAL:
        return (
            "needs Linux 5.9 or later (FAN_REPORT_DFID_NAME); this kernel is "
            f"{platform.release()}: use inotify"
        )
    if err == errno.EPERM:
        return "needs CAP_SYS_ADMIN (run as root): use inotify"
    if err == errno.ENOSYS:
        return "this kernel was built without fanotify (CONFIG_FANOTIFY): use inotify"
    if err == errno.EMFILE:
        return (
            "too many fanotify groups are open for this user (fs.fanotify.max_user_groups): "
            "close some watchers or raise that limit"
        )
    return f"fanotify_init failed: {os.strerror(err)}"


def mark_refused(err: int, path: str) -> str:
    """Why a filesystem mark on ``path``'s file system was refused, and what to do."""
    kind = fs_type(path) or "this file system"
    if err == errno.EPERM:
        return "a filesystem mark needs CAP_SYS_ADMIN (run as root): use inotify"
    if err in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENODEV):
        return f"{kind} gives no file handles (or no file system id) for fanotify: use inotify"
    if err == errno.EXDEV:
        return (
            f"{path!r} is in a subvolume whose file system id is not its file system's "
            "(btrfs, for one): the kernel refuses filesystem marks there; use inotify"
        )
    return f"fanotify_mark failed on {kind}: {os.strerror(err)}"


def handle_refused(err: int, path: str) -> str:
    kind = fs_type(path) or "this file system"
    if err in (errno.EOPNOTSUPP, errno.ENOTSUP):
        return f"{kind} gives no file handles (name_to_handle_at): use inotify"
    return f"name_to_handle_at failed: {os.strerror(err)}"


def probe(name: str, path: str, kernel: Callable[[], Kernel]) -> Probe:
    """Open a group, and mark and read a handle of ``path``'s file system, as watching
    would; say what is missing if anything is."""
    if not sys.platform.startswith("linux"):
        return Probe.unavailable(name, "needs Linux")
    try:
        calls = kernel()
        fd = calls.init(INIT_FLAGS)
    except OSError as exc:
        err = exc.errno or 0
        return Probe(name, False, init_refused(err), limit=0 if err == errno.EMFILE else None)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    try:
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(fd)
        return Probe.unavailable(name, f"cannot open {directory!r}: {exc.strerror}")
    try:
        try:
            calls.handle(dirfd)
        except OSError as exc:
            return Probe.unavailable(name, handle_refused(exc.errno or 0, directory))
        renames = "renames paired by the kernel"
        try:
            calls.mark(fd, _abi.FAN_MARK_ADD | _abi.FAN_MARK_FILESYSTEM,
                       _abi.BASE_MASK | _abi.RENAME_MASK, dirfd)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                return Probe.unavailable(name, mark_refused(exc.errno or 0, directory))
            try:  # before Linux 5.17: no FAN_RENAME
                calls.mark(fd, _abi.FAN_MARK_ADD | _abi.FAN_MARK_FILESYSTEM,
                           _abi.BASE_MASK | _abi.MOVE_MASK, dirfd)
            except OSError as again:
                return Probe.unavailable(name, mark_refused(again.errno or 0, directory))
            renames = "renames paired by order, not by the kernel (FAN_RENAME needs Linux 5.17)"
    finally:
        os.close(dirfd)
        os.close(fd)
    kind = fs_type(directory) or "its file system"
    if kind in VIRTUAL_FS:
        return Probe(name, True, f"changes on {kind} are not reported by the kernel: a virtual "
                     "file system, where only writes and directories made through file calls "
                     "are seen", score=5)
    if kind in REMOTE_FS or kind.startswith("fuse"):
        return Probe(name, True, f"{kind}: changes made by other hosts (or behind FUSE) are "
                     f"not seen; {renames}", score=5)
    return Probe(
        name,
        True,
        f"one mark for all of {kind}: the pid of every change, {renames}; events elsewhere "
        "on that file system are read and dropped",
        score=SCORE,
    )

"""inotify's limits: which one is in force here, what is left, and how to say so.

Messages name the limit that applied (a sysctl, or a user namespace's own) and
what to raise; nothing here changes a limit.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from typing import Any

from . import _abi

#: The per-user limits of inotify, by what they count: the initial user namespace's
#: sysctl, and the file that holds the current user namespace's own limit.
_LIMITS = {
    "watches": ("fs.inotify.max_user_watches", "/proc/sys/user/max_inotify_watches"),
    "instances": ("fs.inotify.max_user_instances", "/proc/sys/user/max_inotify_instances"),
}


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def in_initial_namespace() -> bool:
    """Is this process in the initial user namespace (whose uid map is the identity)?"""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def limit_in_force(what: str) -> tuple[int, str] | None:
    """The tightest readable limit of inotify ``what`` ("watches" or "instances") for
    one user here, and how to name it; None if none can be read.

    The kernel counts a user's watches and instances in their user namespace and in
    every namespace above it, each against that namespace's own limit: the smallest
    limit on the way applies. Two can be read: the initial namespace's sysctl
    (``fs.inotify.max_user_*``, the same from every namespace) and the current
    namespace's ``/proc/sys/user/max_inotify_*`` (the initial one's again when in it).
    """
    sysctl, own = _LIMITS[what]
    system = _read_int("/proc/sys/" + sysctl.replace(".", "/"))
    here = None if in_initial_namespace() else _read_int(own)
    if here is not None and (system is None or here < system):
        return here, f"{own} (this user namespace's limit)"
    if here is not None and here == system:
        return here, f"{sysctl} and {own} (this user namespace's limit)"
    return (system, sysctl) if system is not None else None


def watch_limit() -> int | None:
    """The watches one user may hold here: the tightest of the limits that apply."""
    found = limit_in_force("watches")
    return found[0] if found else None


def raise_limit(what: str) -> str:
    """"raise <the limit in force>", for messages."""
    found = limit_in_force(what)
    return f"raise {found[1]}" if found else f"raise fs.inotify.max_user_{what}"


def _descriptors_left() -> bool:
    """Can this process open one more file? (EMFILE means this too.)"""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        return exc.errno != errno.EMFILE
    return True


def init_refused(err: int) -> str:
    """Why ``inotify_init1`` failed with ``err``, and what to do about it."""
    if err == errno.EMFILE:
        if not _descriptors_left():
            return (
                "this process has as many files open as it may (ulimit -n); "
                "raise that limit, or close descriptors"
            )
        found = limit_in_force("instances")
        shown = f" ({found[0]} per user)" if found else ""
        return (
            f"the inotify instance limit{shown} is reached; "
            f"{raise_limit('instances')} (or close programs that watch files)"
        )
    if err == errno.ENFILE:
        return "the system's limit of open files is reached (fs.file-max)"
    return f"inotify_init1 failed: {os.strerror(err)}"


def instances_refused(libc: Callable[[], Any]) -> tuple[int, str] | None:
    """(errno, why) if no inotify instance can be opened now, else None.

    Opens one (through ``libc()``, the bound C library) and closes it at once:
    what the kernel says is the only reliable answer (the instances other users
    and namespaces hold cannot all be counted).
    """
    try:
        lib = libc()
    except (OSError, AttributeError) as exc:
        return errno.ENOSYS, f"inotify cannot be called: {exc}"
    fd = lib.inotify_init1(_abi.IN_NONBLOCK | _abi.IN_CLOEXEC)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    return err, init_refused(err)


def watches_in_use() -> int:
    """Watches held by this user's processes (from /proc/*/fdinfo); best effort."""
    uid, used = os.getuid(), 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        base = f"/proc/{pid}"
        try:
            if os.stat(base).st_uid != uid:
                continue
            fds = os.listdir(f"{base}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{base}/fd/{fd}") != "anon_inode:inotify":
                    continue
                with open(f"{base}/fdinfo/{fd}") as f:
                    used += sum(1 for line in f if line.startswith("inotify wd:"))
            except OSError:
                continue
    return used


def count_dirs(path: str, budget: int) -> tuple[int, bool]:
    """Directories in the tree at ``path``, counting at most ``budget``; (n, complete)."""
    count, stack = 0, [path]
    while stack:
        count += 1
        if count > budget:
            return count, False
        try:
            with os.scandir(stack.pop()) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return count, True

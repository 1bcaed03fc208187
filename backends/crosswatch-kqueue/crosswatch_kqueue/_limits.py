"""kqueue's limit: one open descriptor per watched entry, under ``RLIMIT_NOFILE``.

:func:`plan` is pure: from the soft and hard limits, the descriptors in use and the
tree's size it says how many descriptors kqueue may hold, whether the soft limit
should be raised, and what to tell the user when the tree does not fit. The
counting helpers read the disk but change nothing; only the backend, when it
opens, raises the soft limit.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

#: ``OPEN_MAX`` of macOS's ``sys/syslimits.h``: its ``setrlimit(2)`` refuses a soft
#: ``RLIMIT_NOFILE`` above this (or above ``kern.maxfilesperproc``, when known) even
#: when the hard limit is unlimited.
DARWIN_OPEN_MAX = 10240
#: Descriptors left to the rest of the program (its files, sockets, pipes).
RESERVE = 64
#: Limits at or above this, and negative ones, mean "unlimited" (``RLIM_INFINITY``
#: is -1 on Linux and 2**63 - 1 on macOS and FreeBSD, as Python reports them).
_UNLIMITED = 2**62


def finite(limit: int) -> int | None:
    """``limit`` as a number, or ``None`` if it means unlimited."""
    return None if limit < 0 or limit >= _UNLIMITED else limit


@dataclass(frozen=True, slots=True)
class Plan:
    """What kqueue may hold under the open-file limit, for one tree."""

    soft: int
    """The soft limit now."""
    ceiling: int
    """The highest soft limit this process may set (hard limit, OS caps)."""
    raise_to: int | None
    """The soft limit to set when the backend opens; ``None``: leave it."""
    allowed: int
    """Descriptors kqueue may hold for entries, once raised."""
    entries: int
    """Directories and regular files in the tree (a lower bound if not complete)."""
    complete: bool
    fits: bool
    message: str


def ceiling(soft: int, hard: int, *, darwin: bool, maxfilesperproc: int | None = None) -> int:
    """The highest soft ``RLIMIT_NOFILE`` that ``setrlimit`` accepts here.

    It is the hard limit, capped by ``kern.maxfilesperproc`` where known and, on
    macOS without it, by ``OPEN_MAX``. An unlimited hard limit elsewhere, with no
    known cap, gives no room to raise. Never below the soft limit in force.
    """
    top = finite(hard)
    cap = maxfilesperproc if maxfilesperproc and maxfilesperproc > 0 else None
    if darwin and cap is None:
        cap = DARWIN_OPEN_MAX
    if cap is not None:
        top = cap if top is None else min(top, cap)
    current = finite(soft)
    if current is None:
        return top if top is not None else _UNLIMITED
    return max(current, top if top is not None else current)


def plan(
    soft: int,
    hard: int,
    in_use: int,
    dirs: int,
    files: int,
    *,
    complete: bool = True,
    darwin: bool = False,
    maxfilesperproc: int | None = None,
) -> Plan:
    """Decide how many descriptors kqueue can hold for a tree of ``dirs`` + ``files``.

    One descriptor per entry, one for the queue itself, and :data:`RESERVE` for the
    rest of the program, on top of the ``in_use`` already open. The soft limit is
    to be raised to the ceiling only when the tree does not fit under it as it is.
    """
    entries = dirs + files
    top = ceiling(soft, hard, darwin=darwin, maxfilesperproc=maxfilesperproc)
    current = finite(soft)
    limit_now = current if current is not None else top

    def allowed_under(limit: int) -> int:
        return max(0, limit - in_use - RESERVE - 1)  # - 1: the kqueue's own

    raise_to = top if entries > allowed_under(limit_now) and top > limit_now else None
    limit = raise_to or limit_now
    allowed = allowed_under(limit)
    fits = complete and entries <= allowed
    shown = f"{entries}" if complete else f"more than {entries}"
    if fits:
        message = f"{shown} entries, {entries} of {allowed} descriptors"
        if raise_to is not None:
            message += f"; the open-file limit is raised from {limit_now} to {raise_to}"
        return Plan(limit_now, top, raise_to, allowed, entries, complete, True, message)
    how = (
        "raise the hard open-file limit (ulimit -Hn) and kern.maxfilesperproc"
        if darwin or maxfilesperproc
        else "raise the hard open-file limit (ulimit -Hn)"
    )
    if top > limit:  # only when the tree count was cut short: it may fit once raised
        how = f"the open-file limit can be raised to {top}"
    message = (
        f"{shown} entries need {shown} descriptors, one each; {allowed} are allowed "
        f"(open-file limit {limit}, {in_use} in use, {RESERVE} kept for the program): "
        f"the rest is polled; {how}"
    )
    return Plan(limit_now, top, raise_to, allowed, entries, complete, False, message)


def count_entries(path: str, budget: int) -> tuple[int, int, bool]:
    """(directories, regular files, complete) in the tree at ``path``, at most ``budget``.

    These are what kqueue opens a descriptor for; symbolic links, sockets, FIFOs
    and devices are seen through their directory only. Unreadable directories
    count as themselves. A file given as ``path`` counts with its directory's
    entries, which are what watching it opens.
    """
    if not os.path.isdir(path):
        path = os.path.dirname(os.path.abspath(path))
        dirs, files = 1, 0
        try:
            with os.scandir(path) as it:
                files = sum(1 for e in it if e.is_file(follow_symlinks=False))
        except OSError:
            pass
        return dirs, files, True
    dirs, files, stack = 0, 0, [path]
    while stack:
        dirs += 1
        if dirs + files > budget:
            return dirs, files, False
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        files += 1
        except OSError:
            continue
    return dirs, files, dirs + files <= budget


def descriptors_in_use() -> int | None:
    """Descriptors this process has open, from ``/dev/fd`` (or ``/proc/self/fd``).

    ``None`` when neither lists them all (FreeBSD's ``/dev/fd`` shows only 0-2
    unless fdescfs is mounted there); the caller then assumes a few.
    """
    for where in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        if len(names) > 3 or where == "/proc/self/fd":
            return max(0, len(names) - 1)  # less the one listdir held open
    return None


def is_watched_kind(mode: int) -> bool:
    """Does kqueue get a descriptor for an entry of this mode (directory, regular file)?"""
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode)

"""The mount table: which file system a path is on, and where mounts are.

Pure parsing of ``/proc/self/mountinfo`` (see proc_pid_mountinfo(5)) plus the one
read of it. Where the table is missing (not Linux, no ``/proc``), the answers are
``None``: an unknown file system makes no claim either way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"

#: File systems whose entries the kernel makes up when they are read. The changes it
#: makes there itself (processes coming and going, values changing) reach no
#: watcher: inotify hears only writes and directories made through file calls, and
#: the stats do not move, so polling sees nothing at all.
VIRTUAL_FS = frozenset(
    {
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "configfs",
        "pstore",
        "bpf",
        "efivarfs",
        "fusectl",
        "binfmt_misc",
        "selinuxfs",
        "nsfs",
    }
)
#: File systems where the local kernel never hears of changes made by other hosts.
REMOTE_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs"})

_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of the mount table."""

    id: int
    parent: int
    device: tuple[int, int]
    """Major and minor number: ``st_dev`` of what is on this file system."""
    root: str
    """The directory of the file system mounted here (``/`` unless a bind mount)."""
    point: str
    fs_type: str
    source: str


def unescape(field: bytes) -> bytes:
    """Undo the kernel's octal escapes (``\\040`` space, ``\\011`` tab, ``\\012``
    newline, ``\\134`` backslash) in one field."""
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field)


def parse(data: bytes) -> list[Mount]:
    """The mounts in the text of a mountinfo file, in its order; bad lines skipped."""
    out = []
    for line in data.split(b"\n"):
        fields = line.split(b" ")
        try:
            sep = fields.index(b"-", 6)
            major, minor = fields[2].split(b":")
            out.append(
                Mount(
                    id=int(fields[0]),
                    parent=int(fields[1]),
                    device=(int(major), int(minor)),
                    root=os.fsdecode(unescape(fields[3])),
                    point=os.fsdecode(unescape(fields[4])),
                    fs_type=os.fsdecode(unescape(fields[sep + 1])),
                    source=os.fsdecode(unescape(fields[sep + 2])),
                )
            )
        except (ValueError, IndexError):
            continue
    return out


def read(path: str = MOUNTINFO) -> list[Mount] | None:
    """This process's mount table, or ``None`` where there is none to read."""
    try:
        with open(path, "rb") as f:
            return parse(f.read())
    except OSError:
        return None


def within(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or below it (both absolute and normalized)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def mount_of(path: str, table: Sequence[Mount]) -> Mount | None:
    """The mount that ``path`` (absolute, symbolic links resolved) is on.

    A path lookup enters the mount at the first of its components that is a mount
    point, and the last mount stacked there: so from the root mount the walk goes
    down the tree of mounts, each time to the child with the shortest point on the
    way to ``path`` (a later mount over a parent hides those below it).
    """
    ids = {m.id for m in table}
    children: dict[int, list[Mount]] = {}
    for m in table:
        if m.parent != m.id and m.parent in ids:
            children.setdefault(m.parent, []).append(m)
    tops = [m for m in table if m.parent == m.id or m.parent not in ids]
    current = _first_on_the_way(path, tops)
    while current is not None:
        below = _first_on_the_way(path, children.get(current.id, []))
        if below is None:
            return current
        current = below
    return None


def _first_on_the_way(path: str, mounts: Sequence[Mount]) -> Mount | None:
    on_the_way = [m for m in mounts if within(path, m.point)]
    if not on_the_way:
        return None
    shortest = min(len(m.point) for m in on_the_way)
    return [m for m in on_the_way if len(m.point) == shortest][-1]


def under(path: str, table: Sequence[Mount]) -> list[Mount]:
    """The mounts whose point is strictly below ``path``."""
    return [m for m in table if m.point != path and within(m.point, path)]


def fs_type(path: str, table: Sequence[Mount] | None = None) -> str | None:
    """The type of the file system holding ``path``; ``None``: not known here."""
    if table is None:
        table = read()
        if table is None:
            return None
    mount = mount_of(os.path.realpath(path), table)
    return None if mount is None else mount.fs_type


def virtual(path: str, table: Sequence[Mount] | None = None) -> str | None:
    """The type of the virtual file system holding ``path`` (see :data:`VIRTUAL_FS`),
    or ``None`` if it is on another, or nothing is known."""
    kind = fs_type(path, table)
    return kind if kind in VIRTUAL_FS else None

"""One emulated directory handle: raw inotify records turned into Windows change records.

Part of the Linux emulation of kernel32 (see :mod:`crosswatch_windows.testing`). A
:class:`Directory` is what ``CreateFileW`` opened: it follows the directory itself
(an ``O_PATH`` descriptor, so a rename of the root leaves it working, as a
Windows handle does), and from its first read on it watches the directory, and
with ``subtree`` every directory below, adding watches to new ones itself. It
gathers the records ReadDirectoryChangesW would write, as Windows does between
reads, up to the size of the first read's buffer; past that they are all thrown
away and the next read completes with zero bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crosswatch.backend import open_dir
from crosswatch.testing import _inotify as ino

from . import _abi
from ._emubirths import Births

#: What each directory is watched for: its entries, their data, and its own end.
MASK = (ino.CHANGES & ~ino.IN_CLOSE_WRITE) | ino.IN_ONLYDIR
#: 1601-01-01 to 1970-01-01 in 100-nanosecond units (FILETIME's epoch).
EPOCH_1601 = 116_444_736_000_000_000
FILE_ATTRIBUTE_ARCHIVE = 0x20
#: The part of a file id that is the inode number (the rest: a sequence number).
LOW_48 = 2**48 - 1


@dataclass(frozen=True, slots=True)
class Change:
    """One record to write: an action, a name relative to the root (``\\`` between
    components), whether the entry is a directory, and its id (0: unknown)."""

    action: int
    name: str
    is_dir: bool
    file_id: int = 0
    parent_id: int = 0


def _filetime(ns: int) -> int:
    return ns // 100 + EPOCH_1601


def _record(ch: Change, extended: bool, stat_of: Callable[[str], Any]) -> bytes:
    """One record, unpadded, with ``NextEntryOffset`` 0."""
    raw = ch.name.encode("utf-16-le", "surrogatepass")
    if not extended:
        return _abi.NOTIFY_HEADER.pack(0, ch.action, len(raw)) + raw
    st = stat_of(ch.name)
    times = (0, 0, 0, 0) if st is None else (
        _filetime(st.st_ctime_ns), _filetime(st.st_mtime_ns),
        _filetime(st.st_ctime_ns), _filetime(st.st_atime_ns))
    size = 0 if st is None or ch.is_dir else st.st_size
    alloc = 0 if st is None else st.st_blocks * 512
    attrs = _abi.FILE_ATTRIBUTE_DIRECTORY if ch.is_dir else FILE_ATTRIBUTE_ARCHIVE
    return _abi.EXTENDED_HEADER.pack(
        0, ch.action, *times, alloc, size, attrs, 0, ch.file_id, ch.parent_id, len(raw)
    ) + raw


def encode(changes: list[Change], *, extended: bool,
           stat_of: Callable[[str], Any] = lambda name: None) -> bytes:
    """The records as Windows writes them: little-endian, UTF-16 names, each record
    starting on a 4-byte boundary (8 for the extended layout, whose 64-bit fields
    need it), the last one with ``NextEntryOffset`` 0 and no padding after it."""
    align = 8 if extended else 4
    out = bytearray()
    for i, ch in enumerate(changes):
        body = _record(ch, extended, stat_of)
        if i + 1 < len(changes):
            body += b"\0" * (-len(body) % align)
            body = struct.pack("<I", len(body)) + body[4:]
        out += body
    return bytes(out)


def record_size(change: Change, extended: bool) -> int:
    """Bytes the record takes in a buffer, padding included."""
    header = (_abi.EXTENDED_HEADER if extended else _abi.NOTIFY_HEADER).size
    n = header + len(change.name.encode("utf-16-le", "surrogatepass"))
    return n + (-n % (8 if extended else 4))


@dataclass(eq=False)
class Pending:
    """A read waiting for changes: the caller's buffer, and what the packet says."""

    buffer: Any
    length: int
    overlapped: int
    extended: bool


@dataclass(eq=False)
class Directory:
    """One directory handle, and from its first read on, the watches behind it."""

    handle: int
    path: str
    fd: int
    port: Any = None
    key: int = 0
    subtree: bool | None = None
    limit: int = 0
    pending: Pending | None = None
    deleted: bool = False
    """The directory itself was removed: Windows keeps it delete-pending while the
    handle is open, and every read of it fails with ERROR_ACCESS_DENIED."""
    overflowed: bool = False
    collected: list[Change] = field(default_factory=list)
    size: int = 0
    faults: list[Any] = field(default_factory=list)
    rel_of: dict[int, str] = field(default_factory=dict)  # wd -> relative path
    wd_of: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # relative path -> file id
    seq: dict[int, int] = field(default_factory=dict)  # inode number -> sequence number
    parent_wd: int | None = None
    """The watch of the directory holding the root. While the handle's descriptor is
    open, Linux reports no end of a removed directory (as Windows keeps it
    delete-pending): its parent's records say when to look."""

    # ------------------------------------------------------------ paths and stats

    def full(self, rel: str) -> str:
        """A path that reaches ``rel`` wherever the root is now."""
        base = f"/proc/self/fd/{self.fd}"
        return base + "/" + rel.replace("\\", "/") if rel else base

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.full(rel))
        except OSError:
            return None

    def _id(self, rel: str, ino: int | None = None) -> int:
        """A new entry's file id, made as NTFS makes its file reference numbers: the
        inode number in the low 48 bits, and in the high 16 a sequence number that
        changes each time that number comes back for another entry (Linux reuses
        inode numbers at once; a Windows id is never that of an entry deleted)."""
        if ino is None:
            st = self.lstat(rel)
            if st is None:
                return 0  # gone already: unknown, as a file system may say
            ino = st.st_ino
        low = ino & LOW_48
        seq = self.seq[low] = (self.seq.get(low, -1) + 1) % 2**16
        return low | seq << 48

    # ------------------------------------------------------------ watches

    def start(self, inotify: ino.Inotify, users: dict[int, list[Directory]]) -> None:
        """The first read: watch the directory (and, with ``subtree``, all below)."""
        self._watch_tree("", inotify, users, report=False)
        self._watch_parent(inotify, users)

    def _watch_parent(self, inotify: ino.Inotify, users: dict[int, list[Directory]]) -> None:
        if self.parent_wd is not None:
            drop(self.parent_wd, self, inotify, users)
            self.parent_wd = None
        try:
            parent = os.path.dirname(os.readlink(self.full("")))
            fd = open_dir(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            wd = inotify.add_fd(fd, MASK)
        except OSError:
            return
        finally:
            os.close(fd)
        self.parent_wd = wd
        if self not in users.setdefault(wd, []):
            users[wd].append(self)

    def check_deleted(self) -> None:
        try:
            self.deleted = self.deleted or os.fstat(self.fd).st_nlink == 0
        except OSError:
            self.deleted = True

    def _watch_tree(self, top: str, inotify: ino.Inotify, users: dict[int, list[Directory]],
                    *, report: bool) -> None:
        """Watch ``top`` and the directories below (again: a watch already there
        is kept, and its path brought up to date). ``report``: the entries found
        that were not known are new, and Windows would have reported them."""
        todo = [top]
        while todo:
            rel = todo.pop()
            try:
                fd = open_dir(self.full(rel), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue  # gone already: its removal is reported by its parent
            try:
                wd = inotify.add_fd(fd, MASK)
                gap = self._gap(wd, fd, fresh=wd not in users, report=report)
                if self not in users.setdefault(wd, []):
                    users[wd].append(self)
                stale, other = self.rel_of.get(wd), self.wd_of.get(rel)
                if (stale is not None and stale != rel) or (other is not None and other != wd):
                    # The tree changed faster than its records were read, and a path
                    # led to another directory than they said: lose the changes (a
                    # zero-byte read, as on Windows) rather than tell wrong names.
                    self.overflowed = True
                    if stale is not None and self.wd_of.get(stale) == wd:
                        del self.wd_of[stale]
                    if other is not None:
                        self.rel_of.pop(other, None)
                self.rel_of[wd] = rel
                self.wd_of[rel] = wd
                if rel == "" or self.subtree:
                    with os.scandir(fd) as it:
                        entries = list(it)
                else:
                    entries = []
            except OSError:
                entries, gap = [], {}
            finally:
                os.close(fd)
            if rel and not self.subtree:
                continue
            self._vanished(rel, gap, {os.fsdecode(entry.name) for entry in entries})
            for entry in entries:
                name = os.fsdecode(entry.name)
                if "\\" in name:  # (see apply)
                    self.overflowed = report or self.overflowed
                    continue
                child = f"{rel}\\{name}" if rel else name
                is_dir = entry.is_dir(follow_symlinks=False)
                known = self.ids.get(child)
                if known is None or known & LOW_48 != entry.inode() & LOW_48:
                    self.ids[child] = self._id(child, entry.inode())
                    if report:
                        self.add(Change(_abi.FILE_ACTION_ADDED, child, is_dir,
                                        self.ids[child]))
                if is_dir and self.subtree:
                    todo.append(child)

    def _gap(self, wd: int, fd: int, *, fresh: bool, report: bool) -> dict[str, bool]:
        """What was named in the directory open at ``fd`` before the new inotify watch
        ``wd`` on it (see :class:`~crosswatch_windows._emubirths.Births`); where that
        cannot be known, the changes are lost (a zero-byte read, as on Windows)."""
        births: Births | None = self.port.births if self.port is not None else None
        if births is None or not fresh:
            return {}
        if not report:
            births.watching(wd, fd)
            return {}
        gap = births.gap(wd, fd)
        if gap is None:
            self.overflowed = True
            return {}
        return gap

    def _vanished(self, rel: str, gap: dict[str, bool], present: set[str]) -> None:
        """Entries named in ``rel`` before its watch and gone now: Windows' watch,
        there from the directory's first instant, reported their removal."""
        for name, is_dir in gap.items():
            if name not in present and "\\" not in name:
                child = f"{rel}\\{name}" if rel else name
                self.add(Change(_abi.FILE_ACTION_REMOVED, child, is_dir, self.ids.pop(child, 0),
                                self.ids.get(rel, 0)))

    def _unwatch_tree(self, top: str, inotify: ino.Inotify,
                      users: dict[int, list[Directory]]) -> None:
        """Forget the watches of ``top`` and below (moved out, or removed)."""
        prefix = top + "\\"
        for rel in [r for r in self.wd_of if r == top or r.startswith(prefix)]:
            wd = self.wd_of.pop(rel)
            self.rel_of.pop(wd, None)
            drop(wd, self, inotify, users)
        for rel in [r for r in self.ids if r == top or r.startswith(prefix)]:
            del self.ids[rel]

    def _moved(self, old: str, new: str) -> None:
        """A directory moved inside the tree: its watches follow it (inotify's do)."""
        for table in (self.wd_of, self.ids):
            for rel in [r for r in table if r == old or r.startswith(old + "\\")]:
                table[new + rel[len(old):]] = table.pop(rel)
        for rel, wd in self.wd_of.items():
            self.rel_of[wd] = rel

    def close(self, inotify: ino.Inotify | None, users: dict[int, list[Directory]]) -> None:
        if inotify is not None:
            for wd in list(self.rel_of):
                drop(wd, self, inotify, users)
            if self.parent_wd is not None:
                drop(self.parent_wd, self, inotify, users)
        self.parent_wd = None
        self.rel_of.clear()
        self.wd_of.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------ records

    def add(self, change: Change) -> None:
        """Gather one record for the next read; past the buffer's size, lose them all."""
        if self.overflowed:
            return
        extended = self.pending.extended if self.pending is not None else True
        self.size += record_size(change, extended)
        if self.size > self.limit:
            self.overflowed = True
            self.collected.clear()
            self.size = 0
            return
        self.collected.append(change)

    def apply(self, wd: int, rec: ino.Record, inotify: ino.Inotify,
              users: dict[int, list[Directory]], partner: ino.Record | None) -> bool:
        """What one inotify record (and the MOVED_TO after it) means here; whether
        that MOVED_TO was taken as its other half."""
        used = False
        mask = rec.mask
        if wd == self.parent_wd and wd not in self.rel_of:
            if mask & (ino.IN_DELETE | ino.IN_MOVED_FROM | ino.IN_IGNORED):
                self.check_deleted()
            if mask & ino.IN_IGNORED:
                self.parent_wd = None
            return False
        rel = self.rel_of.get(wd)
        if rel is None:
            return False
        if mask & ino.IN_IGNORED:
            if self.port is not None:
                self.port.births.unwatched(wd)
            self.rel_of.pop(wd, None)
            if self.wd_of.get(rel) == wd:
                del self.wd_of[rel]
            return False
        if mask & ino.IN_DELETE_SELF:
            if rel == "":
                self.deleted = True  # no record: the root is not one of its entries
            return False
        if mask & ino.IN_MOVE_SELF and rel == "":
            self._watch_parent(inotify, users)  # the handle follows the directory
            return False
        if mask & (ino.IN_MOVE_SELF | ino.IN_UNMOUNT | ino.IN_Q_OVERFLOW) or not rec.name:
            return False
        if rel and not self.subtree:
            return False
        name = os.fsdecode(rec.name)
        if "\\" in name:  # a Linux name no Windows name can be: no record can say it
            self.overflowed = True
            return False
        child = f"{rel}\\{name}" if rel else name
        is_dir = bool(mask & ino.IN_ISDIR)
        parent_id = self.ids.get(rel, 0)
        if mask & ino.IN_CREATE:
            self.ids[child] = self._id(child)
            self.add(Change(_abi.FILE_ACTION_ADDED, child, is_dir, self.ids[child], parent_id))
            if is_dir and self.subtree:
                self._watch_tree(child, inotify, users, report=True)
        elif mask & ino.IN_DELETE:
            self.add(Change(_abi.FILE_ACTION_REMOVED, child, is_dir, self.ids.pop(child, 0),
                            parent_id))
            self._unwatch_tree(child, inotify, users)
        elif mask & (ino.IN_MODIFY | ino.IN_ATTRIB):
            self.add(Change(_abi.FILE_ACTION_MODIFIED, child, is_dir, self.ids.get(child, 0),
                            parent_id))
            return False  # the directory's entries did not change
        elif mask & ino.IN_MOVED_FROM:
            new = self._partner_rel(partner)
            used = new is not None
            file_id = self.ids.get(child, 0)
            if new is None:  # moved out of the tree
                self.add(Change(_abi.FILE_ACTION_REMOVED, child, is_dir, file_id, parent_id))
                self._unwatch_tree(child, inotify, users)
            else:
                new_parent = new.rpartition("\\")[0]
                if new_parent == rel:  # a rename in one directory: the OS pairs it
                    self.add(Change(_abi.FILE_ACTION_RENAMED_OLD_NAME, child, is_dir,
                                    file_id, parent_id))
                    self.add(Change(_abi.FILE_ACTION_RENAMED_NEW_NAME, new, is_dir,
                                    file_id, parent_id))
                else:  # to another directory: removed here, (that one changed,) added there
                    self.add(Change(_abi.FILE_ACTION_REMOVED, child, is_dir, file_id,
                                    parent_id))
                    self._modified(new_parent)
                    self.add(Change(_abi.FILE_ACTION_ADDED, new, is_dir, file_id,
                                    self.ids.get(new_parent, 0)))
                self._unwatch_tree(new, inotify, users)  # what it replaced
                if is_dir:
                    self._moved(child, new)
                self.ids[new] = file_id
                self.ids.pop(child, None)
                if is_dir and self.subtree:
                    # Its watches follow it; but one that could not be placed (it was
                    # renamed first) is placed now, and what it holds is told, which
                    # Windows' watch would have seen.
                    self._watch_tree(new, inotify, users, report=True)
        elif mask & ino.IN_MOVED_TO:  # moved in from outside the tree
            self._unwatch_tree(child, inotify, users)
            self.ids[child] = self._id(child)
            self.add(Change(_abi.FILE_ACTION_ADDED, child, is_dir, self.ids[child], parent_id))
            if is_dir and self.subtree:
                # What it holds is reported too, as in a new directory: Windows' watch
                # covers it at once, this one only once placed.
                self._watch_tree(child, inotify, users, report=True)
        else:
            return False
        self._modified(rel)
        return used

    def _partner_rel(self, partner: ino.Record | None) -> str | None:
        if partner is None or not partner.mask & ino.IN_MOVED_TO:
            return None
        rel = self.rel_of.get(partner.wd)
        if rel is None or (rel and not self.subtree):
            return None
        name = os.fsdecode(partner.name)
        if "\\" in name:
            return None  # (see apply: reported when the MOVED_TO is applied itself)
        return f"{rel}\\{name}" if rel else name

    def _modified(self, rel: str) -> None:
        """A directory's entries changed: its own last-write time did (none for the root)."""
        if rel:
            self.add(Change(_abi.FILE_ACTION_MODIFIED, rel, True, self.ids.get(rel, 0),
                            self.ids.get(rel.rpartition("\\")[0], 0)))

    def take(self) -> tuple[list[Change], bool]:
        """The records gathered and whether they overflowed; the gathering starts over."""
        out, lost = self.collected, self.overflowed
        self.collected, self.size, self.overflowed = [], 0, False
        return out, lost


def drop(wd: int, user: Directory, inotify: ino.Inotify,
         users: dict[int, list[Directory]]) -> None:
    """``user`` no longer needs ``wd``; the last one to let go removes the watch."""
    held = users.get(wd)
    if held is None:
        return
    if user in held:
        held.remove(user)
    if not held:
        del users[wd]
        inotify.remove(wd)
        if user.port is not None:
            user.port.births.unwatched(wd)

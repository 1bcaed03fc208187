"""fanotify's ABI: flag values, the event layout, and their decoding into observations.

Pure Python, no system calls: tested with byte-exact events built from the
documented layout (``struct fanotify_event_metadata`` and the info records of
fanotify(7), ``struct file_handle`` of open_by_handle_at(2)).

With ``FAN_REPORT_DFID_NAME`` every event names a directory by its file handle and
an entry of it by name: a directory's own changes name the directory itself with
the name ``"."``. A directory is known by the key ``fsid + file handle``, the
bytes the kernel writes, so that finding its watch is one dictionary lookup.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from crosswatch.backend import (
    Action,
    EntryChange,
    Gone,
    Handle,
    Observation,
    Renamed,
    SubtreeLost,
)

# Events (the mask of fanotify_mark(2), and of each event read)
FAN_ACCESS = 0x00000001
FAN_MODIFY = 0x00000002
FAN_ATTRIB = 0x00000004
FAN_CLOSE_WRITE = 0x00000008
FAN_CLOSE_NOWRITE = 0x00000010
FAN_OPEN = 0x00000020
FAN_MOVED_FROM = 0x00000040
FAN_MOVED_TO = 0x00000080
FAN_CREATE = 0x00000100
FAN_DELETE = 0x00000200
FAN_DELETE_SELF = 0x00000400
FAN_MOVE_SELF = 0x00000800
FAN_Q_OVERFLOW = 0x00004000
FAN_RENAME = 0x10000000
FAN_ONDIR = 0x40000000

# fanotify_init(2) flags
FAN_CLOEXEC = 0x00000001
FAN_NONBLOCK = 0x00000002
FAN_CLASS_NOTIF = 0x00000000
FAN_UNLIMITED_QUEUE = 0x00000010
FAN_REPORT_FID = 0x00000200
FAN_REPORT_DIR_FID = 0x00000400
FAN_REPORT_NAME = 0x00000800
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME

# fanotify_mark(2) flags
FAN_MARK_ADD = 0x00000001
FAN_MARK_REMOVE = 0x00000002
FAN_MARK_FILESYSTEM = 0x00000100

# Info record types
INFO_DFID_NAME = 2
INFO_DFID = 3
INFO_OLD_DFID_NAME = 10
INFO_NEW_DFID_NAME = 12

METADATA_VERSION = 3
#: struct fanotify_event_metadata { u32 event_len; u8 vers, reserved; u16 metadata_len;
#: u64 mask; s32 fd; s32 pid; }
METADATA = struct.Struct("=IBBHQii")
#: struct fanotify_event_info_header { u8 info_type, pad; u16 len; }, then for the fid
#: records __kernel_fsid_t fsid (two s32) and a struct file_handle.
INFO_HEADER = struct.Struct("=BBH")
#: struct file_handle { u32 handle_bytes; s32 handle_type; unsigned char f_handle[]; }
FILE_HANDLE = struct.Struct("=Ii")
FSID_SIZE = 8
#: The largest f_handle the kernel gives (MAX_HANDLE_SZ).
MAX_HANDLE_SZ = 128

#: Entry changes and a directory's own fate, asked of every mark; FAN_RENAME where the
#: kernel has it (Linux 5.17), the two cookie-less halves otherwise.
BASE_MASK = FAN_CREATE | FAN_DELETE | FAN_MODIFY | FAN_ATTRIB | FAN_DELETE_SELF | FAN_ONDIR
RENAME_MASK = FAN_RENAME
MOVE_MASK = FAN_MOVED_FROM | FAN_MOVED_TO

_ENCODING, _ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def fsid_bytes(f_fsid: int) -> bytes:
    """The kernel's ``__kernel_fsid_t`` for a file system, from ``os.statvfs().f_fsid``.

    The C library packs the two 32-bit words of ``statfs``'s ``f_fsid`` into one
    number, the first in the low half.
    """
    return struct.pack("=II", f_fsid & 0xFFFFFFFF, (f_fsid >> 32) & 0xFFFFFFFF)


class Event(NamedTuple):
    """One event as read: its mask, the process that caused it, and its fid records."""

    mask: int
    pid: int
    records: tuple[tuple[int, bytes, bytes], ...]
    """(info type, directory key, entry name) for each fid record."""


class Kept:
    """Events about directories not watched, by directory key, at most ``bound`` of them.

    Past the bound, all are dropped together: a flood elsewhere on the file system
    must not grow memory.
    """

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._by_key: dict[bytes, list[Event]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: bytes, event: Event) -> None:
        if self._count >= self.bound:
            self.clear()
        self._by_key.setdefault(key, []).append(event)
        self._count += 1

    def pop(self, key: bytes) -> list[Event]:
        """The events kept about the directory ``key``, no longer kept."""
        found = self._by_key.pop(key, None)
        if found is None:
            return []
        self._count -= len(found)
        return found

    def clear(self) -> None:
        self._by_key.clear()
        self._count = 0


def events(buf: bytes) -> Iterator[Event]:
    """The events in a buffer read from a fanotify descriptor, in order."""
    offset, end = 0, len(buf)
    header = METADATA.size
    while offset + header <= end:
        event_len, _vers, _, metadata_len, mask, _fd, pid = METADATA.unpack_from(buf, offset)
        if event_len < header:  # a malformed event: nothing after it can be trusted
            return
        records = []
        at, stop = offset + metadata_len, min(offset + event_len, end)
        while at + INFO_HEADER.size <= stop:
            info_type, _, length = INFO_HEADER.unpack_from(buf, at)
            if length < INFO_HEADER.size:
                break
            if info_type in (INFO_DFID_NAME, INFO_DFID, INFO_OLD_DFID_NAME, INFO_NEW_DFID_NAME):
                records.append(_fid_record(buf, at, length, info_type))
            at += length
        yield Event(mask, pid, tuple(records))
        offset += event_len


def _fid_record(buf: bytes, at: int, length: int, info_type: int) -> tuple[int, bytes, bytes]:
    """(type, fsid + file handle, name) of one fid record starting at ``at``."""
    start = at + INFO_HEADER.size
    handle_bytes, _ = FILE_HANDLE.unpack_from(buf, start + FSID_SIZE)
    key_end = start + FSID_SIZE + FILE_HANDLE.size + handle_bytes
    name = b""
    if info_type != INFO_DFID:
        raw = buf[key_end : at + length]
        nul = raw.find(0)  # the name ends in a NUL, padded to an alignment
        name = raw if nul < 0 else raw[:nul]
    return info_type, bytes(buf[start:key_end]), name


def _name(raw: bytes) -> str:
    return raw.decode(_ENCODING, _ERRORS)  # as os.fsdecode


#: Masks of one change to an entry (maybe with FAN_ONDIR): by far the most common.
_SINGLE = {
    FAN_CREATE: Action.CREATED,
    FAN_DELETE: Action.DELETED,
    FAN_MODIFY: Action.MODIFIED,
    FAN_ATTRIB: Action.ATTRIB,
    FAN_MOVED_FROM: Action.MOVED_FROM,
    FAN_MOVED_TO: Action.MOVED_TO,
}
_GONE_BITS = FAN_DELETE | FAN_MOVED_FROM


def _entry_actions(mask: int) -> list[Action]:
    """The actions a mask of merged changes to one entry stands for.

    The kernel merges events about the same entry that wait unread, and the merged
    mask keeps no order. Where the entry went away at some point (a delete or a
    move away among them), the engine is told so: it then trusts what the disk
    shows now, whatever the order was. Otherwise it was created (if at all) before
    it was changed.
    """
    single = _SINGLE.get(mask & ~FAN_ONDIR)
    if single is not None:
        return [single]
    out = []
    if mask & _GONE_BITS:
        out.append(Action.DELETED)
    elif mask & (FAN_CREATE | FAN_MOVED_TO):
        out.append(Action.CREATED)
    if mask & FAN_MODIFY:
        out.append(Action.MODIFIED)
    if mask & FAN_ATTRIB:
        out.append(Action.ATTRIB)
    return out


def observations(
    buf: bytes,
    dirs: Mapping[bytes, Handle],
    selves: Mapping[tuple[bytes, bytes], Handle],
    unknown: Kept | None = None,
) -> list[Observation]:
    """The observations a buffer of events stands for, in order.

    ``dirs`` maps the key of each watched directory to its handle; events about
    any other directory are dropped (a filesystem mark sees the whole file
    system), or kept in ``unknown`` under that directory's key if given (see
    :func:`replay`). ``selves`` maps each entry watched for its own fate to that
    watch's handle: a directory as (its own key, ``"."``), anything else as (the
    key of its parent, its name).
    """
    return replay(events(buf), dirs, selves, unknown)


def replay(
    read: Iterable[Event],
    dirs: Mapping[bytes, Handle],
    selves: Mapping[tuple[bytes, bytes], Handle],
    unknown: Kept | None = None,
    *,
    late: bool = False,
) -> list[Observation]:
    """The observations of events already read, as :func:`observations` gives them.

    A directory made a moment ago is watched only once the engine has applied its
    creation, after the events that followed were read: those about its entries
    were kept in ``unknown`` and are given again (``late``), now that it is known,
    so that their pids are not lost. A rename given late is never paired: its other
    end may have been applied already, or the name taken since by another entry
    that the directory's listing found, so each end is only looked at.
    """
    out: list[Observation] = []
    get = dirs.get
    for event in read:
        mask, pid, records = event
        if mask & FAN_Q_OVERFLOW:
            out.append(SubtreeLost(None))
            continue
        is_dir = bool(mask & FAN_ONDIR)
        if mask & FAN_RENAME:
            _rename(out, event, is_dir, dirs, selves, unknown, paired=not late)
            continue
        for info_type, key, raw in records:
            if info_type != INFO_DFID_NAME:
                continue
            handle = get(key)
            if handle is None and unknown is not None:
                unknown.add(key, event)
            if raw == b".":
                if handle is not None:
                    _self(out, handle, mask)
                watched = selves.get((key, raw)) if selves else None
                if watched is not None and mask & (FAN_DELETE_SELF | FAN_MOVE_SELF):
                    fate = Action.DELETED if mask & FAN_DELETE_SELF else Action.MOVED_FROM
                    out.append(EntryChange(watched, "", fate, True))
                continue
            if selves and mask & (_GONE_BITS | FAN_MOVED_TO):
                watched = selves.get((key, raw))
                if watched is not None:
                    fate = Action.MOVED_FROM if mask == FAN_MOVED_FROM else Action.DELETED
                    out.append(EntryChange(watched, "", fate, is_dir))
            if handle is None:
                continue
            name = _name(raw)
            for action in _entry_actions(mask):
                out.append(EntryChange(handle, name, action, is_dir, None, pid))
    return out


def _self(out: list[Observation], handle: Handle, mask: int) -> None:
    """A watched directory's own changes: its attributes, its deletion."""
    if mask & FAN_ATTRIB:
        out.append(EntryChange(handle, "", Action.ATTRIB, True))
    if mask & FAN_DELETE_SELF:
        out.append(EntryChange(handle, "", Action.DELETED, True))
        out.append(Gone(handle))


def _rename(
    out: list[Observation],
    event: Event,
    is_dir: bool,
    dirs: Mapping[bytes, Handle],
    selves: Mapping[tuple[bytes, bytes], Handle],
    unknown: Kept | None,
    *,
    paired: bool,
) -> None:
    """Both ends of a rename, paired by the kernel (unless not ``paired``).

    An end outside every watched directory makes the other one a deletion or a
    creation: no partner will come, so nothing waits for one.
    """
    _, pid, records = event
    old = new = None
    for info_type, key, raw in records:
        if info_type == INFO_OLD_DFID_NAME:
            old = (key, raw)
        elif info_type == INFO_NEW_DFID_NAME:
            new = (key, raw)
    if old is None or new is None:
        return
    if selves:  # an entry watched for its fate left, or another took its place
        for end, fate in ((old, Action.MOVED_FROM), (new, Action.DELETED)):
            watched = selves.get(end)
            if watched is not None:
                out.append(EntryChange(watched, "", fate, is_dir))
    old_handle, new_handle = dirs.get(old[0]), dirs.get(new[0])
    if unknown is not None:
        for handle, end in ((old_handle, old), (new_handle, new)):
            if handle is None:
                unknown.add(end[0], event)
    if paired and old_handle is not None and new_handle is not None:
        out.append(Renamed(old_handle, _name(old[1]), new_handle, _name(new[1]), is_dir, pid))
        return
    if old_handle is not None:
        out.append(EntryChange(old_handle, _name(old[1]), Action.DELETED, is_dir, None, pid))
    if new_handle is not None:
        out.append(EntryChange(new_handle, _name(new[1]), Action.CREATED, is_dir, None, pid))

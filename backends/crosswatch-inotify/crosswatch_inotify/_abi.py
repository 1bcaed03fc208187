"""inotify's ABI: flag values and the event record layout, and their decoding.

Pure Python, no system calls: tested with byte-exact records built from the
documented layout (``struct inotify_event`` in inotify(7)).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator

from crosswatch.backend import Action, EntryChange, Gone, Observation, SubtreeLost

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_MASK_CREATE = 0x10000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000

IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

#: What every watch asks for: changes to entries, and the watched directory's own fate.
BASE_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_MODIFY
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR  # a directory replaced by a file between listing and watching: refused
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK  # no events for files already unlinked but still open
)
#: A watch of a directory above a root (or a link on the way): its own fate only. Added
#: to the mask the inode may have already in this instance, never replacing it.
SELF_MASK = IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_MASK_ADD
ACCESS_MASK = IN_OPEN | IN_ACCESS | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE

#: struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; }
HEADER = struct.Struct("=iIII")

_ACTIONS = (
    (IN_CREATE, Action.CREATED),
    (IN_DELETE, Action.DELETED),
    (IN_MODIFY, Action.MODIFIED),
    (IN_ATTRIB, Action.ATTRIB),
    (IN_MOVED_FROM, Action.MOVED_FROM),
    (IN_MOVED_TO, Action.MOVED_TO),
    (IN_OPEN, Action.OPENED),
    (IN_ACCESS, Action.ACCESSED),
    (IN_CLOSE_WRITE, Action.CLOSED_WRITE),
    (IN_CLOSE_NOWRITE, Action.CLOSED_NOWRITE),
)


def records(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(wd, mask, cookie, name) for each record in a buffer read from the descriptor."""
    offset, end = 0, len(buf)
    size = HEADER.size
    unpack = HEADER.unpack_from
    while offset + size <= end:
        wd, mask, cookie, length = unpack(buf, offset)
        offset += size
        name = buf[offset : offset + length]
        nul = name.find(0)  # the kernel pads names with NULs to an alignment
        yield wd, mask, cookie, name if nul < 0 else name[:nul]
        offset += length


#: Masks with one entry action (and maybe IN_ISDIR): by far the most common records.
_SINGLE = {bit: action for bit, action in _ACTIONS}
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def observations(buf: bytes) -> list[Observation]:
    """The observations a buffer of records stands for, in order."""
    out: list[Observation] = []
    append = out.append
    for wd, mask, cookie, raw in records(buf):
        is_dir = bool(mask & IN_ISDIR)
        single = _SINGLE.get(mask & ~IN_ISDIR)
        if single is not None:
            name = raw.decode(_FS_ENCODING, _FS_ERRORS)  # as os.fsdecode
            append(EntryChange(wd, name, single, is_dir, cookie or None))
            continue
        if mask & IN_Q_OVERFLOW:
            append(SubtreeLost(None))
            continue
        if mask & IN_IGNORED:  # the watch is gone (rm_watch, deletion, unmount)
            append(Gone(wd))
            continue
        if mask & IN_UNMOUNT:
            continue  # IN_IGNORED follows for the same watch
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            action = Action.DELETED if mask & IN_DELETE_SELF else Action.MOVED_FROM
            append(EntryChange(wd, "", action, True))
            continue
        name = raw.decode(_FS_ENCODING, _FS_ERRORS)
        for bit, action in _ACTIONS:
            if mask & bit:
                append(EntryChange(wd, name, action, is_dir, cookie or None))
    return out

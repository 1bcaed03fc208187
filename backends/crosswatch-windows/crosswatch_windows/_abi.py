"""ReadDirectoryChangesW's ABI: constants, the two record layouts, and their decoding.

Pure Python, no system calls: tested on every OS with byte-exact buffers built from
the documented layouts (``FILE_NOTIFY_INFORMATION`` and
``FILE_NOTIFY_EXTENDED_INFORMATION`` in winnt.h). A buffer is a chain of records,
each starting on a 4-byte boundary, linked by ``NextEntryOffset`` (0 ends it).
Every length and offset is checked before it is used, so a buffer cut short or
garbled raises :class:`GarbledBufferError`: never an ``IndexError``, never a loop.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import struct
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from crosswatch import CrosswatchError, CrosswatchWarning
from crosswatch.backend import (
    Action,
    DirDirty,
    EntryChange,
    Observation,
    Renamed,
    SubtreeLost,
)

FILE_ACTION_ADDED = 0x1
FILE_ACTION_REMOVED = 0x2
FILE_ACTION_MODIFIED = 0x3
FILE_ACTION_RENAMED_OLD_NAME = 0x4
FILE_ACTION_RENAMED_NEW_NAME = 0x5
#: A named stream of a file was added, removed or changed (ntifs.h): the file changed.
FILE_ACTION_ADDED_STREAM = 0x6
FILE_ACTION_REMOVED_STREAM = 0x7
FILE_ACTION_MODIFIED_STREAM = 0x8

FILE_NOTIFY_CHANGE_FILE_NAME = 0x001
FILE_NOTIFY_CHANGE_DIR_NAME = 0x002
FILE_NOTIFY_CHANGE_ATTRIBUTES = 0x004
FILE_NOTIFY_CHANGE_SIZE = 0x008
FILE_NOTIFY_CHANGE_LAST_WRITE = 0x010
FILE_NOTIFY_CHANGE_LAST_ACCESS = 0x020
FILE_NOTIFY_CHANGE_CREATION = 0x040
FILE_NOTIFY_CHANGE_SECURITY = 0x100
#: What every handle asks for: names, attributes, sizes, writes and creations.
NOTIFY_FILTER = (
    FILE_NOTIFY_CHANGE_FILE_NAME
    | FILE_NOTIFY_CHANGE_DIR_NAME
    | FILE_NOTIFY_CHANGE_ATTRIBUTES
    | FILE_NOTIFY_CHANGE_SIZE
    | FILE_NOTIFY_CHANGE_LAST_WRITE
    | FILE_NOTIFY_CHANGE_CREATION
)

#: READ_DIRECTORY_NOTIFY_INFORMATION_CLASS (minwinbase.h), for ReadDirectoryChangesExW.
READ_DIRECTORY_NOTIFY_INFORMATION = 1
READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION = 2

ERROR_SUCCESS = 0
#: A completed read whose changes did not fit: the directory must be enumerated again.
ERROR_NOTIFY_ENUM_DIR = 1022

FILE_ATTRIBUTE_DIRECTORY = 0x10

#: FILE_NOTIFY_INFORMATION: DWORD NextEntryOffset, Action, FileNameLength; WCHAR FileName[].
NOTIFY_HEADER = struct.Struct("<III")
#: FILE_NOTIFY_EXTENDED_INFORMATION: DWORD NextEntryOffset, Action; LARGE_INTEGER
#: CreationTime, LastModificationTime, LastChangeTime, LastAccessTime, AllocatedLength,
#: FileSize; DWORD FileAttributes, ReparsePointTag (a union with EaSize); LARGE_INTEGER
#: FileId, ParentFileId; DWORD FileNameLength; WCHAR FileName[]. Every field falls on
#: its natural alignment, so the name starts at byte 84 with no padding.
EXTENDED_HEADER = struct.Struct("<II6qIIQQI")


class FileNotifyInformation(ctypes.Structure):
    """The C layout, for a buffer handed to the OS; the decoder reads with ``struct``."""

    _fields_ = (
        ("NextEntryOffset", ctypes.c_uint32),
        ("Action", ctypes.c_uint32),
        ("FileNameLength", ctypes.c_uint32),
        ("FileName", ctypes.c_uint16 * 1),
    )


class FileNotifyExtendedInformation(ctypes.Structure):
    """The C layout of an extended record (file ids, sizes, times, attributes)."""

    _fields_ = (
        ("NextEntryOffset", ctypes.c_uint32),
        ("Action", ctypes.c_uint32),
        ("CreationTime", ctypes.c_int64),
        ("LastModificationTime", ctypes.c_int64),
        ("LastChangeTime", ctypes.c_int64),
        ("LastAccessTime", ctypes.c_int64),
        ("AllocatedLength", ctypes.c_int64),
        ("FileSize", ctypes.c_int64),
        ("FileAttributes", ctypes.c_uint32),
        ("ReparsePointTag", ctypes.c_uint32),
        ("FileId", ctypes.c_uint64),
        ("ParentFileId", ctypes.c_uint64),
        ("FileNameLength", ctypes.c_uint32),
        ("FileName", ctypes.c_uint16 * 1),
    )


class GarbledBufferError(CrosswatchError, ValueError):
    """A notification buffer that does not follow the documented layout.

    ``offset`` is where the bad record starts. The backend does not trust anything
    in such a buffer: it reports the root's subtree lost, and the engine rescans it.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"notification buffer garbled at byte {offset}: {message}")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Extended:
    """What an extended record adds: the entry's state when the change was recorded.

    Times are in 100-nanosecond units since 1601 (FILETIME), as the OS gives them.
    """

    creation_time: int
    last_modification_time: int
    last_change_time: int
    last_access_time: int
    allocated_length: int
    file_size: int
    attributes: int
    reparse_tag: int
    file_id: int
    parent_file_id: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attributes & FILE_ATTRIBUTE_DIRECTORY)


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record: its action code and its name, exactly as the OS gave them.

    ``name`` is relative to the watched directory, with ``\\`` between components.
    """

    action: int
    name: str
    extended: Extended | None = None


def records(buf: bytes | bytearray | memoryview, *, extended: bool = False) -> list[Record]:
    """The records of one completed read, in order; an empty buffer has none.

    ``buf`` holds exactly the bytes the read returned, no more.

    Raises :class:`GarbledBufferError` if a header or name runs past the end, a name
    length is odd, an offset is not a multiple of 4 or does not move past its own
    record (which is also what rules out loops), a name is not a relative path of
    non-empty components, or bytes enough for another record follow the last one.
    """
    data = bytes(buf)
    end = len(data)
    if not end:
        return []
    header = EXTENDED_HEADER if extended else NOTIFY_HEADER
    size = header.size
    out: list[Record] = []
    offset = 0
    while True:
        if offset + size > end:
            raise GarbledBufferError(
                f"a {size}-byte record header does not fit in the {end - offset} bytes left "
                "(the buffer was cut short, or an offset points past its end)",
                offset,
            )
        fields = header.unpack_from(data, offset)
        step, action, length = fields[0], fields[1], fields[-1]
        start = offset + size
        if length % 2:
            raise GarbledBufferError(
                f"the name length {length} is odd, but names are UTF-16 (2 bytes a unit)",
                offset,
            )
        if start + length > end:
            raise GarbledBufferError(
                f"the {length}-byte name runs {start + length - end} bytes past the end "
                "of the buffer (cut short?)",
                offset,
            )
        name = _name(data[start : start + length], offset)
        info = Extended(*fields[2:-1]) if extended else None
        out.append(Record(action, name, info))
        if step == 0:
            break
        if step % 4:
            raise GarbledBufferError(
                f"the next record's offset {step} is not a multiple of 4", offset
            )
        if step < size + length:
            raise GarbledBufferError(
                f"the next record's offset {step} falls inside this record "
                f"({size + length} bytes)",
                offset,
            )
        offset += step
    trailing = end - (start + length)
    if trailing >= size:
        raise GarbledBufferError(
            f"{trailing} bytes follow the last record, room for another: the chain of "
            "offsets ended early",
            offset,
        )
    return out


def _name(raw: bytes, offset: int) -> str:
    # Lone surrogates are kept, as Python keeps them in names it gets from Windows.
    name = raw.decode("utf-16-le", "surrogatepass")
    if not name:
        return name
    for part in name.split("\\"):
        if not part or part in (".", "..") or "/" in part or "\0" in part:
            raise GarbledBufferError(
                f"the name {name!r} is not a relative path of file names", offset
            )
    return name


_ENTRY_ACTIONS = {
    FILE_ACTION_ADDED: Action.CREATED,
    FILE_ACTION_REMOVED: Action.DELETED,
    FILE_ACTION_MODIFIED: Action.MODIFIED,
    FILE_ACTION_ADDED_STREAM: Action.MODIFIED,
    FILE_ACTION_REMOVED_STREAM: Action.MODIFIED,
    FILE_ACTION_MODIFIED_STREAM: Action.MODIFIED,
}


_STREAM_ACTIONS = frozenset(
    {FILE_ACTION_ADDED_STREAM, FILE_ACTION_REMOVED_STREAM, FILE_ACTION_MODIFIED_STREAM}
)


def _file_id(rec: Record) -> int:
    return rec.extended.file_id if rec.extended is not None else 0


def _first_half(rec: Record) -> bool:
    """Can ``rec`` begin a rename: an old name, or a removal with a file id?"""
    if rec.action == FILE_ACTION_RENAMED_OLD_NAME:
        return True
    return rec.action == FILE_ACTION_REMOVED and _file_id(rec) != 0


def _pairs(first: Record, second: Record) -> bool:
    """Is ``second`` the other half of the rename ``first`` began?"""
    if first.action == FILE_ACTION_RENAMED_OLD_NAME:
        return second.action == FILE_ACTION_RENAMED_NEW_NAME
    return second.action == FILE_ACTION_ADDED and _file_id(second) == _file_id(first) != 0


#: Records a move's addition may come after its removal: Windows reports the new
#: parent directory modified in between.
_BETWEEN = 2


def _second_half(found: Sequence[Record], i: int) -> int | None:
    """Where the rename that ``found[i]`` begins ends: an index, ``len(found)`` if
    it is the buffer's last record (the other half may start the next one), or None.

    An old name's new name comes right after it. A move's addition (same file id)
    may come after up to two modifications (of the directories involved), in the
    same buffer: Windows writes the records of one operation together. (A removal
    that ends a buffer with modifications is a deletion: most are, since Windows
    follows each by its directory's modification.)
    """
    first = found[i]
    if i + 1 == len(found):
        return len(found)
    limit = 1 if first.action == FILE_ACTION_RENAMED_OLD_NAME else 1 + _BETWEEN
    for j in range(i + 1, min(i + 1 + limit, len(found))):
        if _pairs(first, found[j]):
            return j
        if found[j].action != FILE_ACTION_MODIFIED:
            return None
    return None


class Translator:
    """Turns completed reads into observations, one translator per backend.

    A rename is an old-name record followed by its new-name record. Both in one
    buffer become one :class:`Renamed`. A pair split across two buffers of the same
    handle becomes ``MOVED_FROM`` and ``MOVED_TO`` with the same cookie, which the
    engine pairs; an old name whose new one never comes is a ``MOVED_FROM`` that the
    engine settles after its pair wait (deleted, unless the entry is back), and a
    new name without its old one is a ``MOVED_TO`` (moved in: created, with its
    contents). Cookies are unique within the translator.

    A move to another directory is not a rename to Windows: it reports the old name
    removed, the new parent modified and the new name added. With extended
    records, a removal followed by an addition of the same (non-zero) file id, with
    at most two modifications between them, is that move, and is paired the same
    way, in one buffer or across two; without file ids they stay a deletion and a
    creation, which is what the engine then reports.

    Names keep the OS's components and join them with ``sep``, the separator the
    engine splits a recursive backend's relative names on (``os.sep``: ``\\`` on
    Windows, where names pass unchanged). Windows file names hold neither ``\\`` nor
    ``/``, so the conversion loses nothing.
    """

    def __init__(self, sep: str = os.sep) -> None:
        self._sep = sep
        self._cookies = itertools.count(1)
        # handle -> (cookie, record) of a first half that ended the last buffer
        self._carried: dict[Hashable, tuple[int, Record]] = {}

    def completed(
        self,
        handle: Hashable,
        data: bytes | bytearray | memoryview,
        *,
        extended: bool = False,
        error: int = ERROR_SUCCESS,
    ) -> list[Observation]:
        """What one completed read on ``handle`` means.

        A zero-byte result (the OS's buffer overflowed and its contents were thrown
        away) and ``ERROR_NOTIFY_ENUM_DIR`` lose changes: ``SubtreeLost(handle)``, and
        the engine rescans the root. So does a garbled buffer, with a
        :class:`~crosswatch.CrosswatchWarning` that says what was wrong; none of its
        records is reported, since none can be trusted. Other errors (a handle closed,
        a root gone) are the driving layer's, which must not pass them here.
        """
        if error not in (ERROR_SUCCESS, ERROR_NOTIFY_ENUM_DIR):
            raise ValueError(f"Windows error {error} is not a notification result")
        if error == ERROR_NOTIFY_ENUM_DIR or not len(data):
            return [self.lost(handle)]
        try:
            found = records(data, extended=extended)
        except GarbledBufferError as exc:
            warnings.warn(
                f"{exc}; rescanning the tree watched there", CrosswatchWarning, stacklevel=2
            )
            return [self.lost(handle)]
        return self.observations(handle, found)

    def lost(self, handle: Hashable) -> SubtreeLost:
        """Changes below ``handle`` were lost; a rename half carried over is dropped too."""
        self._carried.pop(handle, None)
        return SubtreeLost(handle)

    def forget(self, handle: Hashable) -> None:
        """The handle is closed: nothing of it is carried to a next read."""
        self._carried.pop(handle, None)

    def observations(self, handle: Hashable, found: Sequence[Record]) -> list[Observation]:
        """The observations of one buffer's records, in order."""
        out: list[Observation] = []
        carried = self._carried.pop(handle, None)
        count = len(found)
        taken: set[int] = set()  # second halves already reported with their first
        i = 0
        while i < count:
            if i in taken:
                i += 1
                continue
            rec = found[i]
            name = self._path(rec.name)
            is_dir = rec.extended.is_dir if rec.extended is not None else None
            if _first_half(rec):
                j = _second_half(found, i)
                if j is not None and j < count:
                    after = found[j]
                    if after.extended is not None:
                        is_dir = after.extended.is_dir
                    out.append(Renamed(handle, name, handle, self._path(after.name), is_dir))
                    taken.add(j)
                    i += 1
                    continue
                if j is None and rec.action == FILE_ACTION_REMOVED:
                    out.append(EntryChange(handle, name, Action.DELETED, is_dir))
                    i += 1
                    continue
                cookie = next(self._cookies)
                out.append(EntryChange(handle, name, Action.MOVED_FROM, is_dir, cookie))
                if j is not None:  # the buffer ended before its other half
                    self._carried[handle] = (cookie, rec)
            elif i == 0 and carried is not None and _pairs(carried[1], rec):
                out.append(EntryChange(handle, name, Action.MOVED_TO, is_dir, carried[0]))
            elif rec.action == FILE_ACTION_RENAMED_NEW_NAME:
                cookie = next(self._cookies)
                out.append(EntryChange(handle, name, Action.MOVED_TO, is_dir, cookie))
            elif (action := _ENTRY_ACTIONS.get(rec.action)) is not None:
                if rec.action in _STREAM_ACTIONS:  # "file:stream": the file changed
                    parent, sep, last = name.rpartition(self._sep)
                    name = parent + sep + last.partition(":")[0]
                out.append(EntryChange(handle, name, action, is_dir))
            else:
                # An action this code does not know: the engine looks at the directory.
                parent = name.rpartition(self._sep)[0]
                out.append(DirDirty(handle, parent))
            i += 1
        return out

    def _path(self, name: str) -> str:
        return name if self._sep == "\\" else name.replace("\\", self._sep)

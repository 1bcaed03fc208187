"""The snapshot file: a versioned header, then every directory's entries, compressed.

Layout (integers little-endian)::

    magic    8 bytes   b"\\x89CWSNAP\\n"
    version  u16       FORMAT_VERSION
    header   u32 length, that many bytes of JSON (UTF-8), u32 CRC-32 of them
    body     one zlib stream: a block per directory, parents before children
    trailer  8 bytes   b"\\x89CWSEND\\n", then u64: the number of entries

A block holds one directory's entries, by column; names are relative to the
directory. The blocks of a root come in the order of a depth-first walk: the
root's own first, then, for each directory entry in the order it is listed, its
block and those below it. A reader rebuilds the tree with a stack, and no path is
stored whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import tempfile
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from ._errors import (
    NotASnapshotError,
    SnapshotCorruptError,
    SnapshotTruncatedError,
    SnapshotVersionError,
)

MAGIC = b"\x89CWSNAP\n"
END = b"\x89CWSEND\n"
FORMAT_VERSION = 1
#: How a file's identity is told on this platform: it must match to pair moves.
IDENTITY = "windows-file-id" if sys.platform == "win32" else "posix-dev-ino"

_PREAMBLE = struct.Struct("<8sHI")  # magic, version, header length
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<8sQ")
_BLOCK = struct.Struct("<BII")  # flags, entries, bytes of names
_WIDE = 1  # flag: inode numbers do not fit 64 bits (ReFS): 16 bytes each
_U32_CODE = next(code for code in "IL" if array(code).itemsize == 4)
_BIG_ENDIAN = sys.byteorder == "big"


class Block(NamedTuple):
    """One directory's entries, column by column.

    ``dev`` is 0 for an entry on its directory's device, else its device + 1.
    ``size`` -1 means the content is known only as of ``mtime``: a later write is
    a change. ``mode`` 0 means its mode, owner and group are unknown.
    """

    names: list[str]
    kinds: bytes
    ino: Sequence[int]
    dev: Sequence[int]
    size: Sequence[int]
    mtime: Sequence[int]
    mode: Sequence[int]
    uid: Sequence[int]
    gid: Sequence[int]


@dataclass(frozen=True)
class RootInfo:
    """One root of a snapshot: its path as given, and its own state."""

    path: str
    recursive: bool
    dev: int
    ino: int
    mode: int
    uid: int
    gid: int
    directories: int = 0
    entries: int = 0


@dataclass(frozen=True)
class Header:
    """What a snapshot says of itself, before its entries."""

    roots: list[RootInfo]
    filters: dict[str, Any]
    taken_ns: int
    written_by: str
    identity: str = IDENTITY
    version: int = FORMAT_VERSION
    entries: int = field(default=0)


# ---------------------------------------------------------------- writing


def _column(code: str, values: Sequence[int]) -> bytes:
    if isinstance(values, array) and values.typecode == code:
        column: array[int] = values
    else:
        column = array(code, values)
    if _BIG_ENDIAN:
        column = array(code, column)
        column.byteswap()
    return column.tobytes()


def encode(block: Block) -> bytes:
    """The bytes of one block."""
    names = os.fsencode("\0".join(block.names))
    flags = 0
    try:
        inodes = _column("Q", block.ino)
    except OverflowError:
        flags |= _WIDE
        inodes = b"".join(i.to_bytes(16, "little") for i in block.ino)
    return b"".join((
        _BLOCK.pack(flags, len(block.names), len(names)), names, block.kinds, inodes,
        _column("Q", block.dev), _column("q", block.size), _column("q", block.mtime),
        _column(_U32_CODE, block.mode), _column(_U32_CODE, block.uid),
        _column(_U32_CODE, block.gid),
    ))


def _header_bytes(header: Header) -> bytes:
    data = asdict(header)
    del data["version"]  # in the preamble: read before the header is trusted
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode()


def write(file: str, header: Header, blocks: Iterable[bytes], *, level: int = 6) -> None:
    """Write a snapshot to ``file`` atomically: a temporary file in the same
    directory, synced, then renamed over ``file``; nothing is left on failure."""
    meta = _header_bytes(header)
    folder = os.path.dirname(os.path.abspath(file))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(file)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(_PREAMBLE.pack(MAGIC, header.version, len(meta)))
            out.write(meta)
            out.write(_U32.pack(zlib.crc32(meta)))
            packer = zlib.compressobj(level)
            for block in blocks:
                out.write(packer.compress(block))
            out.write(packer.flush())
            out.write(_TRAILER.pack(END, header.entries))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(folder)


def _sync_dir(folder: str) -> None:
    """Make the rename durable where directories can be synced (not Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading


def truncated(file: str, what: str) -> SnapshotTruncatedError:
    """The error for a snapshot whose ``what`` ends too soon."""
    return SnapshotTruncatedError(
        f"{file!r} is a truncated snapshot ({what} is cut short): it was not written to "
        "the end; take a new snapshot"
    )


def corrupt(file: str, what: str) -> SnapshotCorruptError:
    """The error for a snapshot damaged as ``what`` says."""
    return SnapshotCorruptError(f"{file!r} is a damaged snapshot ({what}); take a new snapshot")


def _parse_header(file: str, data: bytes) -> tuple[Header, int]:
    """The header of snapshot bytes ``data``, and where its body begins."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data[: len(MAGIC)]):
            raise truncated(file, "the file")
        raise NotASnapshotError(
            f"{file!r} is not a crosswatch snapshot; give a file written by "
            "'crosswatch snapshot' or crosswatch.snapshot()"
        )
    if len(data) < _PREAMBLE.size:
        raise truncated(file, "the preamble")
    _, version, length = _PREAMBLE.unpack_from(data)
    if version > FORMAT_VERSION:
        raise SnapshotVersionError(
            f"{file!r} was written in snapshot format {version}, newer than this crosswatch "
            f"reads (up to {FORMAT_VERSION}); upgrade crosswatch, or take a new snapshot"
        )
    start = _PREAMBLE.size
    end = start + length
    if len(data) < end + _U32.size:
        raise truncated(file, "the header")
    meta = data[start:end]
    if _U32.unpack_from(data, end)[0] != zlib.crc32(meta):
        raise corrupt(file, "its header's checksum does not match")
    try:
        fields = json.loads(meta)
        roots = [RootInfo(**r) for r in fields.pop("roots")]
        header = Header(roots=roots, version=version, **fields)
    except (ValueError, TypeError, KeyError) as exc:
        raise corrupt(file, f"its header cannot be read: {exc}") from None
    return header, end + _U32.size


def read_header(file: str) -> Header:
    """What ``file`` says of itself (the entries are not read)."""
    with open(file, "rb") as f:
        head = f.read(_PREAMBLE.size)
        if len(head) == _PREAMBLE.size:
            head += f.read(_PREAMBLE.unpack_from(head)[2] + _U32.size)
    return _parse_header(file, head)[0]


def read(file: str) -> tuple[Header, Iterator[Block]]:
    """The header of ``file`` and its blocks; every check that needs the whole body
    (checksum, end, count) is made before this returns."""
    with open(file, "rb") as f:
        data = f.read()
    header, start = _parse_header(file, data)
    unpacker = zlib.decompressobj()
    try:
        body = unpacker.decompress(memoryview(data)[start:])
    except zlib.error:
        raise corrupt(file, "its entries do not decompress") from None
    if not unpacker.eof:
        raise truncated(file, "the entries")
    tail = unpacker.unused_data
    if len(tail) < _TRAILER.size and END.startswith(tail[: len(END)]):
        raise truncated(file, "the end marker")
    if len(tail) != _TRAILER.size or not tail.startswith(END):  # (END is 8 bytes)
        raise corrupt(file, "its end marker is wrong")
    count = _TRAILER.unpack(tail)[1]
    if count != header.entries:
        raise corrupt(file, "its entry count does not match its header")
    blocks = list(_blocks(file, body))
    if sum(len(b.names) for b in blocks) != count:
        raise corrupt(file, "it holds another number of entries than it says")
    return header, iter(blocks)


def _blocks(file: str, body: bytes) -> Iterator[Block]:
    view = memoryview(body)
    at = 0
    try:
        while at < len(body):
            flags, count, length = _BLOCK.unpack_from(body, at)
            at += _BLOCK.size
            names = os.fsdecode(bytes(view[at : at + length])).split("\0") if count else []
            at += length
            if len(names) != count:
                raise ValueError("names and entries differ in number")
            kinds = bytes(view[at : at + count])
            at += count
            if flags & _WIDE:
                ino: Sequence[int] = [
                    int.from_bytes(view[at + 16 * i : at + 16 * i + 16], "little")
                    for i in range(count)
                ]
                at += 16 * count
            else:
                ino, at = _take("Q", view, at, count)
            dev, at = _take("Q", view, at, count)
            size, at = _take("q", view, at, count)
            mtime, at = _take("q", view, at, count)
            mode, at = _take(_U32_CODE, view, at, count)
            uid, at = _take(_U32_CODE, view, at, count)
            gid, at = _take(_U32_CODE, view, at, count)
            if at > len(body):
                raise ValueError("a block runs past the end")
            yield Block(names, kinds, ino, dev, size, mtime, mode, uid, gid)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise corrupt(file, f"a directory's entries cannot be read: {exc}") from None


def _take(code: str, view: memoryview, at: int, count: int) -> tuple[array[int], int]:
    column = array(code)
    end = at + column.itemsize * count
    if end > len(view):
        raise ValueError("a block runs past the end")
    column.frombytes(view[at:end])
    if _BIG_ENDIAN:
        column.byteswap()
    return column, end

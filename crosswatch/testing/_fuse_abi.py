"""The FUSE kernel protocol's messages, as ``/dev/fuse`` carries them (Linux).

Layouts and numbers are those of the kernel's ``include/uapi/linux/fuse.h``, for
protocol 7.31, the version :class:`~crosswatch.testing.FoldingFS` answers with.
A request is a ``fuse_in_header`` and the operation's own structure, then names
(NUL-terminated) or data; a reply is a ``fuse_out_header`` (length, ``-errno``,
the request's ``unique``) and the operation's reply structure. Pure: no I/O here.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import NamedTuple

MAJOR = 7
MINOR = 31
ROOT_ID = 1

# enum fuse_opcode (the ones answered; any other is answered ENOSYS)
LOOKUP = 1
FORGET = 2  # no reply
GETATTR = 3
SETATTR = 4
READLINK = 5
SYMLINK = 6
MKNOD = 8
MKDIR = 9
UNLINK = 10
RMDIR = 11
RENAME = 12
LINK = 13
OPEN = 14
READ = 15
WRITE = 16
STATFS = 17
RELEASE = 18
FSYNC = 20
FLUSH = 25
INIT = 26
OPENDIR = 27
READDIR = 28
RELEASEDIR = 29
FSYNCDIR = 30
ACCESS = 34
CREATE = 35
INTERRUPT = 36  # no reply (unless EAGAIN)
DESTROY = 38
BATCH_FORGET = 42  # no reply
RENAME2 = 45

NO_REPLY = frozenset({FORGET, INTERRUPT, BATCH_FORGET})

# fuse_setattr_in.valid
FATTR_MODE = 1 << 0
FATTR_UID = 1 << 1
FATTR_GID = 1 << 2
FATTR_SIZE = 1 << 3
FATTR_ATIME = 1 << 4
FATTR_MTIME = 1 << 5
FATTR_FH = 1 << 6
FATTR_ATIME_NOW = 1 << 7
FATTR_MTIME_NOW = 1 << 8

# fuse_init_in/out.flags
FUSE_BIG_WRITES = 1 << 5

# fuse_getattr_in.getattr_flags
FUSE_GETATTR_FH = 1 << 0

# fuse_fsync_in.fsync_flags
FUSE_FSYNC_FDATASYNC = 1 << 0

# renameat2 flags (RENAME2)
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1

IN_HEADER = struct.Struct("=IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, ext, pad
OUT_HEADER = struct.Struct("=IiQ")  # len, error (-errno), unique
INIT_IN = struct.Struct("=IIII")  # major, minor, max_readahead, flags (more may follow)
# major, minor, max_readahead, flags, max_background, congestion_threshold, max_write,
# time_gran, max_pages, map_alignment, unused[8]
INIT_OUT = struct.Struct("=IIIIHHIIHH32x")
# ino, size, blocks, atime, mtime, ctime, atimensec, mtimensec, ctimensec, mode, nlink,
# uid, gid, rdev, blksize, flags
ATTR = struct.Struct("=QQQQQQIIIIIIIIII")
ENTRY_OUT = struct.Struct("=QQQQII")  # nodeid, generation, entry/attr valid (s, ns); ATTR
ATTR_OUT = struct.Struct("=QII")  # attr_valid, attr_valid_nsec, dummy; then ATTR
GETATTR_IN = struct.Struct("=IIQ")  # getattr_flags, dummy, fh
# valid, padding, fh, size, lock_owner, atime, mtime, ctime, atimensec, mtimensec,
# ctimensec, mode, unused4, uid, gid, unused5
SETATTR_IN = struct.Struct("=IIQQQQQQIIIIIIII")
MKNOD_IN = struct.Struct("=IIII")  # mode, rdev, umask, padding
MKDIR_IN = struct.Struct("=II")  # mode, umask
RENAME_IN = struct.Struct("=Q")  # newdir
RENAME2_IN = struct.Struct("=QII")  # newdir, flags, padding
LINK_IN = struct.Struct("=Q")  # oldnodeid
OPEN_IN = struct.Struct("=II")  # flags, open_flags
CREATE_IN = struct.Struct("=IIII")  # flags, mode, umask, open_flags
OPEN_OUT = struct.Struct("=QII")  # fh, open_flags, padding
RELEASE_IN = struct.Struct("=QIIQ")  # fh, flags, release_flags, lock_owner
READ_IN = struct.Struct("=QQIIQII")  # fh, offset, size, read_flags, lock_owner, flags, pad
WRITE_IN = struct.Struct("=QQIIQII")  # fh, offset, size, write_flags, lock_owner, flags, pad
WRITE_OUT = struct.Struct("=II")  # size, padding
FSYNC_IN = struct.Struct("=QII")  # fh, fsync_flags, padding
ACCESS_IN = struct.Struct("=II")  # mask, padding
FORGET_IN = struct.Struct("=Q")  # nlookup
BATCH_FORGET_IN = struct.Struct("=II")  # count, dummy; then count FORGET_ONE
FORGET_ONE = struct.Struct("=QQ")  # nodeid, nlookup
# blocks, bfree, bavail, files, ffree, bsize, namelen, frsize, padding, spare[6]
STATFS_OUT = struct.Struct("=QQQQQIIII24x")
DIRENT = struct.Struct("=QQII")  # ino, off (of the next entry), namelen, type; then name


class ProtocolError(ValueError):
    """A request too short or malformed to act on: answered ``EIO``."""


class Request(NamedTuple):
    """One request: its header's fields and the bytes after the header."""

    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int
    body: bytes


def parse_request(buf: bytes) -> Request:
    """Split one message read from ``/dev/fuse``; :class:`ProtocolError` if it is cut."""
    if len(buf) < IN_HEADER.size:
        raise ProtocolError(f"request of {len(buf)} bytes, shorter than its header")
    length, opcode, unique, nodeid, uid, gid, pid, _ext, _pad = IN_HEADER.unpack_from(buf)
    if length != len(buf):
        raise ProtocolError(f"request says {length} bytes, {len(buf)} were read")
    return Request(opcode, unique, nodeid, uid, gid, pid, bytes(buf[IN_HEADER.size :]))


def unique_of(buf: bytes) -> int | None:
    """The ``unique`` of a message however broken, or None if even that is missing."""
    if len(buf) < 16:
        return None
    return int(struct.unpack_from("=Q", buf, 8)[0])


def take(st: struct.Struct, body: bytes) -> tuple[tuple[int, ...], bytes]:
    """Unpack ``st`` from the front of ``body``; the values and what follows."""
    if len(body) < st.size:
        raise ProtocolError(f"body of {len(body)} bytes, {st.size} needed")
    return st.unpack_from(body), body[st.size :]


def names(body: bytes, count: int) -> list[bytes]:
    """The ``count`` NUL-terminated names at the front of ``body``."""
    parts = body.split(b"\0", count)
    if len(parts) <= count or any(not p for p in parts[:count]):
        raise ProtocolError(f"expected {count} NUL-terminated names")
    return parts[:count]


def reply(unique: int, error: int = 0, payload: bytes = b"") -> bytes:
    """A whole reply message; ``error`` is a positive errno (sent negated) or 0."""
    return OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload


def attr(st: os.stat_result, nlink: int | None = None) -> bytes:
    """``struct fuse_attr`` for a backing entry's ``lstat``/``fstat`` (``nlink``: instead)."""
    return ATTR.pack(
        st.st_ino, st.st_size, st.st_blocks,
        max(0, int(st.st_atime_ns // 10**9)), max(0, int(st.st_mtime_ns // 10**9)),
        max(0, int(st.st_ctime_ns // 10**9)),
        st.st_atime_ns % 10**9, st.st_mtime_ns % 10**9, st.st_ctime_ns % 10**9,
        st.st_mode, st.st_nlink if nlink is None else nlink, st.st_uid, st.st_gid,
        st.st_rdev & 0xFFFFFFFF,
        st.st_blksize, 0,
    )


def entry_out(nodeid: int, st: os.stat_result) -> bytes:
    """``struct fuse_entry_out``: timeouts 0, so the kernel asks again at every use."""
    return ENTRY_OUT.pack(nodeid, 0, 0, 0, 0, 0) + attr(st)


def attr_out(st: os.stat_result, nlink: int | None = None) -> bytes:
    """``struct fuse_attr_out`` with timeout 0."""
    return ATTR_OUT.pack(0, 0, 0) + attr(st, nlink)


def dirent_type(mode: int) -> int:
    """The ``DT_*`` value of a ``st_mode`` (its file type bits, shifted)."""
    return stat.S_IFMT(mode) >> 12


def dirent(ino: int, next_offset: int, dtype: int, name: bytes) -> bytes:
    """One ``struct fuse_dirent`` with its name, padded to 8 bytes."""
    raw = DIRENT.pack(ino, next_offset, len(name), dtype) + name
    return raw + b"\0" * (-len(raw) % 8)

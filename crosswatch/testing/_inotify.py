"""Raw inotify, the ground the testing kit's OS emulations stand on (Linux only).

The kqueue, FSEvents and ReadDirectoryChangesW emulations turn what the Linux
kernel reports into what those OSes would report, so that the same backend code
that runs on macOS, BSD or Windows runs here against real files. They need the
kernel's records as they are, not the inotify backend's observations: this is
just ``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch`` and the
records read back.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import sys
from typing import Any, NamedTuple

IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
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
IN_ISDIR = 0x40000000

#: Every change to a directory's entries and to the entry's own data, names and fate.
CHANGES = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)

_NONBLOCK_CLOEXEC = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_HEADER = struct.Struct("=iIII")  # struct inotify_event: wd, mask, cookie, len
_READ_SIZE = 64 * 1024


class Record(NamedTuple):
    """One ``struct inotify_event``: the name without its NUL padding."""

    wd: int
    mask: int
    cookie: int
    name: bytes


class Inotify:
    """One inotify instance, non-blocking; raises ``OSError`` as the calls fail."""

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, "the OS emulations stand on inotify: Linux only")
        self._libc: Any = ctypes.CDLL(None, use_errno=True)
        self._fd = self._check(self._libc.inotify_init1(_NONBLOCK_CLOEXEC), None)

    def fileno(self) -> int:
        return self._fd

    def add(self, path: str | bytes, mask: int) -> int:
        """Watch ``path`` (``/proc/self/fd/N`` watches what descriptor N has open)."""
        raw = os.fsencode(path)
        return self._check(self._libc.inotify_add_watch(self._fd, raw, ctypes.c_uint32(mask)),
                           raw)

    def add_fd(self, fd: int, mask: int) -> int:
        """Watch the entry descriptor ``fd`` has open, whatever its path is now."""
        return self.add(f"/proc/self/fd/{fd}", mask)

    def remove(self, wd: int) -> None:
        """Stop a watch; one already gone (``EINVAL``) is ignored."""
        if self._libc.inotify_rm_watch(self._fd, wd) < 0 and ctypes.get_errno() != errno.EINVAL:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def wait(self, timeout: float | None) -> bool:
        """Block until records can be read, or ``timeout`` seconds pass."""
        return bool(select.select([self._fd], [], [], timeout)[0])

    def read(self) -> list[Record]:
        """Every record waiting, in order; ``[]`` at once if there is none."""
        out: list[Record] = []
        while True:
            try:
                buf = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return out
            at = 0
            while at < len(buf):
                wd, mask, cookie, length = _HEADER.unpack_from(buf, at)
                at += _HEADER.size
                out.append(Record(wd, mask, cookie, buf[at : at + length].rstrip(b"\0")))
                at += length

    def close(self) -> None:
        """Release the instance and every watch; later calls do nothing."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _check(self, rc: int, path: bytes | None) -> int:
        if rc >= 0:
            return int(rc)
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path) if path is not None else None)

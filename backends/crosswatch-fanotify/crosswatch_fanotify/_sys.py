"""The system calls the backend makes, behind one small object.

:class:`Kernel` is the only place that calls the C library. A test that needs a
kernel this machine is not (one without ``FAN_REPORT_DFID_NAME`` or
``FAN_RENAME``) wraps it and refuses those flags as such a kernel does.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from . import _abi

AT_EMPTY_PATH = 0x1000
#: A handle only to compare, not to open (Linux 6.5): what fanotify reports on file
#: systems that cannot be exported (overlayfs, for one).
AT_HANDLE_FID = 0x200


class Kernel:
    """fanotify_init(2), fanotify_mark(2) and name_to_handle_at(2), raising OSError."""

    def __init__(self) -> None:
        libc: Any = ctypes.CDLL(None, use_errno=True)
        for fn, args in (
            ("fanotify_init", [ctypes.c_uint, ctypes.c_uint]),
            (
                "fanotify_mark",
                [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p],
            ),
            (
                "name_to_handle_at",
                [
                    ctypes.c_int,
                    ctypes.c_char_p,
                    ctypes.c_void_p,
                    ctypes.POINTER(ctypes.c_int),
                    ctypes.c_int,
                ],
            ),
        ):
            if not hasattr(libc, fn):
                raise OSError(errno.ENOSYS, f"the C library has no {fn}()")
            getattr(libc, fn).argtypes = args
            getattr(libc, fn).restype = ctypes.c_int
        self._libc = libc
        self._handle = ctypes.create_string_buffer(_abi.FILE_HANDLE.size + _abi.MAX_HANDLE_SZ)
        self._mount_id = ctypes.c_int()  # an out-parameter the call requires; unused

    def init(self, flags: int) -> int:
        """A new fanotify group's descriptor, read-only, for notification only."""
        fd = self._libc.fanotify_init(flags, os.O_RDONLY | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return int(fd)

    def mark(self, fd: int, flags: int, mask: int, dirfd: int) -> None:
        """Add or remove a mark on the object ``dirfd`` is open on.

        The kernel takes no ``O_PATH`` descriptor here: ``dirfd`` is opened for reading.
        """
        if self._libc.fanotify_mark(fd, flags, mask, dirfd, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def handle(self, dirfd: int) -> bytes:
        """The file handle (header included) of the object ``dirfd`` is open on: the
        bytes fanotify reports for it."""
        err = self._name_to_handle(dirfd, AT_EMPTY_PATH)
        if err in (errno.EOPNOTSUPP, errno.ENOTSUP):
            err = self._name_to_handle(dirfd, AT_EMPTY_PATH | AT_HANDLE_FID) and err
        if err:
            raise OSError(err, os.strerror(err))
        size, _ = _abi.FILE_HANDLE.unpack_from(self._handle, 0)
        return self._handle.raw[: _abi.FILE_HANDLE.size + size]

    def _name_to_handle(self, dirfd: int, flags: int) -> int:
        """0, or the errno of name_to_handle_at."""
        buf = self._handle
        _abi.FILE_HANDLE.pack_into(buf, 0, _abi.MAX_HANDLE_SZ, 0)
        if self._libc.name_to_handle_at(dirfd, b"", buf, ctypes.byref(self._mount_id), flags) < 0:
            return ctypes.get_errno() or errno.EIO
        return 0

    def fsid(self, dirfd: int) -> bytes:
        """The file system id fanotify reports with every handle on that file system."""
        return _abi.fsid_bytes(os.fstatvfs(dirfd).f_fsid)

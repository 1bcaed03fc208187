"""The one door through which the backend calls kernel32, so that an emulation can stand in.

:class:`Kernel32Api` is every call the driving logic makes, each with the shape of
the real one (same arguments, same results, failures as an ``OSError`` whose
``winerror`` is the Windows error code). :data:`KERNEL32` is the real one; it
loads kernel32 on its first call, on Windows only (elsewhere that call raises
:class:`WindowsOnlyError`). Importing this module calls nothing.
"""

from __future__ import annotations

import ctypes
import errno
import sys
from typing import Any, NamedTuple, Protocol

from crosswatch import CrosswatchError

FILE_LIST_DIRECTORY = 0x0001
FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_SHARE_DELETE = 0x4
OPEN_EXISTING = 3
#: Needed to open a directory at all.
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
FILE_FLAG_OVERLAPPED = 0x40000000
#: CreateFileW's failure, and CreateIoCompletionPort's "no file: a new port".
INVALID_HANDLE_VALUE = 2**64 - 1 if ctypes.sizeof(ctypes.c_void_p) == 8 else 2**32 - 1
INFINITE = 0xFFFFFFFF

ERROR_INVALID_FUNCTION = 1
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_NOT_SUPPORTED = 50
ERROR_NETNAME_DELETED = 64
ERROR_INVALID_PARAMETER = 87
WAIT_TIMEOUT = 258
ERROR_DIRECTORY = 267
ERROR_ABANDONED_WAIT_0 = 735
ERROR_OPERATION_ABORTED = 995
ERROR_NOTIFY_ENUM_DIR = 1022

_ERRNO = {
    ERROR_INVALID_FUNCTION: errno.ENOSYS,
    ERROR_FILE_NOT_FOUND: errno.ENOENT,
    ERROR_PATH_NOT_FOUND: errno.ENOENT,
    ERROR_ACCESS_DENIED: errno.EACCES,
    ERROR_INVALID_HANDLE: errno.EBADF,
    ERROR_NOT_SUPPORTED: errno.ENOTSUP,
    ERROR_INVALID_PARAMETER: errno.EINVAL,
    ERROR_DIRECTORY: errno.ENOTDIR,
    ERROR_OPERATION_ABORTED: errno.ECANCELED,
}
_MESSAGES = {
    ERROR_INVALID_FUNCTION: "Incorrect function",
    ERROR_FILE_NOT_FOUND: "The system cannot find the file specified",
    ERROR_PATH_NOT_FOUND: "The system cannot find the path specified",
    ERROR_ACCESS_DENIED: "Access is denied",
    ERROR_INVALID_HANDLE: "The handle is invalid",
    ERROR_NOT_SUPPORTED: "The request is not supported",
    ERROR_NETNAME_DELETED: "The specified network name is no longer available",
    ERROR_INVALID_PARAMETER: "The parameter is incorrect",
    WAIT_TIMEOUT: "The wait operation timed out",
    ERROR_DIRECTORY: "The directory name is invalid",
    ERROR_ABANDONED_WAIT_0: "The I/O completion port was closed during the wait",
    ERROR_OPERATION_ABORTED: "The I/O operation has been aborted",
    ERROR_NOTIFY_ENUM_DIR: "The changes were not returned: the directory must be enumerated",
}


def on_windows() -> bool:
    """Is this Windows? A call, so that type checkers on other OSes check both ways."""
    return sys.platform == "win32"


def windows_error(code: int, filename: str | None = None) -> OSError:
    """The OSError Windows raises for error ``code``: ``winerror`` set, ``errno`` mapped.

    On Windows, Python maps the code itself; elsewhere (an emulation) the same
    subclass is picked from the mapped ``errno`` and ``winerror`` is set by hand.
    """
    if on_windows():
        message = getattr(ctypes, "FormatError")(code).strip()  # noqa: B009
        return OSError(None, message, filename, code)
    exc = OSError(_ERRNO.get(code, errno.EIO), _MESSAGES.get(code, f"Windows error {code}"),
                  filename)
    setattr(exc, "winerror", code)  # noqa: B010 - typeshed knows it on Windows only
    return exc


def winerror(exc: BaseException) -> int | None:
    """The Windows error code of ``exc``, if it carries one."""
    code = getattr(exc, "winerror", None)
    return code if isinstance(code, int) else None


class WindowsOnlyError(CrosswatchError, OSError):
    """A Windows API was asked for on another OS."""


class Overlapped(ctypes.Structure):
    """OVERLAPPED: what a pending read is known by; its address comes back on completion."""

    _fields_ = (
        ("Internal", ctypes.c_size_t),
        ("InternalHigh", ctypes.c_size_t),
        ("Offset", ctypes.c_uint32),
        ("OffsetHigh", ctypes.c_uint32),
        ("hEvent", ctypes.c_void_p),
    )


class Completion(NamedTuple):
    """One packet dequeued from a completion port (GetQueuedCompletionStatus).

    ``error`` is 0 for a read that succeeded (``transferred`` bytes written into its
    buffer, 0 when the changes did not fit), else the read's Windows error code;
    ``overlapped`` is the address of the read's OVERLAPPED, 0 for a posted packet
    that was given none.
    """

    error: int
    transferred: int
    key: int
    overlapped: int


class Kernel32Api(Protocol):
    """What the backend asks of kernel32; the real one and an emulation both provide it.

    Handles are ints. A failed call raises an ``OSError`` with ``winerror`` set (see
    :func:`windows_error`), as GetLastError would have told.
    """

    def available(self) -> bool:
        """Can these calls be made here at all?"""
        ...

    def has_extended(self) -> bool:
        """Is ReadDirectoryChangesExW there (Windows 10 1709 and later: file ids)?"""
        ...

    def create_file(self, path: str, access: int, share: int, disposition: int,
                    flags: int) -> int:
        """CreateFileW (no security attributes, no template): a handle."""
        ...

    def create_io_completion_port(self, handle: int, port: int, key: int,
                                  threads: int) -> int:
        """CreateIoCompletionPort: a new port (``handle`` INVALID_HANDLE_VALUE, ``port``
        0), or ``handle`` associated with ``port`` under ``key``; the port."""
        ...

    def read_directory_changes(self, handle: int, buffer: Any, length: int, subtree: bool,
                               notify_filter: int, overlapped: Overlapped) -> None:
        """ReadDirectoryChangesW, overlapped: queue one read into ``buffer``."""
        ...

    def read_directory_changes_ex(self, handle: int, buffer: Any, length: int, subtree: bool,
                                  notify_filter: int, overlapped: Overlapped,
                                  info_class: int) -> None:
        """ReadDirectoryChangesExW, overlapped, with a READ_DIRECTORY_NOTIFY class."""
        ...

    def get_queued_completion_status(self, port: int, timeout_ms: int) -> Completion | None:
        """GetQueuedCompletionStatus: the next packet, or None once ``timeout_ms`` passed.

        A completed read that failed is a packet with its ``error``; a failure of the
        wait itself (no packet) raises.
        """
        ...

    def post_queued_completion_status(self, port: int, transferred: int, key: int) -> None:
        """PostQueuedCompletionStatus, with no OVERLAPPED: wakes a waiter."""
        ...

    def cancel_io_ex(self, handle: int, overlapped: Overlapped) -> None:
        """CancelIoEx: the read completes with ERROR_OPERATION_ABORTED (unless it is
        complete already); raises ERROR_NOT_FOUND's error when nothing was pending."""
        ...

    def close_handle(self, handle: int) -> None:
        """CloseHandle."""
        ...


def _bind(dll: Any, name: str, restype: Any, *argtypes: Any) -> Any:
    """Give one kernel32 function its prototype; None if this Windows lacks it."""
    fn = getattr(dll, name, None)
    if fn is not None:
        fn.argtypes = list(argtypes)
        fn.restype = restype
    return fn


class Kernel32:
    """kernel32 through ctypes: real calls, loaded at the first one, on Windows only."""

    def __init__(self) -> None:
        self._dll: Any = None

    def _lib(self) -> Any:
        if self._dll is not None:
            return self._dll
        if not on_windows():
            raise WindowsOnlyError(
                "kernel32 (ReadDirectoryChangesW) exists only on Windows; on "
                f"{sys.platform} use the OS's own backend or backend='polling'"
            )
        from ctypes import wintypes as w

        # Looked up, not named: these exist only in Windows builds of ctypes.
        dll = getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)  # noqa: B009
        ptr, handle, dword, bool_ = ctypes.c_void_p, w.HANDLE, w.DWORD, w.BOOL
        ulong_ptr = ctypes.c_size_t
        _bind(dll, "CreateFileW", handle, w.LPCWSTR, dword, dword, ptr, dword, dword, handle)
        _bind(dll, "CreateIoCompletionPort", handle, handle, handle, ulong_ptr, dword)
        read = (handle, ptr, dword, bool_, dword, ctypes.POINTER(dword), ptr, ptr)
        _bind(dll, "ReadDirectoryChangesW", bool_, *read)
        # Windows 10 1709 and later; without it, only plain records (no file ids).
        self._ex = _bind(dll, "ReadDirectoryChangesExW", bool_, *read, ctypes.c_int)
        _bind(dll, "GetQueuedCompletionStatus", bool_, handle, ctypes.POINTER(dword),
              ctypes.POINTER(ulong_ptr), ctypes.POINTER(ptr), dword)
        _bind(dll, "PostQueuedCompletionStatus", bool_, handle, dword, ulong_ptr, ptr)
        _bind(dll, "CancelIoEx", bool_, handle, ptr)
        _bind(dll, "CloseHandle", bool_, handle)
        self._dll = dll
        return dll

    @staticmethod
    def _check(ok: Any, filename: str | None = None) -> Any:
        """A call's result; its failure (FALSE, NULL) as the thread's last error."""
        if not ok or ok == INVALID_HANDLE_VALUE:
            raise windows_error(getattr(ctypes, "get_last_error")(), filename)  # noqa: B009
        return ok

    def available(self) -> bool:
        return on_windows()

    def has_extended(self) -> bool:
        self._lib()
        return self._ex is not None

    def create_file(self, path: str, access: int, share: int, disposition: int,
                    flags: int) -> int:
        return int(self._check(
            self._lib().CreateFileW(path, access, share, None, disposition, flags, None), path
        ))

    def create_io_completion_port(self, handle: int, port: int, key: int,
                                  threads: int) -> int:
        return int(self._check(
            self._lib().CreateIoCompletionPort(handle, port or None, key, threads)
        ))

    def read_directory_changes(self, handle: int, buffer: Any, length: int, subtree: bool,
                               notify_filter: int, overlapped: Overlapped) -> None:
        self._check(self._lib().ReadDirectoryChangesW(
            handle, buffer, length, subtree, notify_filter, None, ctypes.byref(overlapped),
            None))

    def read_directory_changes_ex(self, handle: int, buffer: Any, length: int, subtree: bool,
                                  notify_filter: int, overlapped: Overlapped,
                                  info_class: int) -> None:
        self._lib()
        if self._ex is None:
            raise windows_error(ERROR_INVALID_FUNCTION)
        self._check(self._ex(handle, buffer, length, subtree, notify_filter, None,
                             ctypes.byref(overlapped), None, info_class))

    def get_queued_completion_status(self, port: int, timeout_ms: int) -> Completion | None:
        from ctypes import wintypes

        transferred, key = wintypes.DWORD(0), ctypes.c_size_t(0)
        overlapped = ctypes.c_void_p(None)
        ok = self._lib().GetQueuedCompletionStatus(
            port, ctypes.byref(transferred), ctypes.byref(key), ctypes.byref(overlapped),
            timeout_ms,
        )
        error = 0 if ok else int(getattr(ctypes, "get_last_error")())  # noqa: B009
        if not ok and not overlapped.value:  # no packet: the wait itself ended
            if error == WAIT_TIMEOUT:
                return None
            raise windows_error(error)
        return Completion(error, transferred.value, key.value, overlapped.value or 0)

    def post_queued_completion_status(self, port: int, transferred: int, key: int) -> None:
        self._check(self._lib().PostQueuedCompletionStatus(port, transferred, key, None))

    def cancel_io_ex(self, handle: int, overlapped: Overlapped) -> None:
        self._check(self._lib().CancelIoEx(handle, ctypes.byref(overlapped)))

    def close_handle(self, handle: int) -> None:
        self._check(self._lib().CloseHandle(handle))


#: The real kernel32, for :attr:`WindowsBackend.system`; nothing is loaded until used.
KERNEL32 = Kernel32()

"""The one object through which the backend calls kernel32, so that an emulation can stand in.

:class:`Kernel32` loads kernel32 when it is made, on Windows only; elsewhere making
one raises :class:`WindowsOnlyError`. Importing this module calls nothing.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any, Protocol

from crosswatch import CrosswatchError

from . import _abi

FILE_LIST_DIRECTORY = 0x0001
FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_SHARE_DELETE = 0x4
OPEN_EXISTING = 3
#: Needed to open a directory at all.
FILE_FLAG_BACKUP_SEMANTICS = 0x02000000
FILE_FLAG_OVERLAPPED = 0x40000000
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value


def on_windows() -> bool:
    """Is this Windows? A call, so that type checkers on other OSes check both ways."""
    return sys.platform == "win32"


def _last_error() -> OSError:
    """The calling thread's last Windows error, as an OSError with its winerror."""
    error: OSError = getattr(ctypes, "WinError")(getattr(ctypes, "get_last_error")())  # noqa: B009
    return error


class WindowsOnlyError(CrosswatchError, OSError):
    """A Windows API was asked for on another OS."""


class Kernel32Api(Protocol):
    """What the backend asks of kernel32; the real one and an emulation both provide it."""

    def open_directory(self, path: str) -> int:
        """A handle on directory ``path`` for overlapped change reads (CreateFileW)."""
        ...

    def read_directory_changes(
        self,
        handle: int,
        buffer: Any,
        *,
        subtree: bool,
        notify_filter: int,
        overlapped: Any,
        extended: bool,
    ) -> None:
        """Queue one read of changes into ``buffer`` (ReadDirectoryChanges[Ex]W)."""
        ...

    def close_handle(self, handle: int) -> None:
        """CloseHandle; pending reads on the handle complete as cancelled."""
        ...


class Kernel32:
    """kernel32 through ctypes: real calls, on Windows only."""

    def __init__(self) -> None:
        if not on_windows():
            raise WindowsOnlyError(
                "kernel32 (ReadDirectoryChangesW) exists only on Windows; on "
                f"{sys.platform} use the OS's own backend or backend='polling'"
            )
        from ctypes import wintypes

        # Looked up, not named: these exist only in Windows builds of ctypes.
        dll = getattr(ctypes, "WinDLL")("kernel32", use_last_error=True)  # noqa: B009
        dll.CreateFileW.argtypes = [
            wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
            wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE,
        ]
        dll.CreateFileW.restype = wintypes.HANDLE
        read_args: list[Any] = [
            wintypes.HANDLE, ctypes.c_void_p, wintypes.DWORD, wintypes.BOOL, wintypes.DWORD,
            ctypes.POINTER(wintypes.DWORD), ctypes.c_void_p, ctypes.c_void_p,
        ]
        dll.ReadDirectoryChangesW.argtypes = read_args
        dll.ReadDirectoryChangesW.restype = wintypes.BOOL
        # Windows 10 1709 and later; without it, only plain records (no file ids).
        self._ex: Any = getattr(dll, "ReadDirectoryChangesExW", None)
        if self._ex is not None:
            self._ex.argtypes = [*read_args, ctypes.c_int]
            self._ex.restype = wintypes.BOOL
        dll.CloseHandle.argtypes = [wintypes.HANDLE]
        dll.CloseHandle.restype = wintypes.BOOL
        self._dll: Any = dll

    @property
    def has_extended(self) -> bool:
        """ReadDirectoryChangesExW is there, so records can carry file ids."""
        return self._ex is not None

    def open_directory(self, path: str) -> int:
        handle = self._dll.CreateFileW(
            path,
            FILE_LIST_DIRECTORY,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            None,
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED,
            None,
        )
        if handle is None or handle == INVALID_HANDLE_VALUE:
            raise _last_error()
        return int(handle)

    def read_directory_changes(
        self,
        handle: int,
        buffer: Any,
        *,
        subtree: bool,
        notify_filter: int,
        overlapped: Any,
        extended: bool,
    ) -> None:
        args = (handle, buffer, len(buffer), subtree, notify_filter, None, overlapped, None)
        if extended and self._ex is not None:
            ok = self._ex(*args, _abi.READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION)
        else:
            ok = self._dll.ReadDirectoryChangesW(*args)
        if not ok:
            raise _last_error()

    def close_handle(self, handle: int) -> None:
        self._dll.CloseHandle(handle)

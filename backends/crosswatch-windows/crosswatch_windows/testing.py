"""kernel32 emulated on Linux, so that the Windows backend's own code runs here.

:class:`WindowsEmulation` stands in for :data:`~crosswatch_windows._kernel32.KERNEL32`
(it provides :class:`~crosswatch_windows._kernel32.Kernel32Api`), and
:class:`EmulatedWindows` is the backend with it as its door::

    from crosswatch_windows.testing import EmulatedWindows
    Watcher(root, backend=EmulatedWindows)

It stands on raw inotify records (``crosswatch.testing.Inotify``) and writes what
ReadDirectoryChangesW writes, byte for byte, into the caller's buffer, with
Windows' semantics: see ``docs/windows.md`` ("The emulation") for what it
reports, what it loses and what it cannot reproduce, and its methods here for
the failures a test can inject (:meth:`WindowsEmulation.inject`,
:meth:`~WindowsEmulation.fail_wait`, :meth:`~WindowsEmulation.held`,
:meth:`~WindowsEmulation.unsupported`).
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from crosswatch.backend import open_dir
from crosswatch.testing import _inotify as ino

from . import _abi
from . import _kernel32 as k
from ._backend import WindowsBackend
from ._emubirths import Births
from ._emudir import Directory, Pending, encode

ERROR_NOT_FOUND = 1168
#: Faults :meth:`WindowsEmulation.inject` takes, besides garbled bytes.
OVERFLOW, ENUM_DIR = "overflow", "enum_dir"


@dataclass(eq=False)
class _Port:
    """One completion port: its packets, the inotify instance its directories use, and
    what covers the births of their new directories."""

    handle: int
    inotify: ino.Inotify
    births: Births
    wake_r: int
    wake_w: int
    packets: deque[k.Completion] = field(default_factory=deque)
    users: dict[int, list[Directory]] = field(default_factory=dict)  # wd -> directories
    dirs: list[Directory] = field(default_factory=list)
    closed: bool = False

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"!")
        except OSError:
            pass  # full: awake already

    def drain(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass


class WindowsEmulation:
    """kernel32's directory-change calls and completion ports, on Linux.

    One instance serves many backends at once (it is a class attribute); each port
    has an inotify instance of its own, opened by ``CreateIoCompletionPort`` and
    closed with the port. Handles are numbers from a counter, never reused.
    """

    def __init__(self, *, extended: bool = True) -> None:
        self.extended = extended
        """ReadDirectoryChangesExW is there (Windows 10 1709+); False: an older Windows."""
        self._lock = threading.RLock()
        self._ids = itertools.count(0x104, 4)
        self._objects: dict[int, Directory | _Port] = {}
        self._unsupported: set[str] = set()
        self._wait_failures: list[int] = []
        self._held = 0

    # ------------------------------------------------------------ for tests

    def open_handles(self) -> int:
        """How many handles (directories and ports) are open now."""
        with self._lock:
            return len(self._objects)

    def inject(self, path: str, fault: str | bytes) -> None:
        """The next read of every handle open on ``path`` that completes with records
        completes instead with ``fault``: :data:`OVERFLOW` (zero bytes, its changes
        thrown away), :data:`ENUM_DIR` (``ERROR_NOTIFY_ENUM_DIR``, likewise) or these
        bytes, written as they are (a garbled buffer)."""
        with self._lock:
            for d in self._dirs(path):
                d.faults.append(fault)

    def fail_wait(self, times: int = 1, code: int = k.ERROR_INVALID_HANDLE) -> None:
        """The next ``times`` waits on any port fail with Windows error ``code``."""
        with self._lock:
            self._wait_failures += [code] * times
            for obj in self._objects.values():
                if isinstance(obj, _Port):
                    obj.wake()

    def unsupported(self, path: str) -> None:
        """Reads of ``path`` fail as on a file system without change notification
        (``ERROR_INVALID_FUNCTION``); for the rest of this emulation's life."""
        self._unsupported.add(os.path.realpath(path))

    @contextmanager
    def held(self) -> Iterator[None]:
        """Changes made inside are gathered by no read until the end, then all at once:
        a burst that arrives before the backend asks again (it may overflow)."""
        with self._lock:
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
                for obj in self._objects.values():
                    if isinstance(obj, _Port):
                        obj.wake()

    def _dirs(self, path: str) -> list[Directory]:
        real = os.path.realpath(path)
        return [o for o in self._objects.values()
                if isinstance(o, Directory) and os.path.realpath(o.path) == real]

    # ------------------------------------------------------------ Kernel32Api

    def available(self) -> bool:
        return sys.platform.startswith("linux")

    def has_extended(self) -> bool:
        return self.extended

    def create_file(self, path: str, access: int, share: int, disposition: int,
                    flags: int) -> int:
        if disposition != k.OPEN_EXISTING or not access & k.FILE_LIST_DIRECTORY:
            raise k.windows_error(k.ERROR_INVALID_PARAMETER, path)
        try:
            fd = open_dir(path, os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:
            code = k.ERROR_PATH_NOT_FOUND if exc.errno == errno.ENOENT else k.ERROR_ACCESS_DENIED
            raise k.windows_error(code, path) from None
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            os.close(fd)  # (Windows opens a file too; its reads then fail)
            raise k.windows_error(k.ERROR_DIRECTORY, path)
        if not flags & k.FILE_FLAG_BACKUP_SEMANTICS:
            os.close(fd)  # a directory cannot be opened without it
            raise k.windows_error(k.ERROR_ACCESS_DENIED, path)
        with self._lock:
            handle = next(self._ids)
            self._objects[handle] = Directory(handle, path, fd)
        return handle

    def create_io_completion_port(self, handle: int, port: int, key: int,
                                  threads: int) -> int:
        with self._lock:
            if handle == k.INVALID_HANDLE_VALUE and not port:
                inotify = ino.Inotify()
                r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
                new = _Port(next(self._ids), inotify, Births(), r, w)
                self._objects[new.handle] = new
                return new.handle
            d, p = self._objects.get(handle), self._objects.get(port)
            if not isinstance(d, Directory) or not isinstance(p, _Port) or d.port is not None:
                raise k.windows_error(k.ERROR_INVALID_PARAMETER)
            d.port, d.key = p, key
            p.dirs.append(d)
            return port

    def read_directory_changes(self, handle: int, buffer: Any, length: int, subtree: bool,
                               notify_filter: int, overlapped: k.Overlapped) -> None:
        self._read(handle, buffer, length, subtree, overlapped, extended=False)

    def read_directory_changes_ex(self, handle: int, buffer: Any, length: int, subtree: bool,
                                  notify_filter: int, overlapped: k.Overlapped,
                                  info_class: int) -> None:
        if not self.extended:
            raise k.windows_error(k.ERROR_INVALID_FUNCTION)  # no such function here
        if info_class not in (_abi.READ_DIRECTORY_NOTIFY_INFORMATION,
                              _abi.READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION):
            raise k.windows_error(k.ERROR_INVALID_PARAMETER)
        extended = info_class == _abi.READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION
        self._read(handle, buffer, length, subtree, overlapped, extended=extended)

    def _read(self, handle: int, buffer: Any, length: int, subtree: bool,
              overlapped: k.Overlapped, *, extended: bool) -> None:
        with self._lock:
            d = self._objects.get(handle)
            if not isinstance(d, Directory):
                raise k.windows_error(k.ERROR_INVALID_HANDLE)
            if os.path.realpath(d.path) in self._unsupported:
                raise k.windows_error(k.ERROR_INVALID_FUNCTION)
            if d.deleted:
                raise k.windows_error(k.ERROR_ACCESS_DENIED)
            # Checks of the emulation's own: one read at a time, on a port, in bounds.
            if (d.port is None or d.pending is not None or length % 4 or length <= 0
                    or length > ctypes.sizeof(buffer)):
                raise k.windows_error(k.ERROR_INVALID_PARAMETER)
            d.pending = Pending(buffer, length, ctypes.addressof(overlapped), extended)
            if d.subtree is None:  # the first read sets the watch up
                d.subtree, d.limit = subtree, length
                d.start(d.port.inotify, d.port.users)
            self._deliver(d)

    def get_queued_completion_status(self, port: int, timeout_ms: int) -> k.Completion | None:
        deadline = None if timeout_ms == k.INFINITE else time.monotonic() + timeout_ms / 1000
        while True:
            with self._lock:
                p = self._objects.get(port)
                if not isinstance(p, _Port):
                    raise k.windows_error(k.ERROR_ABANDONED_WAIT_0 if port else
                                          k.ERROR_INVALID_HANDLE)
                p.drain()
                if self._wait_failures:
                    raise k.windows_error(self._wait_failures.pop(0))
                if not self._held:
                    self._pump(p)
                if p.packets:
                    return p.packets.popleft()
                fds = [p.wake_r] if self._held else [p.wake_r, p.inotify.fileno()]
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                select.select(fds, [], [], left)
            except (OSError, ValueError):
                pass  # closed meanwhile: the next turn says so

    def post_queued_completion_status(self, port: int, transferred: int, key: int) -> None:
        with self._lock:
            p = self._objects.get(port)
            if not isinstance(p, _Port):
                raise k.windows_error(k.ERROR_INVALID_HANDLE)
            p.packets.append(k.Completion(0, transferred, key, 0))
            p.wake()

    def cancel_io_ex(self, handle: int, overlapped: k.Overlapped) -> None:
        with self._lock:
            d = self._objects.get(handle)
            if not isinstance(d, Directory):
                raise k.windows_error(k.ERROR_INVALID_HANDLE)
            if d.pending is None or d.pending.overlapped != ctypes.addressof(overlapped):
                raise k.windows_error(ERROR_NOT_FOUND)
            self._complete(d, k.ERROR_OPERATION_ABORTED, b"")

    def close_handle(self, handle: int) -> None:
        with self._lock:
            obj = self._objects.pop(handle, None)
            if obj is None:
                raise k.windows_error(k.ERROR_INVALID_HANDLE)
            if isinstance(obj, Directory):
                if obj.pending is not None:  # completes as cancelled, on its port
                    self._complete(obj, k.ERROR_OPERATION_ABORTED, b"")
                port = obj.port
                obj.close(port.inotify if port is not None and not port.closed else None,
                          port.users if port is not None else {})
                if port is not None and obj in port.dirs:
                    port.dirs.remove(obj)
                return
            obj.closed = True
            for d in obj.dirs:
                d.port = None  # their completions have nowhere to go now
            obj.inotify.close()
            obj.births.close()
            os.close(obj.wake_r)
            os.close(obj.wake_w)

    # ------------------------------------------------------------ the machinery

    def _pump(self, p: _Port) -> None:
        """Turn what inotify has for the port's directories into gathered records, and
        complete the reads waiting for them."""
        p.births.drain()  # (so that the kernel's queue of it does not overflow)
        records = p.inotify.read()
        if records and records[-1].mask & ino.IN_MOVED_FROM and p.inotify.wait(0.01):
            records += p.inotify.read()  # its MOVED_TO, if it is one, comes right after
        i = 0
        while i < len(records):
            rec = records[i]
            if rec.mask & ino.IN_Q_OVERFLOW:
                for d in p.dirs:
                    d.overflowed = True  # the kernel's queue lost them: Windows' would too
                    d.check_deleted()
                i += 1
                continue
            nxt = records[i + 1] if i + 1 < len(records) else None
            paired = (rec.mask & ino.IN_MOVED_FROM and nxt is not None
                      and nxt.mask & ino.IN_MOVED_TO and nxt.cookie == rec.cookie)
            took: list[Directory] = []  # the directories that took both halves
            for d in list(p.users.get(rec.wd, ())):
                if d.apply(rec.wd, rec, p.inotify, p.users, nxt if paired else None):
                    took.append(d)
            if paired and nxt is not None:
                for d in list(p.users.get(nxt.wd, ())):
                    if d not in took:  # moved in, as far as it is concerned
                        d.apply(nxt.wd, nxt, p.inotify, p.users, None)
                i += 1
            i += 1
        for d in list(p.dirs):
            self._deliver(d)

    def _deliver(self, d: Directory) -> None:
        """Complete ``d``'s read if there is something to say."""
        if d.pending is None:
            return
        if d.faults and (d.collected or d.overflowed):
            fault = d.faults.pop(0)
            d.take()
            if fault == OVERFLOW:
                self._complete(d, 0, b"")
            elif fault == ENUM_DIR:
                self._complete(d, _abi.ERROR_NOTIFY_ENUM_DIR, b"")
            else:
                assert isinstance(fault, bytes)
                self._complete(d, 0, fault)
        elif d.collected or d.overflowed:
            changes, lost = d.take()
            ext = d.pending.extended
            data = b"" if lost else encode(changes, extended=ext, stat_of=d.lstat)
            if len(data) > d.pending.length:
                data = b""  # does not fit this read's buffer: lost too
            self._complete(d, 0, data)
        elif d.deleted:
            self._complete(d, k.ERROR_ACCESS_DENIED, b"")

    def _complete(self, d: Directory, error: int, data: bytes) -> None:
        pending, d.pending = d.pending, None
        assert pending is not None
        if data:
            ctypes.memmove(pending.buffer, data, len(data))
        port = d.port
        if port is not None and not port.closed:
            port.packets.append(k.Completion(error, len(data), d.key, pending.overlapped))
            port.wake()


class EmulatedWindows(WindowsBackend):
    """The Windows backend, its kernel32 emulated on Linux."""

    system: ClassVar[k.Kernel32Api] = WindowsEmulation()

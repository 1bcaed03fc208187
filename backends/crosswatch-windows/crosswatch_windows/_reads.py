"""The overlapped reads: one per directory handle, all completing on one port.

A thread of the backend waits on the completion port. When a read completes, it
copies the bytes out of the read's buffer and queues the next read at once (the
OS gathers what happens in between, up to the buffer's size), then hands the
bytes over; the watcher's thread turns them into observations. A buffer is never
let go while a read may still write into it: a cancelled read is forgotten only
once its aborted completion has come back.

Everything kernel32 is asked goes through the door (:class:`Kernel32Api`).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import _abi
from . import _kernel32 as k

#: The key of packets posted to wake the thread (handles count from 1).
WAKE_KEY = 0
#: Failed waits in a row after which the thread gives up (reported, never silent).
MAX_WAIT_FAILURES = 3
#: Seconds to wait for the cancelled reads to come back when the backend closes.
CLOSE_TIMEOUT = 5.0
#: CreateFileW's arguments for a directory read overlapped: listing access, every
#: share mode (the watch must not keep anyone from renaming or deleting anything),
#: BACKUP_SEMANTICS (without it a directory does not open at all).
OPEN = (k.FILE_LIST_DIRECTORY, k.FILE_SHARE_READ | k.FILE_SHARE_WRITE | k.FILE_SHARE_DELETE,
        k.OPEN_EXISTING, k.FILE_FLAG_BACKUP_SEMANTICS | k.FILE_FLAG_OVERLAPPED)


class Completed(NamedTuple):
    """A read came back with ``data`` (empty: overflowed) or ERROR_NOTIFY_ENUM_DIR."""

    key: int
    data: bytes
    error: int
    extended: bool


class Ended(NamedTuple):
    """The handle's reads ended with Windows error ``error``; the handle is closed."""

    key: int
    error: int


class WaitFailed(NamedTuple):
    """The thread's wait on the port failed (or the thread itself did); ``fatal``:
    the thread has ended."""

    error: BaseException
    fatal: bool


Item = Completed | Ended | WaitFailed


@dataclass(eq=False)
class Read:
    """One directory handle, its buffer and its OVERLAPPED."""

    key: int
    handle: int
    subtree: bool
    extended: bool
    size: int
    buffer: Any = None
    overlapped: k.Overlapped = field(default_factory=k.Overlapped)
    pending: bool = False
    cancelling: bool = False
    finished: bool = False
    """CancelIoEx found it complete already: nothing writes into the buffer any more,
    only its packet is still to be taken."""


class Port:
    """The completion port, its thread, and every directory handle read through it."""

    def __init__(self, system: k.Kernel32Api, sink: Callable[[Item], None]) -> None:
        self._system = system
        self._sink = sink
        self._lock = threading.Lock()
        self._reads: dict[int, Read] = {}
        self._port = system.create_io_completion_port(k.INVALID_HANDLE_VALUE, 0, 0, 1)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def open(self, key: int, path: str, subtree: bool,
             attempts: list[tuple[bool, int]]) -> bool:
        """Open ``path`` and queue its first read; whether its records are extended.

        ``attempts`` are (extended, buffer size) to try in order while a read is
        refused with a parameter error. Raises the OSError of the last refusal (or
        of the open).
        """
        system = self._system
        handle = system.create_file(path, *OPEN)
        try:
            system.create_io_completion_port(handle, self._port, key, 0)
            error: OSError | None = None
            for extended, size in attempts:
                read = Read(key, handle, subtree, extended, size,
                            ctypes.create_string_buffer(size))
                with self._lock:
                    try:
                        self._issue(read)
                    except OSError as exc:
                        error = exc
                        if k.winerror(exc) in (k.ERROR_INVALID_FUNCTION, k.ERROR_NOT_SUPPORTED,
                                               k.ERROR_INVALID_PARAMETER):
                            continue
                        raise
                    self._reads[key] = read
                    break
            else:
                assert error is not None
                raise error
        except BaseException:
            try:
                system.close_handle(handle)
            except OSError:
                pass  # the refusal is what matters
            raise
        self._start()
        return read.extended

    def _issue(self, read: Read) -> None:
        """Queue the next read of ``read``'s handle (lock held)."""
        args = (read.handle, read.buffer, read.size, read.subtree, _abi.NOTIFY_FILTER,
                read.overlapped)
        if read.extended:
            self._system.read_directory_changes_ex(
                *args, _abi.READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION)
        else:
            self._system.read_directory_changes(*args)
        read.pending = True

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crosswatch-windows",
                                            daemon=True)
            self._thread.start()

    def cancel(self, key: int) -> None:
        """Stop reading ``key``'s handle; it is closed once its read is back."""
        with self._lock:
            read = self._reads.get(key)
            if read is not None and not read.cancelling:
                self._cancel(read)

    def _cancel(self, read: Read) -> None:
        read.cancelling = True
        if not read.pending:
            self._release(read)
            return
        try:
            self._system.cancel_io_ex(read.handle, read.overlapped)
        except OSError:
            read.finished = True  # complete already (ERROR_NOT_FOUND): its packet is queued

    def _release(self, read: Read) -> None:
        """Close the handle of a read that is not pending (lock held)."""
        self._reads.pop(read.key, None)
        try:
            self._system.close_handle(read.handle)
        except OSError:
            pass  # nothing more can be done with it

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # never a silent dead thread: read() raises it
            self._sink(WaitFailed(exc, True))

    def _loop(self) -> None:
        failures = 0
        while True:
            try:
                packet = self._system.get_queued_completion_status(self._port, k.INFINITE)
            except OSError as exc:
                failures += 1
                fatal = failures >= MAX_WAIT_FAILURES or self._stopping
                self._sink(WaitFailed(exc, fatal))
                if fatal:
                    return
                continue
            failures = 0
            if packet is None:
                continue
            item, done = self._completed(packet)
            if item is not None:
                self._sink(item)
            if done:
                return

    def _completed(self, packet: k.Completion) -> tuple[Item | None, bool]:
        """What one packet means; and whether the thread's work is done."""
        with self._lock:
            read = self._reads.get(packet.key) if packet.key != WAKE_KEY else None
            item: Item | None = None
            if read is not None and read.pending:
                read.pending = False
                if read.cancelling:
                    self._release(read)  # the buffer is free only now
                else:
                    item = self._next(read, packet)
            return item, self._stopping and not self._reads

    def _next(self, read: Read, packet: k.Completion) -> Item:
        """Copy the result out and queue the next read at once (lock held)."""
        error = packet.error
        if error in (_abi.ERROR_SUCCESS, _abi.ERROR_NOTIFY_ENUM_DIR):
            size = min(packet.transferred, read.size)
            data = ctypes.string_at(read.buffer, size) if error == 0 else b""
            try:
                self._issue(read)
            except OSError as exc:  # e.g. the directory was deleted meanwhile
                self._release(read)
                # What came is still told: the engine applies it, then the end.
                self._sink(Completed(read.key, data, error, read.extended))
                return Ended(read.key, k.winerror(exc) or 0)
            return Completed(read.key, data, error, read.extended)
        self._release(read)
        return Ended(read.key, error)

    # ------------------------------------------------------------ closing

    def close(self) -> list[int]:
        """Cancel every read, wait for each to come back, end the thread, close the
        port. The keys whose reads did not come back in time (their handles are
        closed anyway)."""
        with self._lock:
            if self._stopping:
                return []
            self._stopping = True
            for read in list(self._reads.values()):
                self._cancel(read)
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._system.post_queued_completion_status(self._port, 0, WAKE_KEY)
            except OSError:
                pass
            thread.join(CLOSE_TIMEOUT)
        elif self._reads:  # no thread to take the aborted reads back: take them here
            self._drain()
        with self._lock:
            stuck = list(self._reads.values())
            for read in stuck:
                self._release(read)
        try:
            self._system.close_handle(self._port)
        except OSError:
            pass
        return [read.key for read in stuck]

    def _drain(self) -> None:
        """Take the cancelled reads' packets on this thread (the port's thread is gone)."""
        waited = 0
        while self._reads and waited < CLOSE_TIMEOUT * 1000:
            try:
                packet = self._system.get_queued_completion_status(self._port, 100)
            except OSError:
                return
            if packet is None:
                waited += 100
                with self._lock:  # the port is empty: their packets were taken already
                    for read in [r for r in self._reads.values() if r.finished]:
                        self._release(read)
                continue
            self._completed(packet)

"""The Windows backend: its probe, its options, and what completed reads mean.

Every kernel32 call goes through :attr:`WindowsBackend.system` (see ``_kernel32``);
the reads themselves are driven by ``_reads``, on a thread of the backend, which
hands each result to the watcher's thread through a queue and a
:class:`~crosswatch.backend.Waker`. Here, on the watcher's thread, the results
become observations (``_abi``).
"""

from __future__ import annotations

import errno
import itertools
import os
import queue
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from crosswatch import ConfigError, CrosswatchWarning
from crosswatch.backend import (
    Action,
    Backend,
    Capabilities,
    EntryChange,
    Gone,
    Observation,
    Options,
    Probe,
    SubtreeLost,
    Waker,
    WatchError,
    WatchGoneError,
)

from . import _abi
from . import _kernel32 as k
from ._reads import CLOSE_TIMEOUT, Completed, Ended, Item, Port, WaitFailed

#: Bytes per read buffer. Reads of a directory over the network fail with a buffer
#: above 64 KiB (a limit of the file-sharing protocols), so that is the default.
BUFFER_SIZE = 64 * 1024
MIN_BUFFER_SIZE = _abi.EXTENDED_HEADER.size + 2 * 260  # one record with a MAX_PATH name
MAX_BUFFER_SIZE = 16 * 1024 * 1024
#: Preference among available backends (the native one on Windows).
SCORE = 100
POLLING = "watch it with backend='polling'"


def buffer_size(options: Options) -> int:
    """The ``buffer_size`` option (``extra``), checked: a multiple of 4, within bounds."""
    value = options.extra.get("buffer_size", BUFFER_SIZE)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"buffer_size must be an integer number of bytes, not {value!r}")
    if not MIN_BUFFER_SIZE <= value <= MAX_BUFFER_SIZE or value % 4:
        raise ConfigError(
            f"buffer_size must be a multiple of 4 between {MIN_BUFFER_SIZE} and "
            f"{MAX_BUFFER_SIZE} bytes, not {value}; 65536 (the default) also works over "
            "the network"
        )
    return value


@dataclass(frozen=True, slots=True)
class _Watch:
    path: str
    subtree: bool
    extended: bool
    target: str | None = None
    """For a watch of an entry's own fate (on its parent): the entry's name."""


class WindowsBackend(Backend):
    """ReadDirectoryChangesW: one recursive handle per root, renames paired by the OS."""

    name = "windows"
    description = "Windows ReadDirectoryChangesW: one recursive handle per root"
    capabilities = Capabilities(recursive=True)
    extra_options: ClassVar[Mapping[str, str]] = {
        "buffer_size": "bytes per read of changes, a multiple of 4 (default 65536)",
    }
    system: ClassVar[k.Kernel32Api] = k.KERNEL32
    """Every kernel32 call goes through this; a test's subclass puts an emulation here."""

    @classmethod
    def probe(cls, path: str) -> Probe:
        if not cls.system.available():
            return Probe.unavailable(cls.name, "needs Windows (ReadDirectoryChangesW)")
        return Probe(cls.name, True, "one recursive ReadDirectoryChangesW handle per root",
                     score=SCORE)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        self.buffer_size = buffer_size(self.options)
        system = self.system
        if not system.available():
            raise k.WindowsOnlyError(
                errno.ENOSYS, "ReadDirectoryChangesW exists only on Windows; use the OS's "
                "own backend or backend='polling'")
        self._extended = system.has_extended()
        self._translator = _abi.Translator()
        self._ids = itertools.count(1)
        self._watches: dict[int, _Watch] = {}
        self._roots: dict[tuple[str, bool], int] = {}
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._waker = Waker()
        self._closed = False
        self._failed: WatchError | None = None
        try:
            self._port = Port(system, self._post)
        except BaseException:
            self._waker.close()
            raise

    def _post(self, item: Item) -> None:
        """From the port's thread: one result for :meth:`read`."""
        self._queue.put(item)
        if not self._closed:
            self._waker.wake()

    def fileno(self) -> int | None:
        return None if self._closed else self._waker.fileno()

    # ------------------------------------------------------------ watching

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        existing = self._roots.get((path, recursive))
        if existing is not None:
            return existing
        key = self._open(path, recursive, None)
        self._roots[(path, recursive)] = key
        return key

    def watch_self(self, path: str) -> Hashable:
        """Watch ``path``'s parent, not recursively, for what happens to ``path``."""
        parent, name = os.path.split(path.rstrip("\\/"))
        return self._open(parent or path, False, name)

    def _open(self, path: str, subtree: bool, target: str | None) -> int:
        key = next(self._ids)
        size = self.buffer_size
        attempts = [(True, size)] if self._extended else []
        attempts.append((False, size))
        if size > BUFFER_SIZE:  # a network share refuses a larger one
            attempts.append((False, BUFFER_SIZE))
        try:
            extended = self._port.open(key, path, subtree, attempts)
        except OSError as exc:
            raise self._refused(exc, path) from None
        self._watches[key] = _Watch(path, subtree, extended, target)
        return key

    @staticmethod
    def _refused(exc: OSError, path: str) -> OSError:
        code = k.winerror(exc)
        if code in (k.ERROR_FILE_NOT_FOUND, k.ERROR_PATH_NOT_FOUND, k.ERROR_DIRECTORY) or (
            code == k.ERROR_INVALID_PARAMETER and not os.path.isdir(path)
        ):
            return WatchGoneError(errno.ENOENT, f"{path!r} is not a directory now", path)
        if code in (k.ERROR_INVALID_FUNCTION, k.ERROR_NOT_SUPPORTED, k.ERROR_INVALID_PARAMETER):
            return WatchError(
                errno.ENOTSUP,
                f"the file system holding {path!r} does not report changes to "
                f"ReadDirectoryChangesW (Windows error {code}: {exc.strerror}), as some "
                f"network, virtual and FAT volumes do not; {POLLING}",
                path,
            )
        return WatchError(exc.errno or errno.EIO, f"cannot watch {path!r}: {exc.strerror} "
                          f"(Windows error {code})", path)

    def unwatch(self, handle: Hashable) -> None:
        if not isinstance(handle, int) or self._watches.pop(handle, None) is None:
            return
        self._roots = {k_: v for k_, v in self._roots.items() if v != handle}
        self._translator.forget(handle)
        self._port.cancel(handle)

    # ------------------------------------------------------------ reading

    def read(self) -> Sequence[Observation]:
        if self._failed is not None:
            raise self._failed
        self._waker.drain()
        out: list[Observation] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            out += self._observe(item)

    def _observe(self, item: Item) -> list[Observation]:
        if isinstance(item, WaitFailed):
            return self._wait_failed(item)
        watch = self._watches.get(item.key)
        if watch is None:
            return []  # unwatched meanwhile
        if isinstance(item, Ended):
            del self._watches[item.key]
            self._roots = {k_: v for k_, v in self._roots.items() if v != item.key}
            self._translator.forget(item.key)
            return [Gone(item.key)]
        if watch.target is not None:
            return self._fate(item, watch.target)
        return self._translator.completed(
            item.key, item.data, extended=item.extended, error=item.error)

    def _fate(self, item: Completed, target: str) -> list[Observation]:
        """A fate watch's read: only whether ``target`` was removed or renamed."""
        check: list[Observation] = [EntryChange(item.key, "", Action.MOVED_FROM)]
        if item.error or not item.data:
            return check  # lost: the engine checks the roots below
        try:
            found = _abi.records(item.data, extended=item.extended)
        except _abi.GarbledBufferError:
            return check
        fold = target.casefold()  # Windows' names are case-insensitive
        for rec in found:
            if rec.name.casefold() != fold or rec.action == _abi.FILE_ACTION_MODIFIED:
                continue
            if rec.action == _abi.FILE_ACTION_REMOVED:
                return [EntryChange(item.key, "", Action.DELETED)]
            return check  # renamed away, or replaced by another entry
        return []

    def _wait_failed(self, item: WaitFailed) -> list[Observation]:
        if item.fatal and not self._closed:
            self._failed = WatchError(
                errno.EIO,
                f"the thread waiting on the ReadDirectoryChangesW completion port ended "
                f"({item.error!r}); changes are no longer received: restart the watcher, "
                f"or {POLLING}",
            )
            raise self._failed
        warnings.warn(
            f"waiting for ReadDirectoryChangesW results failed ({item.error}); rescanning "
            "what this backend watches", CrosswatchWarning, stacklevel=3)
        return [SubtreeLost(None)]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        stuck = self._port.close()
        self._waker.close()
        self._watches.clear()
        if stuck:
            warnings.warn(
                f"{len(stuck)} ReadDirectoryChangesW read(s) were not back "
                f"{CLOSE_TIMEOUT:g} s after being cancelled; their handles were closed",
                CrosswatchWarning, stacklevel=2)


"""watchdog's emitter and observer, served by a crosswatch watcher per watch.

The observer is watchdog's own ``BaseObserver`` (its queue, its dispatching to
handlers, its bookkeeping of watches); only the emitter differs: it runs a
:class:`~crosswatch.Watcher` and puts the translated events on the queue as
``(event, watch)`` pairs, as every watchdog emitter does.
"""

from __future__ import annotations

import errno
import os
import threading

from watchdog.events import (
    DirModifiedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileOpenedEvent,
    FileSystemEvent,
)
from watchdog.observers.api import (
    DEFAULT_EMITTER_TIMEOUT,
    DEFAULT_OBSERVER_TIMEOUT,
    BaseObserver,
    EventEmitter,
    EventQueue,
    ObservedWatch,
)

from ..._errors import BackendUnavailableError, ConfigError, WatchPathError
from ..._events import ACCESS_KINDS, Change
from ..._watch import Watcher
from ._mirror import Mirror
from ._translate import Translator

#: watchdog classes that only opens and closes produce (a close after writing
#: also modifies the parent directory).
_ACCESS_CLASSES = frozenset(
    {FileOpenedEvent, FileClosedEvent, FileClosedNoWriteEvent, DirModifiedEvent}
)

#: The kinds the translation uses: all but reads (watchdog reports none) and
#: rescan notices (the catch-up events before them say what changed).
_KINDS = frozenset(Change) - {Change.ACCESSED, Change.RESCAN}


class WatchPathNotFoundError(WatchPathError, FileNotFoundError):
    """A scheduled path does not exist; a ``FileNotFoundError`` too, as watchdog raises."""


def _wants_access(event_filter: frozenset[type[FileSystemEvent]] | None) -> bool:
    return event_filter is None or bool(event_filter & _ACCESS_CLASSES)


def _open(path: str | bytes, *, recursive: bool, access: bool) -> Watcher:
    """A started watcher for ``path``; without access events where no backend has them."""
    kinds = _KINDS if access else _KINDS - ACCESS_KINDS
    try:
        watcher = Watcher(
            path, recursive=recursive, access=access, kinds=kinds, default_ignore=False
        )
    except WatchPathError as exc:
        if os.path.lexists(path):
            raise
        raise WatchPathNotFoundError(errno.ENOENT, str(exc), os.fsdecode(path)) from None
    try:
        return watcher.start()
    except BackendUnavailableError:
        if not access:
            raise
    # The backend here cannot see opens and closes (watchdog reports them on Linux only).
    return _open(path, recursive=recursive, access=False)


class CrosswatchEmitter(EventEmitter):
    """Emits the events of one :class:`ObservedWatch`, read by a crosswatch watcher.

    Built like every watchdog emitter, ``CrosswatchEmitter(event_queue, watch,
    timeout=..., event_filter=...)``, it puts ``(event, watch)`` pairs on
    ``event_queue``. The watcher is started when the emitter is (so every change
    after ``start()`` is reported), and closed when it stops. It stops by itself
    once the watched directory is deleted, after emitting the deletions.
    """

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: float = DEFAULT_EMITTER_TIMEOUT,
        event_filter: list[type[FileSystemEvent]] | None = None,
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._translator: Translator | None = None

    def on_thread_start(self) -> None:
        watch = self.watch
        watcher = _open(
            watch.path, recursive=watch.is_recursive, access=_wants_access(self._event_filter)
        )
        root = watcher.roots[0]
        mirror = None
        if watch.is_recursive:
            mirror = Mirror(root)
            mirror.seed(root)  # after start(): what changes meanwhile is reported too
        self._translator = Translator(root, watch.path, mirror)
        with self._lock:
            self._watcher = watcher

    def on_thread_stop(self) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()  # wakes queue_events: get() returns None

    def queue_events(self, timeout: float) -> None:
        # The watcher's thread wakes this one when events come or when the watcher
        # closes, so it waits without polling, whatever ``timeout`` says.
        with self._lock:
            watcher, translator = self._watcher, self._translator
        if watcher is None or translator is None:
            self.stopped_event.wait(timeout)  # not started, or stopped meanwhile
            return
        batch = watcher.get()
        if batch is None:  # closed, or the root is gone
            self.stop()
            return
        for event in batch:
            for out in translator.translate(event):
                self.queue_event(out)
            if translator.ended:
                self.stop()
                return


class CrosswatchObserver(BaseObserver):
    """watchdog's ``Observer``, with crosswatch reading the file system.

    Use it as watchdog's: ``schedule(handler, path, recursive=...,
    event_filter=...)``, ``start()``, ``stop()``, ``join()``, or as a context
    manager. ``generate_full_events=True`` (watchdog's inotify observer reports
    an unpaired half of a move as a move from or to ``""``) is refused: crosswatch
    reports such a move as the deletion or creation it is for the watched tree.
    """

    def __init__(
        self, *, timeout: float = DEFAULT_OBSERVER_TIMEOUT, generate_full_events: bool = False
    ):
        if generate_full_events is not False:
            raise ConfigError(
                "generate_full_events=True is not supported: a move into or out of the "
                "watched tree is reported as created or deleted; leave the argument out"
            )
        super().__init__(CrosswatchEmitter, timeout=timeout)

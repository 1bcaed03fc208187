"""One adapter per watcher under test, all with the same small interface.

``start(on_batch)`` returns once the tool is ready (changes made after it are seen),
``run()`` delivers batches until ``stop()`` is called from another thread. Each batch
reaches ``on_batch(arrival_ns, events)`` with the wall-clock time (``time.time_ns``)
taken at the moment the tool's public API handed it over: ``Watcher.get`` returning
for crosswatch, the handler's ``dispatch`` for watchdog, the generator yielding for
watchfiles. Events are turned into :class:`Ev` so that the scenarios are written once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol


class Ev(NamedTuple):
    """A tool's event in common terms.

    ``kind`` is created, deleted, modified, moved, rescan or other; ``is_dir`` is None
    when the tool does not say (watchfiles).
    """

    kind: str
    path: str
    src: str | None
    is_dir: bool | None
    #: the tool's own event (crosswatch's), for consumers that apply it as it is
    raw: Any = None


OnBatch = Callable[[int, list[Ev]], None]


class Tool(Protocol):
    name: str
    settings: str

    def start(self, on_batch: OnBatch) -> None: ...

    def run(self) -> None: ...

    def stop(self) -> None: ...


class Crosswatch:
    """crosswatch with its inotify backend, consumed with ``Watcher.get()``.

    Only the consumer's API (``Watcher``, ``Event``), so that the same adapter runs a
    baseline revision (``crosswatch@REV``, imported from wherever ``PYTHONPATH`` says).
    """

    settings = 'backend="inotify", defaults otherwise'

    def __init__(self, root: str, name: str = "crosswatch") -> None:
        from crosswatch import Watcher  # imported here: import time is not startup time

        self.name = name
        self.root = root
        self._cls = Watcher
        self._on_batch: OnBatch | None = None
        self._watcher: Any = None

    def start(self, on_batch: OnBatch) -> None:
        self._on_batch = on_batch
        self._watcher = self._cls(self.root, backend="inotify").start()

    def run(self) -> None:
        watcher, on_batch = self._watcher, self._on_batch
        assert on_batch is not None
        while True:
            batch = watcher.get()
            if batch is None:
                return
            now = time.time_ns()
            on_batch(now, [Ev(str(e.kind.value), e.path, e.src_path, e.is_dir, e) for e in batch])

    def stop(self) -> None:
        self._watcher.close()


class Watchdog:
    """watchdog's default ``Observer`` (inotify on Linux), recursive."""

    name = "watchdog"
    settings = "Observer() (inotify), recursive=True"

    def __init__(self, root: str) -> None:
        import watchdog.observers  # imported here: import time is not startup time

        self.root = root
        self._cls = watchdog.observers.Observer
        self._observer: Any = None
        self._stopped = threading.Event()

    def start(self, on_batch: OnBatch) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        class Handler(FileSystemEventHandler):
            def dispatch(self, event: FileSystemEvent) -> None:
                now = time.time_ns()
                on_batch(now, [_watchdog_ev(event)])

        self._observer = self._cls()
        self._observer.schedule(Handler(), self.root, recursive=True)
        self._observer.start()

    def run(self) -> None:
        self._stopped.wait()  # events are delivered on the observer's own thread

    def stop(self) -> None:
        try:
            self._observer.stop()  # can raise (watchdog 7.1 after a storm of renames)
        finally:
            self._stopped.set()
            self._observer.join(timeout=10)


def _watchdog_ev(event: Any) -> Ev:
    kind = event.event_type
    if kind not in ("created", "deleted", "modified", "moved"):
        kind = "other"
    elif kind == "modified" and event.is_directory:
        kind = "other"  # the parent of a changed entry, not a change of its own
    if kind == "moved":
        return Ev(kind, os.fsdecode(event.dest_path), os.fsdecode(event.src_path),
                  event.is_directory)
    return Ev(kind, os.fsdecode(event.src_path), None, event.is_directory)


class Watchfiles:
    """``watchfiles.watch`` with no filter; ``yield_on_timeout`` tells when it is ready."""

    name = "watchfiles"

    def __init__(self, root: str, *, debounce: int, step: int, rust_timeout: int) -> None:
        import watchfiles  # imported here: import time is not startup time

        self._watch = watchfiles.watch
        self.root = root
        self.debounce, self.step, self.rust_timeout = debounce, step, rust_timeout
        self.settings = f"debounce={debounce}, step={step}"
        self._stop = threading.Event()
        self._gen: Any = None
        self._on_batch: OnBatch | None = None

    def start(self, on_batch: OnBatch) -> None:
        self._on_batch = on_batch
        self._gen = self._watch(
            self.root,
            watch_filter=None,
            debounce=self.debounce,
            step=self.step,
            rust_timeout=self.rust_timeout,
            yield_on_timeout=True,
            stop_event=self._stop,
            raise_interrupt=False,
        )
        first = next(self._gen)  # the watches are in place once anything comes out
        if first:
            self._deliver(time.time_ns(), first)

    def run(self) -> None:
        for changes in self._gen:
            if changes:
                self._deliver(time.time_ns(), changes)

    def _deliver(self, now: int, changes: set[tuple[Any, str]]) -> None:
        assert self._on_batch is not None
        self._on_batch(now, [Ev(_WATCHFILES_KINDS[int(c)], p, None, None) for c, p in changes])

    def stop(self) -> None:
        self._stop.set()


_WATCHFILES_KINDS = {1: "created", 2: "modified", 3: "deleted"}

#: Every configuration measured, by column name; a baseline is ``crosswatch@REV``.
TOOLS = ("crosswatch", "watchdog", "watchfiles", "watchfiles-default")


def is_crosswatch(name: str) -> bool:
    """This checkout's crosswatch or a baseline revision of it."""
    return name == "crosswatch" or name.startswith("crosswatch@")


def make(name: str, root: str, *, rust_timeout: int = 100) -> Tool:
    """The adapter for column ``name``; ``rust_timeout`` (ms) only matters to watchfiles."""
    if is_crosswatch(name):
        return Crosswatch(root, name)
    if name == "watchdog":
        return Watchdog(root)
    if name == "watchfiles":
        return Watchfiles(root, debounce=1, step=1, rust_timeout=rust_timeout)
    if name == "watchfiles-default":
        return Watchfiles(root, debounce=1600, step=50, rust_timeout=rust_timeout)
    raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOLS)} "
                     "or crosswatch@REV")

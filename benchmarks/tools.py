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
import sys
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


class Remote:
    """crosswatch across the network: ``crosswatch publish`` in a process of its own
    sends the tree's batches to the NATS server at ``$CROSSWATCH_BENCH_NATS``, and a
    :class:`crosswatch.Follower` here hands them over. Its ``now`` is when the
    follower hands a batch over: the time from a write includes the watcher, the
    publish, JetStream's storing, and the follower's fetch."""

    name = "crosswatch-remote"
    settings = "crosswatch publish (inotify) -> nats-server -js -> Follower"

    def __init__(self, root: str) -> None:
        import subprocess

        self.root = root
        self.url = os.environ["CROSSWATCH_BENCH_NATS"]
        self.stream = f"bench{os.getpid()}"
        self._publisher = subprocess.Popen(
            [sys.executable, "-m", "crosswatch", "publish", root, "--to", self.url,
             "--stream", self.stream, "--backend", "inotify"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        self._loop: Any = None
        self._task: Any = None
        self._on_batch: OnBatch | None = None

    def start(self, on_batch: OnBatch) -> None:
        import asyncio

        from crosswatch import Follower
        from crosswatch._publish import root_id

        assert self._publisher.stderr is not None
        line = self._publisher.stderr.readline()  # once its first baseline is stored
        if "publishing to" not in line:
            raise RuntimeError(f"the publisher did not begin: {line!r}")
        self._on_batch = on_batch
        # Ready once the follower has loaded the baseline: the tree as it was, which
        # is not a change and is not handed on.
        self._loop = asyncio.new_event_loop()
        self._follower = Follower(self.url, self.stream, root=root_id(self.root), wait=0.5)
        self._loop.run_until_complete(self._follower.open())
        self._batches = self._follower.__aiter__()
        self._loop.run_until_complete(anext(self._batches))

    def run(self) -> None:
        import asyncio

        on_batch = self._on_batch
        assert on_batch is not None

        async def consume() -> None:
            async for batch in self._batches:
                now = time.time_ns()
                on_batch(now, [Ev(str(e.kind.value), e.path, e.src_path, e.is_dir, e)
                               for e in batch])

        self._task = self._loop.create_task(consume())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._loop.run_until_complete(self._follower.close())
            self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._publisher.terminate()
        self._publisher.wait()
        if self._publisher.stderr is not None:
            self._publisher.stderr.close()


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
TOOLS = ("crosswatch", "crosswatch-remote", "watchdog", "watchfiles", "watchfiles-default")


def is_crosswatch(name: str) -> bool:
    """This checkout's crosswatch or a baseline revision of it."""
    return name == "crosswatch" or name.startswith("crosswatch@")


def make(name: str, root: str, *, rust_timeout: int = 100) -> Tool:
    """The adapter for column ``name``; ``rust_timeout`` (ms) only matters to watchfiles."""
    if is_crosswatch(name):
        return Crosswatch(root, name)
    if name == "crosswatch-remote":
        return Remote(root)
    if name == "watchdog":
        return Watchdog(root)
    if name == "watchfiles":
        return Watchfiles(root, debounce=1, step=1, rust_timeout=rust_timeout)
    if name == "watchfiles-default":
        return Watchfiles(root, debounce=1600, step=50, rust_timeout=rust_timeout)
    raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOLS)} "
                     "or crosswatch@REV")

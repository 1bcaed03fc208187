"""An FSEvents emulation on Linux, for testing the backend where there is no macOS.

:class:`FSEventsEmulation` has the methods of the backend's door (``CoreServicesAPI``),
in the shapes of the real calls; :class:`EmulatedFSEvents` is the backend with it
as its ``system``::

    from crosswatch_fsevents.testing import EmulatedFSEvents, FSEventsEmulation

    with crosswatch.Watcher(root, backend=EmulatedFSEvents) as w: ...

    class Mine(FSEventsBackend):        # an emulation of one's own, to inject failures
        system = FSEventsEmulation(queue_bound=100)

Each started stream runs a thread over raw inotify records
(:class:`crosswatch.testing.Inotify`) and calls back with FSEvents' semantics,
the inconvenient ones included:

* paths, recursively: every directory under a path is watched, new ones too, and
  what was made in a new directory before its watch is reported by listing it;
* delivery after the latency: the changes of one window are one callback (with
  ``NoDefer``, the first change after a quiet spell goes at once); per path, the
  flags of every change in the window are OR'ed into ONE event, so a file created,
  written and removed is one event with the three flags, their order lost;
* ``ItemIsFile``/``ItemIsDir``/``ItemIsSymlink``, ``ItemInodeMetaMod`` for a changed
  inode, ``ItemRenamed`` on both the old and the new path, paired by nothing but
  the file id of the extended data (the inode number);
* event ids increasing, system-wide (one counter per emulation); a stream started
  ``sinceWhen`` an id replays what the emulation's streams recorded since, under
  its paths, then ``HistoryDone``;
* ``WatchRoot``: the directories on the way to each path are watched, and an entry
  on the way renamed, removed or created is ``RootChanged`` (path as given, id 0);
* more paths pending than ``queue_bound``, or inotify's own overflow: the events
  are dropped, and each path gets ``MustScanSubDirs | UserDropped``.

Failures on demand, for the next callback of every started stream:
:meth:`FSEventsEmulation.inject` (``"drop"``, ``"garble-types"``,
``"garble-lengths"``, ``"garble-entries"``, ``"stray"``), and
:attr:`FSEventsEmulation.refuse` (paths whose streams do not start).
"""

from __future__ import annotations

import itertools
import os
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any

from . import _flags as F
from ._backend import FSEventsBackend
from ._coreservices import CoreServicesUnavailable, StreamCallback
from ._emulated_tree import Change, Tree

__all__ = ["INJECTIONS", "EmulatedFSEvents", "FSEventsEmulation"]

INJECTIONS = frozenset({"drop", "garble-types", "garble-lengths", "garble-entries", "stray"})
#: Where an injected stray event is: under no root.
STRAY = "/nonexistent-fsevents-root/stray"
#: How long a flush or a stop waits for the stream's thread (it never takes long).
WAIT = 10.0


class FSEventsEmulation:
    """The door of the FSEvents backend, emulated on Linux (see the module docstring).

    ``extended``: whether ``UseExtendedData`` gives file ids (macOS 10.13 and later);
    ``queue_bound``: paths pending in one window before the stream drops them;
    ``history``: how many changes are kept for streams started ``sinceWhen`` an id.
    """

    def __init__(self, *, extended: bool = True, queue_bound: int = 4096,
                 history: int = 100_000) -> None:
        self.extended = extended
        self.queue_bound = queue_bound
        self.refuse: set[str] = set()
        """Paths (and what is below them) for which ``FSEventStreamStart`` fails."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1001)
        self._last = 1000
        self._journal: deque[tuple[int, str, int, int | None]] = deque(maxlen=history)
        self._live: set[EmulatedStream] = set()
        self.created = 0
        """Streams created so far (each watch or unwatch of the backend makes one)."""

    # ------------------------------------------------------------ the door

    def unavailable(self) -> str | None:
        platform: str = sys.platform
        return None if platform.startswith("linux") else "the FSEvents emulation needs Linux"

    def load(self) -> None:
        reason = self.unavailable()
        if reason is not None:
            raise CoreServicesUnavailable(reason)

    def extended_data(self) -> bool:
        return self.extended

    def current_event_id(self) -> int:
        with self._lock:
            return self._last

    def queue_create(self, label: str) -> Any:
        return _Queue(label)

    def queue_sync(self, queue: Any) -> None:
        """Callbacks run on the streams' threads, which a stop joins: nothing waits."""

    def queue_release(self, queue: Any) -> None:
        queue.released = True

    def stream_create(self, callback: StreamCallback, paths: Sequence[str], since_when: int,
                      latency: float, flags: int) -> Any | None:
        if not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            return None
        self.created += 1
        return EmulatedStream(self, callback, list(paths), since_when, latency, flags)

    def stream_set_dispatch_queue(self, stream: Any, queue: Any) -> None:
        stream.queue = queue

    def stream_start(self, stream: Any) -> bool:
        return bool(stream.start())

    def stream_flush_sync(self, stream: Any) -> None:
        stream.flush()

    def stream_stop(self, stream: Any) -> None:
        stream.stop()

    def stream_invalidate(self, stream: Any) -> None:
        stream.stop()

    def stream_release(self, stream: Any) -> None:
        stream.release()

    # ------------------------------------------------------------ failures, on demand

    def inject(self, kind: str) -> None:
        """Make the next callback of every started stream carry ``kind`` (see
        :data:`INJECTIONS`): a forced drop, a garbled callback, an event under no root."""
        if kind not in INJECTIONS:
            raise ValueError(f"unknown injection {kind!r}; one of {sorted(INJECTIONS)}")
        with self._lock:
            live = list(self._live)
        for stream in live:
            stream.inject(kind)

    @property
    def live(self) -> int:
        """Streams started and not stopped."""
        with self._lock:
            return len(self._live)

    # ------------------------------------------------------------ shared by the streams

    def _record(self, path: str, flags: int, file_id: int | None) -> int:
        """The next event id, with the change kept for later replays."""
        with self._lock:
            self._last = event_id = next(self._ids)
            self._journal.append((event_id, path, flags, file_id))
            return event_id

    def _next_id(self) -> int:
        """The next event id, for an event that is no change (a loss, an injection)."""
        with self._lock:
            self._last = event_id = next(self._ids)
            return event_id

    def _since(self, since: int, tops: list[str]) -> list[tuple[int, str, int, int | None]]:
        with self._lock:
            journal = list(self._journal)
        return [j for j in journal if j[0] > since and any(_under(j[1], t) for t in tops)]

    def _started(self, stream: EmulatedStream, alive: bool) -> None:
        with self._lock:
            (self._live.add if alive else self._live.discard)(stream)


class _Queue:
    def __init__(self, label: str) -> None:
        self.label = label
        self.released = False


class EmulatedStream:
    """One emulated ``FSEventStreamRef``: its watches, its window, its thread."""

    def __init__(self, emulation: FSEventsEmulation, callback: StreamCallback,
                 paths: list[str], since: int, latency: float, flags: int) -> None:
        self.emulation = emulation
        self.callback = callback
        self.paths = paths
        self.since = since
        self.latency = latency
        self.flags = flags
        asked = bool(flags & F.kFSEventStreamCreateFlagUseExtendedData)
        self.extended = emulation.extended and asked
        self.queue: _Queue | None = None
        self._tree: Tree | None = None
        self._thread: threading.Thread | None = None
        self._ctl: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._injections: list[str] = []
        self._flushes: list[threading.Event] = []
        self._stopping = threading.Event()
        # the window: path -> [path, flags, id, file id]; specials keyed apart
        self._pending: dict[str, list[Any]] = {}
        self._window: float | None = None
        self._last = -float("inf")
        self._dropped = False
        self._history: list[tuple[int, str, int, int | None]] | None = None

    # ------------------------------------------------------------ the calls

    def start(self) -> bool:
        """Watch now (changes from here on are caught), then call back from a thread."""
        if self.queue is None or self._thread is not None or self._stopping.is_set():
            return False
        if any(_under(p, r) for p in self.paths for r in self.emulation.refuse):
            return False
        try:
            watch_root = bool(self.flags & F.kFSEventStreamCreateFlagWatchRoot)
            self._tree = Tree(self.paths, watch_root=watch_root, record=self._change)
        except OSError:
            return False
        if self.since != F.kFSEventStreamEventIdSinceNow:
            self._history = self.emulation._since(self.since, [r.real for r in self._tree.roots])
        self._ctl = os.pipe()
        os.set_blocking(self._ctl[0], False)
        self._thread = threading.Thread(target=self._run, name="fsevents-emulation", daemon=True)
        self.emulation._started(self, True)
        self._thread.start()
        return True

    def flush(self) -> None:
        """Every change so far delivered when this returns (``FSEventStreamFlushSync``)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        done = threading.Event()
        with self._lock:
            self._flushes.append(done)
        self._wake()
        done.wait(WAIT)

    def stop(self) -> None:
        """No callback after this returns; the thread is joined."""
        self._stopping.set()
        self.emulation._started(self, False)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            self._wake()
            thread.join(WAIT)

    def release(self) -> None:
        self.stop()
        if self._tree is not None:
            self._tree.close()
            self._tree = None
        if self._ctl is not None:
            for fd in self._ctl:
                os.close(fd)
            self._ctl = None

    def inject(self, kind: str) -> None:
        with self._lock:
            self._injections.append(kind)
        self._wake()

    def _wake(self) -> None:
        ctl = self._ctl
        if ctl is not None:
            try:
                os.write(ctl[1], b"!")
            except OSError:
                pass  # full: awake already

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        tree, ctl = self._tree, self._ctl
        assert tree is not None
        assert ctl is not None
        if self._history is not None:
            self._replay(self._history)
            self._history = None
        while not self._stopping.is_set():
            select.select([*tree.fds(), ctl[0]], [], [], self._timeout())
            try:
                while os.read(ctl[0], 512):
                    pass
            except OSError:
                pass
            if self._stopping.is_set():
                break
            tree.read()
            if tree.overflowed:
                tree.overflowed = False
                self._drop()
            with self._lock:
                flushes, self._flushes = self._flushes, []
                injected = bool(self._injections)
            due = self._due()
            if flushes or injected or (due is not None and time.monotonic() >= due):
                self._deliver()
            for done in flushes:
                done.set()
        with self._lock:
            flushes, self._flushes = self._flushes, []
        for done in flushes:
            done.set()

    def _timeout(self) -> float | None:
        due = self._due()
        return None if due is None else max(0.0, due - time.monotonic())

    def _due(self) -> float | None:
        """When the window is delivered: the latency after the last delivery (or after
        its first change); with ``NoDefer``, at once after a quiet spell."""
        if self._window is None:
            return None
        if self.flags & F.kFSEventStreamCreateFlagNoDefer:
            if self._window - self._last >= self.latency:
                return self._window
            return self._last + self.latency
        return max(self._window, self._last) + self.latency

    def _change(self, change: Change) -> None:
        """One change from the tree: recorded, and OR'ed into its path's event."""
        path, flags, file_id = change
        special = bool(flags & F.kFSEventStreamEventFlagRootChanged)
        event_id = 0 if special else self.emulation._record(path, flags, file_id)
        if not special and not self.flags & F.kFSEventStreamCreateFlagFileEvents:
            path, flags, file_id = os.path.dirname(path) + "/", 0, None  # directory level
        if self._window is None:
            self._window = time.monotonic()
        if self._dropped and not special:
            return  # dropped with the rest; the rescan asked for covers it
        key = ("\0" if special else "") + path
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = [path, flags, event_id, file_id]
        else:
            entry[1] |= flags
            entry[2] = max(entry[2], event_id)
            entry[3] = file_id if file_id is not None else entry[3]
        if len(self._pending) > self.emulation.queue_bound:
            self._drop()

    def _drop(self) -> None:
        self._pending = {k: e for k, e in self._pending.items() if k.startswith("\0")}
        self._dropped = True
        if self._window is None:
            self._window = time.monotonic()

    def _replay(self, history: list[tuple[int, str, int, int | None]]) -> None:
        """A stream started ``sinceWhen``: the changes since, coalesced, then HistoryDone."""
        for _, path, flags, file_id in history:
            self._change((path, flags, file_id))
        events = self._events()
        assert self._tree is not None
        events.append([self._tree.roots[0].real, F.kFSEventStreamEventFlagHistoryDone, 0, None])
        self._call(events)

    def _events(self) -> list[list[Any]]:
        """The window's events, in id order (RootChanged last), and a fresh window."""
        pending = sorted(self._pending.values(), key=lambda e: (e[2] == 0, e[2]))
        if self._dropped:
            assert self._tree is not None
            lost = F.kFSEventStreamEventFlagMustScanSubDirs | F.kFSEventStreamEventFlagUserDropped
            pending = [[r.real, lost, self.emulation._next_id(), None]
                       for r in self._tree.roots] + pending
        self._pending, self._window, self._dropped = {}, None, False
        return pending

    def _deliver(self) -> None:
        with self._lock:
            injections, self._injections = self._injections, []
        if "drop" in injections:
            self._drop()
        events = self._events()
        if "stray" in injections:
            events.append([STRAY, F.kFSEventStreamEventFlagItemModified
                           | F.kFSEventStreamEventFlagItemIsFile,
                           self.emulation._next_id(), None])
        if not events and not injections:
            return
        if not events:  # something to garble
            assert self._tree is not None
            root = self._tree.roots[0].real
            events = [[root, F.kFSEventStreamEventFlagItemInodeMetaMod
                       | F.kFSEventStreamEventFlagItemIsDir, self.emulation._next_id(),
                       None]]
        self._last = time.monotonic()
        self._call(events, set(injections))

    def _call(self, events: list[list[Any]], garble: Collection[str] = ()) -> None:
        items: list[object] = []
        for path, _, _, file_id in events:
            raw = os.fsencode(path)
            if not self.extended:
                items.append(raw)
            elif file_id is None:
                items.append({F.kFSEventStreamEventExtendedDataPathKey: raw})
            else:
                items.append({F.kFSEventStreamEventExtendedDataPathKey: raw,
                              F.kFSEventStreamEventExtendedFileIDKey: file_id})
        flags: list[Any] = [e[1] for e in events]
        ids: list[Any] = [e[2] for e in events]
        if "garble-types" in garble:
            flags = [str(f) for f in flags]
        if "garble-lengths" in garble:
            ids = ids[:-1]
        if "garble-entries" in garble:
            items = [len(items)] * len(items)
        self.callback(items, flags, ids)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


class EmulatedFSEvents(FSEventsBackend):
    """The FSEvents backend over :class:`FSEventsEmulation`: the same code as on macOS."""

    system = FSEventsEmulation()

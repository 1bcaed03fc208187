"""The backend's one stream over every path, replaced when the paths change, and the
hand-over of its callbacks from the dispatch queue's thread to the watcher's.

A replacement is made without a gap: the new stream is started first, from the
latest event id delivered (``sinceWhen``), so FSEvents replays what happened since;
only then is the old one flushed (every event it holds is delivered), stopped,
invalidated and released. Events seen by both come twice: the engine verifies
every hint against the disk, so a second report of a change finds its cache
already agreeing, and nothing is reported twice (the decoder does not drop them).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from crosswatch.backend import Waker, WatchError

from . import _flags
from ._coreservices import CoreServicesAPI

_U64 = 0xFFFFFFFFFFFFFFFF

#: One callback as handed over: (events, flags, ids, file ids or None, extended?).
Callback = tuple[Sequence[object], Sequence[object], Sequence[object], Sequence[object] | None,
                 bool]


class StreamError(WatchError):
    """FSEvents refused the stream over these paths (create or start failed)."""


class Stream:
    """The live stream (or none) over a set of paths, and what its callbacks brought."""

    def __init__(self, system: CoreServicesAPI, latency: float, flags: int) -> None:
        self.system = system
        self.latency = latency
        self.flags = flags
        self.extended = bool(flags & _flags.kFSEventStreamCreateFlagUseExtendedData)
        self.paths: tuple[str, ...] = ()
        self.waker = Waker()
        self._lock = threading.Lock()
        self._pending: deque[Callback] = deque()
        self._seen: int | None = None  # the latest event id handed over
        self._base: int | None = None  # the system's event id when the first stream began
        self._queue: Any = None
        self._stream: Any = None
        self._closed = False

    @property
    def latest_id(self) -> int | None:
        """The latest event id delivered: where a later stream resumes (``sinceWhen``)."""
        with self._lock:
            return self._seen

    # ------------------------------------------------------------ the paths

    def watch(self, paths: Sequence[str]) -> None:
        """Make the stream cover exactly ``paths``; raise :class:`StreamError` (and keep
        the stream as it was) if FSEvents refuses the new one."""
        wanted = tuple(dict.fromkeys(paths))
        if wanted == self.paths or self._closed:
            return
        old = self._stream
        new = self._open(wanted) if wanted else None
        self._stream, self.paths = new, wanted
        if old is not None:
            self._shut(old, flush=True)

    def _open(self, paths: tuple[str, ...]) -> Any:
        system = self.system
        if self._queue is None:
            self._queue = system.queue_create("org.crosswatch.fsevents")
        if self._stream is None and self._seen is None and self._base is None:
            since = _flags.kFSEventStreamEventIdSinceNow
            self._base = system.current_event_id()
        else:
            seen = self.latest_id
            since = seen if seen is not None else (self._base or 0)
        stream = system.stream_create(self._deliver, paths, since, self.latency, self.flags)
        if stream is None:
            raise StreamError(f"FSEventStreamCreate refused the paths {list(paths)!r}; "
                              "use backend='kqueue' or 'polling' for them")
        system.stream_set_dispatch_queue(stream, self._queue)
        if not system.stream_start(stream):
            self._shut(stream, flush=False, started=False)
            raise StreamError(
                f"FSEventStreamStart failed for {list(paths)!r}: FSEvents cannot watch a "
                "volume there (a network or FUSE volume, or one without FSEvents); use "
                "backend='kqueue' or 'polling' for it"
            )
        return stream

    def _shut(self, stream: Any, *, flush: bool, started: bool = True) -> None:
        """Every way out of a stream: flushed (if asked), stopped, invalidated, released."""
        system = self.system
        try:
            if started:
                if flush:
                    system.stream_flush_sync(stream)
                system.stream_stop(stream)
        finally:
            try:
                system.stream_invalidate(stream)
            finally:
                system.stream_release(stream)

    # ------------------------------------------------------------ the hand-over

    def _deliver(self, events: list[object], flags: list[int], ids: list[int]) -> None:
        """The stream's callback, on the dispatch queue's thread: keep, and wake."""
        self.put(events, flags, ids, None, extended=self.extended)

    def put(
        self,
        events: Sequence[object],
        flags: Sequence[object],
        ids: Sequence[object],
        file_ids: Sequence[object] | None,
        *,
        extended: bool,
    ) -> None:
        with self._lock:
            if self._closed:
                return
            self._pending.append((events, flags, ids, file_ids, extended))
            self._seen = _latest(self._seen, flags, ids)
        self.waker.wake()

    def take(self) -> list[Callback]:
        """Every callback handed over so far, oldest first (the wake-ups drained first,
        so one that comes in the meantime wakes the loop again)."""
        self.waker.drain()
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def close(self) -> None:
        """Stop, invalidate and release the stream, wait until its queue has run every
        callback already queued, and release the queue; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        stream, self._stream, self.paths = self._stream, None, ()
        try:
            if stream is not None:
                self._shut(stream, flush=False)
        finally:
            queue, self._queue = self._queue, None
            if queue is not None:
                self.system.queue_sync(queue)
                self.system.queue_release(queue)
            with self._lock:
                self._pending.clear()
            self.waker.close()


def _latest(seen: int | None, flags: Sequence[object], ids: Sequence[object]) -> int | None:
    """``seen`` after a callback's ids (0s aside; a wrap restarts it), as the decoder
    counts them; values that are not ids are the decoder's to refuse."""
    for f, i in zip(flags, ids, strict=False):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i <= _U64:
            continue
        if isinstance(f, int) and f & _flags.kFSEventStreamEventFlagEventIdsWrapped:
            seen = i or None
        elif i and (seen is None or i > seen):
            seen = i
    return seen

"""The watcher's thread: wait, feed the engine, deliver.

It waits on the backends' descriptors and deadlines and on the watcher's waker
(``_os.Waker``); nothing else wakes it, so an idle watcher costs nothing. While the
consumer is too far behind (:meth:`EventQueue.must_pause`), it neither reads the backends
nor lets the engine settle what is due: the kernel keeps what it can meanwhile.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from ._backend import Backend
from ._coalesce import coalesce
from ._engine import Engine, Stopped
from ._events import Change, Event, event_bytes
from ._feed import feed
from ._os import Waker
from ._queue import EventQueue
from ._snaplive import Requests

Callback = Callable[[list[Event]], object]


class Loop:
    """One watcher's thread, from its start to the end of the stream."""

    def __init__(
        self,
        engine: Engine,
        queue: EventQueue,
        *,
        wake: Waker,
        kinds: frozenset[Change] | None,
        debounce: float,
        callback: Callback | None,
        settle: float = 0.0,
        coalesce: bool = False,
        snapshots: Requests | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self._wake = wake
        self._kinds = kinds
        self._debounce = debounce
        self._settle = settle
        self._coalesce = coalesce
        # With coalescing: the ids of the batch's moves onto a free name, and of
        # those that replaced an entry.
        self._onto: tuple[set[int], set[int]] = (set(), set())
        self._callback = callback
        self._snapshots = snapshots
        self._watched: dict[int, Backend] = {}
        # The batch being gathered (for ``debounce`` and ``settle``), not queued yet.
        self._batch: list[Event] = []
        self._bytes = 0
        self._due: float | None = None

    def run(self) -> None:
        """Deliver until closed, until no root is left, or until an error (handed over)."""
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake.fileno(), selectors.EVENT_READ, None)
            self._loop(selector)
        except Stopped:
            pass  # closed in the middle of reading a tree
        except BaseException as exc:  # handed to the consumer, never lost
            self.queue.end(exc)
        finally:
            selector.close()
            self.queue.end()
            if self._snapshots is not None:
                self._snapshots.close()

    def full(self) -> bool:
        """Has the consumer all it can take, counting what is not queued yet?"""
        queue, out = self.queue, self.engine.out
        if queue.closed:  # it wants nothing more: a long rescan stops at once
            return True
        return queue.must_pause(len(self._batch) + len(out), self._bytes + out.nbytes)

    def _loop(self, selector: selectors.BaseSelector) -> None:
        engine, queue, full = self.engine, self.queue, self.full
        while not queue.closed:
            queue.decide_pause(len(self._batch), self._bytes)
            self._sync_fds(selector)
            drained = True
            for key, _ in selector.select(self._timeout()):
                if key.data is None:
                    self._wake.drain()
                elif not queue.paused:
                    feed(engine, key.data, full=full)
                    drained = False
            if not queue.paused:
                for backend in engine.backends():
                    due = backend.deadline()
                    # The clock is read after asking: a backend due at once answers
                    # time.monotonic(), later than any time taken before.
                    if due is not None and due <= time.monotonic():
                        feed(engine, backend, full=full)
                if drained:
                    # Only once the backends had nothing more to say: a moved_to still
                    # in the kernel's queue must not find its moved_from settled
                    # already. Not while paused either: the kernel's queue is unread.
                    engine.expire(full=full)
            self._gather(engine.take())
            if self._snapshots and not engine.busy():
                # Between rounds of work: the cache holds what the events told.
                self._deliver()
                self._snapshots.serve(engine, queue)
            if not engine.watched:
                self._deliver()
                return

    def _gather(self, events: list[Event]) -> None:
        """Add ``events`` (the kinds asked for) to the batch; deliver it when due.

        When coalescing, every kind is kept until the batch is merged: the rules
        need the whole stream.
        """
        if self._coalesce:
            for known, taken in zip(self._onto, self.engine.out.taken_onto, strict=True):
                known.update(taken)
        elif self._kinds is not None:
            events = [e for e in events if e.kind in self._kinds]
        if events:
            if not self._batch and self._debounce > 0:
                self._due = time.monotonic() + self._debounce
            if self._settle > 0:  # quiet for that long since the last event: pushed on
                quiet = time.monotonic() + self._settle
                self._due = quiet if self._due is None else max(self._due, quiet)
            self._batch.extend(events)
            self._bytes += event_bytes(events)
        if self._batch and (self._due is None or time.monotonic() >= self._due):
            self._deliver()

    def _deliver(self) -> None:
        batch, nbytes = self._batch, self._bytes
        self._batch, self._bytes, self._due = [], 0, None
        if batch and self._coalesce:
            batch, nbytes = self._merged(batch)
        if not batch:
            return
        if self._callback is None:
            self.queue.put(batch, nbytes)
            return
        # Nothing queues in callback mode (the loop waits for the callback), so there
        # is nothing to merge; longer batches are cut to max_batch.
        step = self.queue.max_batch
        for start in range(0, len(batch), step):
            self._callback(batch if len(batch) <= step else batch[start : start + step])

    def _merged(self, batch: list[Event]) -> tuple[list[Event], int]:
        """The batch coalesced, then cut to the kinds asked for; and its bytes."""
        (free, held), self._onto = self._onto, (set(), set())
        merged = coalesce(
            batch, onto_free=lambda e: id(e) in free, onto_entry=lambda e: id(e) in held
        )
        if self._kinds is not None:
            merged = [e for e in merged if e.kind in self._kinds]
        return merged, event_bytes(merged)

    def _sync_fds(self, selector: selectors.BaseSelector) -> None:
        """Listen to backends' descriptors, except while the consumer is too far behind."""
        watched = self._watched
        wanted: dict[int, Backend] = {}
        if not self.queue.paused:
            for backend in self.engine.backends():
                fd = backend.fileno()
                if fd is not None:
                    wanted[fd] = backend
        for fd in list(watched):
            if wanted.get(fd) is not watched[fd]:
                selector.unregister(fd)
                del watched[fd]
        for fd, backend in wanted.items():
            if fd not in watched:
                selector.register(fd, selectors.EVENT_READ, backend)
                watched[fd] = backend

    def _timeout(self) -> float | None:
        dues: list[float] = []
        if self._due is not None:
            dues.append(self._due)
        if not self.queue.paused:
            pending = self.engine.next_deadline()
            if pending is not None:
                dues.append(pending)
            for backend in self.engine.backends():
                due = backend.deadline()
                if due is not None:
                    dues.append(due)
        if not dues:
            return None  # idle: sleep until a descriptor or close() wakes us
        return max(0.0, min(dues) - time.monotonic())


"""The queue between a watcher's thread and its consumer, bounded in events and bytes.

The watcher's thread puts batches in; ``get()`` takes every batch waiting, merged,
up to ``max_batch`` events. Past ``max_queue`` events or ``max_queue_bytes`` of them
the thread stops reading the OS (:meth:`EventQueue.must_pause`) until the consumer
has taken the queue down to half of both: load is shed in the kernel, whose
overflow the engine repairs with a rescan, not by growing this queue.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._events import Event, event_bytes


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for the consumer of a :class:`Watcher` (a snapshot, read-only)."""

    events: int
    """Events queued and not yet handed over by ``get()``."""
    bytes: int
    """Their estimated memory (see ``max_queue_bytes``)."""
    paused: bool
    """Reading from the OS is paused: a bound was reached and the queue is not yet
    down to half of both."""
    peak_events: int
    """The most events queued at once since the watcher started."""
    peak_bytes: int
    """The most estimated bytes queued at once since the watcher started."""


class EventQueue:
    """Batches of events waiting for the consumer, and how the stream ends.

    ``on_room`` is called (outside the lock) when a ``get()`` has taken a paused
    queue down to half of both bounds: the watcher's thread wakes and reads again.
    Functions given to :meth:`listen` are called (outside the lock, from the thread
    that did it) whenever a batch is put or the stream ends: a consumer that does
    not block in ``get()`` (an event loop) learns when to call it.
    """

    def __init__(
        self, *, max_queue: int, max_queue_bytes: int, max_batch: int,
        on_room: Callable[[], None],
    ) -> None:
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.max_batch = max_batch
        self._on_room = on_room
        self._batches: collections.deque[tuple[list[Event], int]] = collections.deque()
        self._events = 0
        self._bytes = 0
        self._peak = (0, 0)
        self._cond = threading.Condition()
        self.paused = False
        """Reading is paused (decided by :meth:`decide_pause`)."""
        self._closed = False
        self._ended = False
        self._error: BaseException | None = None
        self._listeners: list[Callable[[], None]] = []

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` on every put and at the end (see the class docstring)."""
        self._listeners.append(listener)

    def _tell(self) -> None:
        for listener in self._listeners:
            listener()

    # ------------------------------------------------------------ the thread's side

    def put(self, batch: list[Event], nbytes: int) -> None:
        with self._cond:
            self._batches.append((batch, nbytes))
            self._events += len(batch)
            self._bytes += nbytes
            self._peak = (max(self._peak[0], self._events), max(self._peak[1], self._bytes))
            self._cond.notify_all()
        self._tell()

    def must_pause(self, held: int, held_bytes: int) -> bool:
        """Pause reading once a bound is reached (counting ``held``, what is not queued
        yet); once paused, resume only when the queue is down to half of both."""
        if self.paused:
            return not self._down_to_half()
        return (
            self._events + held >= self.max_queue
            or self._bytes + held_bytes >= self.max_queue_bytes
        )

    def decide_pause(self, held: int, held_bytes: int) -> bool:
        """Set :attr:`paused` to :meth:`must_pause`'s answer, and return it.

        Under the lock ``get()`` takes: a consumer that drains the queue meanwhile
        either comes first, and the answer counts it, or comes after and sees the
        pause, and wakes the thread. Decided outside, the drain could fall between
        the question and the answer, and the thread would sleep for good.
        """
        with self._cond:
            self.paused = self.must_pause(held, held_bytes)
            return self.paused

    def end(self, error: BaseException | None = None) -> None:
        """The stream ended (every root gone, closed, or ``error``)."""
        with self._cond:
            if error is not None:
                self._error = error
            self._ended = True
            self._cond.notify_all()
        self._tell()

    # ------------------------------------------------------------ the consumer's side

    def close(self) -> None:
        """The consumer is done: waiters return ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._tell()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ended(self) -> bool:
        return self._closed or self._ended

    def take_error(self) -> BaseException | None:
        """The error that ended the stream, once (for a consumer that does not get())."""
        with self._cond:
            error, self._error = self._error, None
            return error

    def backlog(self) -> Backlog:
        with self._cond:
            return Backlog(self._events, self._bytes, self.paused, *self._peak)

    def get(self, timeout: float | None = None) -> list[Event] | None:
        """Every event waiting, in order, at most ``max_batch`` of them.

        Waits for one if none is; returns ``[]`` if ``timeout`` passed first and
        ``None`` once the stream ended; raises the error that ended it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._batches:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                if self._closed or self._ended:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cond.wait(remaining)
            batch = self._take()
            room = self.paused and self._down_to_half()
        if room:
            self._on_room()
        return batch

    def take_all(self) -> list[Event]:
        """Every event waiting, however many: a snapshot hands them over at once."""
        with self._cond:
            out = [event for batch, _ in self._batches for event in batch]
            self._batches.clear()
            self._events = self._bytes = 0
            room = self.paused
        if room:
            self._on_room()
        return out

    def _take(self) -> list[Event]:
        """The waiting batches merged, up to ``max_batch`` events (with the lock held)."""
        out: list[Event] = []
        size = 0
        while self._batches and len(out) < self.max_batch:
            batch, nbytes = self._batches[0]
            room = self.max_batch - len(out)
            if len(batch) > room:  # the rest waits for the next call
                batch, rest = batch[:room], batch[room:]
                part = event_bytes(batch)
                self._batches[0] = (rest, nbytes - part)
                nbytes = part
            else:
                self._batches.popleft()
            if out:
                out.extend(batch)
            else:
                out = batch
            size += nbytes
        self._events -= len(out)
        self._bytes -= size
        return out

    def _down_to_half(self) -> bool:
        return self._events <= self.max_queue // 2 and self._bytes <= self.max_queue_bytes // 2

"""Snapshots of a running watcher, consistent with the stream its consumer reads.

The consumer's thread asks (:func:`take`); the watcher's thread answers between
two rounds of the engine's work, never inside one, once it has queued every event
the engine produced. The cache then holds exactly what those events told. The
events still queued are taken out in the same step and handed to the caller, so
the snapshot marks one point of the stream: what ``get()`` returned before, plus
what :func:`take` returns, is what the snapshot holds; everything ``get()``
returns after it is later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _snapfile
from ._errors import SnapshotError
from ._events import Event
from ._snaptree import capture

if TYPE_CHECKING:
    from ._engine import Engine
    from ._queue import EventQueue
    from ._snapfile import Header

#: How often a caller waiting for its snapshot looks whether the queue is full: the
#: watcher's thread then waits for room before it can finish a round of work.
_LOOK = 0.05


class Request:
    """One snapshot asked for, until the watcher's thread answers."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._answer: tuple[Header, list[bytes], list[Event]] | None = None
        self._error: BaseException | None = None

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def answer(self, header: Header, blocks: list[bytes], held: list[Event]) -> None:
        self._answer = (header, blocks, held)
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def outcome(self) -> tuple[Header, list[bytes], list[Event]]:
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer


class Requests:
    """The snapshots asked of one watcher's thread; ``filters`` go into each."""

    def __init__(self, filters: dict[str, Any]) -> None:
        self.filters = filters
        self._lock = threading.Lock()
        self._waiting: list[Request] = []
        self._closed = False

    def __bool__(self) -> bool:
        return bool(self._waiting)  # read by the thread without the lock: a hint only

    def submit(self) -> Request:
        request = Request()
        with self._lock:
            if self._closed:
                request.fail(stopped())
            else:
                self._waiting.append(request)
        return request

    def serve(self, engine: Engine, queue: EventQueue) -> None:
        """Answer every request waiting (the watcher's thread, between rounds of work,
        with every event produced so far queued or delivered)."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for request in waiting:
            try:
                header, blocks = capture(engine, self.filters)
            except SnapshotError as exc:
                request.fail(exc)
                continue
            request.answer(header, blocks, queue.take_all())

    def close(self) -> None:
        """The watcher's thread has ended: what waits, and what comes, fails."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, []
        for request in waiting:
            request.fail(stopped())


def stopped() -> SnapshotError:
    """The error of a snapshot asked of a watcher whose thread has ended."""
    return SnapshotError(
        "the watcher has stopped (closed, or no root is left): a snapshot is taken of a "
        "running watcher, or with crosswatch.snapshot()"
    )


def take(
    requests: Requests, queue: EventQueue, wake: Callable[[], None], file: str
) -> list[Event]:
    """Ask the watcher's thread for a snapshot, write it to ``file``, and return the
    events before it that the consumer has not taken yet."""
    request = requests.submit()
    wake()
    taken: list[Event] = []
    while not request.wait(_LOOK):
        if queue.paused:  # the round cannot end until the consumer makes room
            taken += queue.get(0) or []
    header, blocks, held = request.outcome()
    _snapfile.write(file, header, blocks)
    return taken + held

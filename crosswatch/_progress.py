"""Progress of a watcher's first reading of its roots, for a long one to show."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """How far :meth:`Watcher.start` is in reading the roots: ``directories``
    listed and the ``entries`` they held, after ``seconds``; ``done`` once all are."""

    directories: int
    entries: int
    seconds: float
    done: bool = False


class Meter:
    """Counts listings and hands a :class:`Progress` to ``report`` at most every
    ``interval`` seconds, then once more at :meth:`finish`; quiet after that."""

    def __init__(
        self,
        report: Callable[[Progress], object],
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._next = self._started + interval
        self._directories = 0
        self._entries = 0
        self._active = True

    def begin(self) -> None:
        """The reading starts now: seconds count from here."""
        self._started = self._clock()
        self._next = self._started + self._interval

    def listed(self, entries: int) -> None:
        """One directory of ``entries`` was listed."""
        if not self._active:
            return
        self._directories += 1
        self._entries += entries
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval
            self._report(self._now(now, done=False))

    def finish(self) -> None:
        """The first reading is over: the last report, with ``done``."""
        if self._active:
            self._active = False
            self._report(self._now(self._clock(), done=True))

    def _now(self, now: float, *, done: bool) -> Progress:
        return Progress(self._directories, self._entries, now - self._started, done)

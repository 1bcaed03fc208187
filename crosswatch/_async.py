"""The asyncio API: :class:`AsyncWatcher` and :func:`awatch`.

An :class:`AsyncWatcher` runs a :class:`~crosswatch.Watcher` (the same thread, the
same bounded queue) and hands its batches to a coroutine. The event loop is never
blocked: the watcher's queue tells the loop when a batch is waiting, and reading
the roots in (``start``) runs on a thread of its own, which a cancellation stops
at the next directory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, Protocol

from ._errors import ConfigTypeError
from ._events import Event
from ._setup import Paths
from ._watch import Watcher


class StopEvent(Protocol):
    """What ``stop_event=`` takes: an ``asyncio.Event``, or anything shaped like it."""

    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[Any]: ...


class AsyncWatcher:
    """Batches of :class:`~crosswatch.Event` for ``async for``, under asyncio.

    It takes the keywords of :class:`~crosswatch.Watcher` except ``callback``,
    plus ``stop_event``: once that is set, iteration ends. Use it as
    ``async with awatch("src") as w: async for batch in w: ...``; the block's end
    closes it. Iterated without ``async with``, it starts on the first batch
    asked for and closes when iteration ends, is cancelled, or is dropped.
    """

    def __init__(self, *paths: Paths, stop_event: StopEvent | None = None, **keywords: Any):
        if "callback" in keywords:
            raise ConfigTypeError(
                "awatch() delivers batches to 'async for', so it takes no callback=; "
                "use crosswatch.watch(..., callback=...) for a callback on a thread"
            )
        if stop_event is not None and not (
            callable(getattr(stop_event, "is_set", None))
            and callable(getattr(stop_event, "wait", None))
        ):
            raise ConfigTypeError(
                f"argument stop_event= must be None or an asyncio.Event (something with "
                f"is_set() and an awaitable wait()), got {type(stop_event).__name__} "
                f"{stop_event!r}"
            )
        self._watcher = Watcher(*paths, **keywords)  # every argument checked here
        self._stop_event = stop_event
        self._ready: asyncio.Event | None = None
        self._started = False

    @property
    def watcher(self) -> Watcher:
        """The watcher beneath (``backends``, ``backlog``, ``roots``...)."""
        return self._watcher

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> AsyncWatcher:
        """Read every root in, on a thread, without blocking the loop.

        Cancelled meanwhile, the reading stops at the next directory and the
        watcher is closed before the cancellation goes on.
        """
        if self._started:
            return self
        self._started = True
        loop = asyncio.get_running_loop()
        ready = self._ready = asyncio.Event()

        def tell() -> None:  # on the watcher's thread
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        self._watcher._queue.listen(tell)
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def run() -> None:
            error: BaseException | None = None
            try:
                self._watcher.start()
            except BaseException as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, done, error)
            except RuntimeError:
                pass

        starter = threading.Thread(target=run, name="crosswatch-start", daemon=True)
        starter.start()
        try:
            error = await asyncio.shield(done)
        except asyncio.CancelledError:
            self._watcher.close()  # stops the reading at the next directory
            starter.join()
            raise
        starter.join()
        if error is not None:
            raise error
        return self

    async def aclose(self) -> None:
        """Stop watching and release everything; safe to call twice."""
        self._watcher.close()

    async def __aenter__(self) -> AsyncWatcher:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------ consuming

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Event]]:
        # A generator, so that a loop left by ``break`` (or a task cancelled while
        # it handles a batch) still closes the watcher when the generator is closed.
        try:
            await self.start()
            while True:
                batch = await self.get()
                if batch is None:
                    return
                yield batch
        finally:
            await self.aclose()

    async def get(self) -> list[Event] | None:
        """The events waiting (at most ``max_batch``), once there is one; ``None`` once
        the stream ended or ``stop_event`` is set. Raises the error that ended it."""
        if not self._started:
            await self.start()
        ready = self._ready
        assert ready is not None
        stop = self._stop_event
        while True:
            if stop is not None and stop.is_set():
                return None
            ready.clear()  # before looking: a batch put after this sets it again
            batch = self._watcher.get(timeout=0)
            if batch != []:
                return batch  # events, or None at the end
            await _first(ready, stop)


def _settle(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)


async def _first(ready: asyncio.Event, stop: StopEvent | None) -> None:
    """Wait until ``ready`` is set or ``stop`` is."""
    if stop is None:
        await ready.wait()
        return
    waits = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


#: ``awatch(*paths, stop_event=None, **keywords)``: an unstarted
#: :class:`AsyncWatcher`; ``async for batch in awatch("src"): ...``.
awatch = AsyncWatcher

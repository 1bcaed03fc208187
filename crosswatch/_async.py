"""The async API: :class:`AsyncWatcher` and :func:`awatch`, under asyncio or trio.

An :class:`AsyncWatcher` runs a :class:`~crosswatch.Watcher` (the same thread, the
same bounded queue) and hands its batches to a coroutine. The event loop is never
blocked: the watcher's queue tells the loop when a batch is waiting, and reading
the roots in (``start``) runs on a thread of its own, which a cancellation stops
at the next directory.

What differs between async libraries sits behind one small object each
(:class:`_AsyncioLoop`, :class:`_TrioLoop`), picked when ``start()`` runs. trio is
never imported here: it is found in ``sys.modules``, where a running trio put it.
anyio runs on one of the two, so it is covered by both.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

from ._errors import ConfigTypeError
from ._events import Event
from ._setup import Paths
from ._watch import Watcher


class StopEvent(Protocol):
    """What ``stop_event=`` takes: an ``asyncio.Event`` or a ``trio.Event`` (for the
    library the watcher runs under), or anything shaped like them."""

    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[Any]: ...


class _Flag(Protocol):
    """A clearable event of the running library (``asyncio.Event`` is one)."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self) -> Awaitable[Any]: ...


class _Loop(Protocol):
    """The few things :class:`AsyncWatcher` needs from an async library."""

    def flag(self) -> _Flag:
        """A new, unset flag."""
        ...

    def waker(self, flag: _Flag) -> Callable[[], None]:
        """A callable for any thread that sets ``flag`` soon, on the loop, without
        blocking; once the loop is gone it does nothing."""
        ...

    async def first(self, ready: _Flag, stop: StopEvent) -> None:
        """Wait until ``ready`` or ``stop`` is set."""
        ...


class AsyncWatcher:
    """Batches of :class:`~crosswatch.Event` for ``async for``, under asyncio or trio.

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
                f"argument stop_event= must be None or an asyncio.Event or trio.Event "
                f"(something with is_set() and an awaitable wait()), got "
                f"{type(stop_event).__name__} {stop_event!r}"
            )
        self._watcher = Watcher(*paths, **keywords)  # every argument checked here
        self._stop_event = stop_event
        self._loop: _Loop | None = None
        self._ready: _Flag | None = None
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
        loop = self._loop = _running_loop()
        ready = self._ready = loop.flag()
        self._watcher._queue.listen(loop.waker(ready))
        await _on_thread(loop, self._watcher.start, cancel=self._watcher.close)
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
        loop, ready = self._loop, self._ready
        assert loop is not None
        assert ready is not None
        stop = self._stop_event
        while True:
            if stop is not None and stop.is_set():
                return None
            ready.clear()  # before looking: a batch put after this sets it again
            batch = self._watcher.get(timeout=0)
            if batch != []:
                return batch  # events, or None at the end
            if stop is None:
                await ready.wait()
            else:
                await loop.first(ready, stop)


async def _on_thread(loop: _Loop, work: Callable[[], object], cancel: Callable[[], object]) -> None:
    """Run the blocking ``work()`` on a thread of its own and raise what it raised.

    Cancelled (or interrupted) meanwhile: ``cancel()`` makes ``work()`` return soon,
    the thread is joined, and the cancellation goes on.
    """
    done = loop.flag()
    wake = loop.waker(done)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            wake()

    thread = threading.Thread(target=run, name="crosswatch-start", daemon=True)
    thread.start()
    try:
        await done.wait()
    except BaseException:
        cancel()  # stops the reading at the next directory
        thread.join()
        raise
    thread.join()
    if errors:
        raise errors[0]


def _running_loop() -> _Loop:
    """The object for the async library running this task.

    sniffio (loaded by trio and anyio, never imported here) tells which one;
    without it, the library can only be asyncio.
    """
    sniffio = sys.modules.get("sniffio")
    name = "asyncio"
    if sniffio is not None:
        try:
            name = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            pass  # then asyncio's own check below says what is wrong
    if name == "trio":
        return _TrioLoop(sys.modules["trio"])
    if name != "asyncio":
        raise RuntimeError(f"awatch() runs under asyncio or trio, not under {name}")
    return _AsyncioLoop(asyncio.get_running_loop())


# ---------------------------------------------------------------- asyncio


class _AsyncioLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop

    def flag(self) -> _Flag:
        return asyncio.Event()

    def waker(self, flag: _Flag) -> Callable[[], None]:
        loop = self._loop

        def wake() -> None:  # on any thread
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        return wake

    async def first(self, ready: _Flag, stop: StopEvent) -> None:
        waits = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)


# ---------------------------------------------------------------- trio


class _TrioFlag:
    """A ``trio.Event`` that can be cleared: clearing puts a fresh one in its place."""

    def __init__(self, trio: Any):
        self._trio = trio
        self._event: Any = trio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            self._event = self._trio.Event()

    def is_set(self) -> bool:
        return bool(self._event.is_set())

    async def wait(self) -> None:
        await self._event.wait()


class _TrioLoop:
    def __init__(self, trio: Any):
        self._trio = trio
        self._token: Any = trio.lowlevel.current_trio_token()

    def flag(self) -> _Flag:
        return _TrioFlag(self._trio)

    def waker(self, flag: _Flag) -> Callable[[], None]:
        token, finished = self._token, self._trio.RunFinishedError

        def wake() -> None:  # on any thread
            try:
                token.run_sync_soon(flag.set)
            except finished:
                pass  # the run is over: nobody waits any more

        return wake

    async def first(self, ready: _Flag, stop: StopEvent) -> None:
        async with self._trio.open_nursery() as nursery:

            async def until(wait: Callable[[], Awaitable[Any]]) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until, ready.wait)
            nursery.start_soon(until, stop.wait)


#: ``awatch(*paths, stop_event=None, **keywords)``: an unstarted
#: :class:`AsyncWatcher`; ``async for batch in awatch("src"): ...``.
awatch = AsyncWatcher

"""The follower: a published root's batches, on any machine, with the same guarantee.

A new follower loads the root's newest baseline, hands it over as ``RESYNC``
and a ``CREATED`` event per entry, and then the batches after it. Each batch is
acknowledged when the consumer asks for the next one, so a durable follower
started again goes on after the last batch its consumer took (that one may come
again: at least once). A batch out of turn (a new epoch, or a number skipped
because the stream's limits dropped messages) means the follower lost its
place: it says so with a new ``RESYNC`` and starts again from the newest
baseline. It never hands over a stream with a hole in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any

from . import _baseline
from ._baseline import Mark
from ._errors import FollowerGapError, MessageError, ServerUnreachableError
from ._events import Event
from ._jetstream import JetStreamSource
from ._publish import check_stream_name, subject_of
from ._wire import Message, decode, from_wire

#: How long a follower waits for the baseline of a new epoch (seconds): the
#: publisher stores it right after it starts.
BASELINE_WAIT = 30.0
#: Reads of a baseline before it is called damaged.
DAMAGED_TRIES = 3
#: How long a follower tries to reach a server it lost (seconds), by default.
RECONNECT = 60.0


class Follower:
    """Batches of events of root ``root`` (the id its publisher gave it) of
    ``stream`` at ``url``, with paths under ``into`` (by default, the root's path
    where it is watched).

    ``durable`` names a consumer kept by the server, so that a follower started
    again with that name goes on where the last one stopped. ``options`` are
    the NATS connection's (credentials, TLS, ``timeout``). A connection lost is
    made again every ``retry`` seconds, for ``reconnect`` seconds at most (None:
    for ever). A gap that no baseline covers yet is waited out for ``baseline_wait``
    seconds. ``position`` is the (epoch, number) of the last batch handed over.
    """

    def __init__(self, url: str, stream: str = "crosswatch", *, root: str,
                 into: str | None = None, durable: str | None = None,
                 options: Mapping[str, Any] | None = None, wait: float = 1.0,
                 batch: int = 256, reconnect: float | None = RECONNECT,
                 retry: float = 1.0, baseline_wait: float = BASELINE_WAIT) -> None:
        self.stream = check_stream_name(stream)
        self.root = root
        self.into = into
        self.durable = durable
        self.position: tuple[str, int] | None = None
        self._source = JetStreamSource(url, stream, options or {})
        self._subject = subject_of(stream, root)
        self._wait, self._batch = wait, batch
        self._start: list[Event] = []
        self.reconnect, self.retry = reconnect, retry
        self.baseline_wait = baseline_wait
        self._stream_pos = 0
        """The stream position of the last message handed over (or skipped)."""

    async def open(self) -> Follower:
        try:
            await self._source.open()
            if not await self._resume():
                await self._resync(None)
        except BaseException:
            await self._source.close()
            raise
        return self

    async def close(self) -> None:
        await self._source.close()

    async def __aenter__(self) -> Follower:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------ where to start

    async def _resume(self) -> bool:
        """A durable consumer that took batches before goes on after the last one."""
        if self.durable is None:
            return False
        acked = await self._source.acked(self.durable)
        data = await self._source.message_at(acked) if acked else None
        if data is None:
            return False
        last = self._check(decode(data))
        self.position = (last.epoch, last.seq)
        self._stream_pos = acked
        if self.into is None:  # the path is the baseline's to say
            desc, _ = await self._source.baseline(self.root)
            self.into = Mark.decode(desc).path
        # Made again from there: bound as it was, the batches it had been handed
        # and not acknowledged would come only once the server gives up on them.
        await self._source.consume(self._subject, acked + 1, self.durable)
        return True

    async def _resync(self, gap: Message | None) -> None:
        """Start again from the newest baseline; ``gap``: the batch out of turn."""
        for attempt in range(DAMAGED_TRIES):
            mark, data = await self._baseline_past(gap)
            into = self.into if self.into is not None else mark.path
            try:
                events = _baseline.events(data, mark, into)
                break
            except MessageError:
                # Read while the next one was being stored, its chunks may be gone
                # by the end: read again before calling it damaged.
                if attempt + 1 == DAMAGED_TRIES:
                    raise
                await asyncio.sleep(0.2)
        self.into, self._start = into, events
        self.position = (mark.epoch, mark.seq)
        self._stream_pos = mark.position
        await self._source.consume(self._subject, mark.position + 1, self.durable)

    async def _baseline_past(self, gap: Message | None) -> tuple[Mark, bytes]:
        """The newest baseline, once it covers ``gap``: of a later epoch, or of
        this one up to the batch before it. The publisher stores one when it
        starts and every ``baseline_every`` batches: it is waited for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.baseline_wait
        while True:
            desc, data = await self._source.baseline(self.root)
            mark = Mark.decode(desc)
            if gap is None or self.position is None:
                return mark, data
            later = mark.epoch != self.position[0]
            if later or (gap.epoch == mark.epoch and mark.seq >= gap.seq - 1):
                return mark, data
            if loop.time() > deadline:
                raise FollowerGapError(
                    f"root {self.root}: batch {gap.seq} came after batch {self.position[1]}, "
                    f"and no baseline past the gap came in {self.baseline_wait:g} s: is the "
                    "publisher running? If the stream's limits dropped batches, raise them "
                    "or store baselines more often (baseline_every)")
            await asyncio.sleep(0.2)

    def _check(self, msg: Message) -> Message:
        if msg.root != self.root:
            raise MessageError(f"a message of root {msg.root} came on the subject of root "
                               f"{self.root}: another producer publishes on it")
        return msg

    # ------------------------------------------------------------ the batches

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Event]]:
        while True:
            if self._start:
                start, self._start = self._start, []
                yield start
            try:
                for raw in await self._source.fetch(self._batch, self._wait):
                    msg = self._check(decode(raw.data))
                    assert self.position is not None
                    epoch, seq = self.position
                    if msg.epoch == epoch and msg.seq <= seq:
                        await self._ack(raw)  # held already (sent again, or in the baseline)
                        continue
                    if msg.epoch != epoch or msg.seq != seq + 1:
                        await self._resync(msg)
                        break  # the consumer starts again: what was fetched is dropped
                    assert self.into is not None
                    batch = [from_wire(e, self.into) for e in msg.events]
                    self.position = (msg.epoch, msg.seq)
                    if batch:
                        yield batch
                    await self._ack(raw)  # the consumer took it: it asked for the next
            except ServerUnreachableError as exc:
                # (A resync cut short changed nothing: the batch out of turn comes again.)
                await self._reconnect(exc)

    async def _ack(self, raw: Any) -> None:
        self._stream_pos = int(raw.metadata.sequence.stream)
        with contextlib.suppress(Exception):
            # Lost with the connection, it is not needed: the consumer is made
            # again after the last batch handed over.
            await raw.ack()

    async def _reconnect(self, lost: ServerUnreachableError) -> None:
        """Connect again (every ``retry`` seconds, for ``reconnect`` seconds at most)
        and go on after the last batch handed over."""
        loop = asyncio.get_running_loop()
        deadline = None if self.reconnect is None else loop.time() + self.reconnect
        while True:
            await asyncio.sleep(self.retry)
            await self._source.close()
            try:
                await self._source.open()
                await self._source.consume(self._subject, self._stream_pos + 1, self.durable)
                return
            except ServerUnreachableError:
                if deadline is not None and loop.time() > deadline:
                    raise lost from None


async def afollow(url: str, stream: str = "crosswatch", *, root: str,
                  **keywords: Any) -> AsyncIterator[list[Event]]:
    """The batches of a published root, as :class:`Follower` gives them."""
    async with Follower(url, stream, root=root, **keywords) as follower:
        async for batch in follower:
            yield batch


def follow(url: str, stream: str = "crosswatch", *, root: str,
           **keywords: Any) -> Iterator[list[Event]]:
    """:func:`afollow`, for a program without an event loop: a generator that
    runs one of its own while it is iterated, and closes everything when left
    (also when a signal's exception cuts a wait short)."""
    loop = asyncio.new_event_loop()
    follower = Follower(url, stream, root=root, **keywords)
    batches = follower.__aiter__()
    step: asyncio.Task[list[Event]] | None = None
    try:
        loop.run_until_complete(follower.open())
        while True:
            step = loop.create_task(_next(batches))
            try:
                batch = loop.run_until_complete(step)
            except StopAsyncIteration:
                return
            yield batch
    finally:
        _shut(loop, step, batches, follower)


async def _next(batches: AsyncIterator[list[Event]]) -> list[Event]:
    return await anext(batches)


def _shut(loop: asyncio.AbstractEventLoop, step: asyncio.Task[list[Event]] | None,
          batches: AsyncIterator[list[Event]], follower: Follower) -> None:
    """Stop what runs on ``loop``, in order, and close it."""
    try:
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(step)
        with contextlib.suppress(RuntimeError, StopAsyncIteration):
            loop.run_until_complete(batches.aclose())  # type: ignore[attr-defined]
        loop.run_until_complete(follower.close())
        loop.run_until_complete(_cancel_all())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


async def _cancel_all() -> None:
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)

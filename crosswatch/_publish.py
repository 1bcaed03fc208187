"""The publisher: a watcher's batches sent to a message stream, one subject per root.

Each run of a publisher is an epoch of its own (a random id), and numbers its
batches 1, 2, … per root. A follower that sees the epoch change, or a number
skipped, knows that it missed changes and must start again from a baseline; a
batch sent twice (a retry) carries the same id and is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._baseline import Mark
from ._errors import ConfigError, ServerUnreachableError
from ._events import Event
from ._sinks import Sink
from ._wire import Message, to_wire

if TYPE_CHECKING:
    from ._async import AsyncWatcher
    from ._watch import Watcher

_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
#: Batches between two baselines: a follower that joins late, or lost its place,
#: replays at most this many after loading the newest one.
BASELINE_EVERY = 1000
#: Bytes of batches kept while the server is unreachable, by default.
MAX_BACKLOG = 64 * 2**20
#: Seconds between two tries to reach the server again.
RETRY = 1.0


def root_id(path: str, host: str | None = None) -> str:
    """The subject token of a root: the same for the same directory of the same
    machine across runs, and no path in it (subjects are seen by every client)."""
    host = socket.gethostname() if host is None else host
    digest = hashlib.sha256(f"{host}\0{os.path.realpath(path)}".encode(errors="surrogateescape"))
    return digest.hexdigest()[:16]


def subject_of(stream: str, root: str) -> str:
    return f"crosswatch.{stream}.{root}"


def subjects(stream: str) -> str:
    """The subjects of every root of ``stream``: what the stream is made to take."""
    return f"crosswatch.{stream}.>"


def check_stream_name(stream: str) -> str:
    if not isinstance(stream, str) or not _STREAM_NAME.match(stream):
        raise ConfigError(f"stream name {stream!r}: use up to 64 letters, digits, '-' "
                          "or '_' (NATS takes no dots, spaces or wildcards in it)")
    return stream


@dataclass(frozen=True, slots=True)
class _Outgoing:
    subject: str
    data: bytes
    msg_id: str


class Publisher:
    """Sends batches of events under ``roots`` (absolute paths) to ``sink``, and
    baselines of the roots; ``position``: the stream's last position at start.

    What the sink does not take (the server is down) waits in a backlog, sent
    in order once the sink is open again (tried every ``retry`` seconds). Past
    ``max_backlog`` bytes held while the sink is down, the backlog is dropped and
    a new epoch begins, so that followers know they lost their place.
    """

    def __init__(self, sink: Sink, stream: str, roots: Iterable[str],
                 root_ids: Mapping[str, str] | None = None, *, position: int = 0,
                 max_backlog: int = MAX_BACKLOG, retry: float = RETRY) -> None:
        self.sink = sink
        self.stream = check_stream_name(stream)
        given = dict(root_ids or {})
        # Longest first: an event belongs to the deepest root holding it.
        self.roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
        self.ids = {r: given.get(r) or root_id(r) for r in self.roots}
        self.position = position
        self.max_backlog, self.retry = max_backlog, retry
        self.connected = True
        self.epochs = 0
        """Epochs begun, the first one included."""
        self._backlog: deque[_Outgoing] = deque()
        self._backlog_bytes = 0
        self._next_try = 0.0
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch = uuid.uuid4().hex
        self._seq = dict.fromkeys(self.roots, 0)
        self.epochs += 1
        self.needs_baseline = True
        self.since_baseline = 0
        """Batches sent since the last baseline."""

    @property
    def behind(self) -> bool:
        """Is something waiting for the sink?"""
        return bool(self._backlog) or not self.connected

    async def send(self, batch: list[Event]) -> list[Message]:
        """Send ``batch``, one message per root it touches (or keep them, if the
        sink is down); return the messages."""
        made = []
        for root, events in self._split(batch).items():
            self._seq[root] += 1
            msg = Message(self.ids[root], self.epoch, self._seq[root], tuple(events))
            self._keep(_Outgoing(subject_of(self.stream, msg.root), msg.encode(), msg.msg_id))
            made.append(msg)
        self.since_baseline += 1
        await self.flush()
        return made

    def _keep(self, out: _Outgoing) -> None:
        self._backlog.append(out)
        self._backlog_bytes += len(out.data)
        if not self.connected and self._backlog_bytes > self.max_backlog:
            # Bounded memory: what waits is dropped, and the followers are told.
            self._backlog.clear()
            self._backlog_bytes = 0
            self._new_epoch()

    async def flush(self) -> None:
        """Send what waits, in order; what the sink refuses waits for the next try."""
        if not self.connected and not await self._reopen():
            return
        while self._backlog:
            out = self._backlog[0]
            try:
                self.position = await self.sink.send(out.subject, out.data, out.msg_id)
            except ServerUnreachableError:
                self.connected = False  # the same id is sent again: stored once
                return
            self._backlog.popleft()
            self._backlog_bytes -= len(out.data)

    async def _reopen(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_try:
            return False
        self._next_try = loop.time() + self.retry
        with contextlib.suppress(Exception):
            await self.sink.close()
        try:
            last = await self.sink.open(subjects(self.stream))
        except ServerUnreachableError:
            return False
        # A batch whose acknowledgement was lost may be stored, dropped since from
        # the backlog: a baseline must stand after it too.
        self.position = max(self.position, last)
        self.connected = True
        return True

    async def baseline(self, watcher: Watcher) -> bool:
        """Store a baseline of every root: the watcher's live snapshot, after the
        events before it are sent, so that it holds every batch up to its mark.
        False if the sink failed meanwhile: it is to be taken again."""
        with tempfile.TemporaryDirectory(prefix="crosswatch-baseline-") as tmp:
            file = os.path.join(tmp, "baseline")
            before = await asyncio.to_thread(watcher.snapshot, file)
            if before:
                await self.send(before)
            if self.behind:
                return False  # its mark would not be a stored batch's
            with open(file, "rb") as f:
                data = f.read()
        try:
            for root in self.roots:
                mark = Mark(self.ids[root], self.epoch, self._seq[root], self.position, root)
                await self.sink.put_baseline(mark.root, data, mark.encode())
        except ServerUnreachableError:
            self.connected = False
            return False
        self.needs_baseline = False
        self.since_baseline = 0
        return True

    def _split(self, batch: list[Event]) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = {}
        for event in batch:
            root = self._root_of(event.path)
            if root is not None:
                out.setdefault(root, []).append(to_wire(event, root))
        return out

    def _root_of(self, path: str) -> str | None:
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                return root
        return None


async def apublish(*paths: str, to: str, stream: str = "crosswatch",
                   options: Mapping[str, Any] | None = None,
                   stop_event: asyncio.Event | None = None,
                   baseline_every: int = BASELINE_EVERY,
                   max_backlog: int = MAX_BACKLOG,
                   on_ready: Callable[[Publisher], object] | None = None,
                   **watcher_keywords: Any) -> None:
    """Watch ``paths`` and publish every batch to ``to`` (``nats://HOST:PORT``) until
    ``stop_event`` is set or the roots are gone, with a baseline at the start and
    after every ``baseline_every`` batches. ``options`` go to the sink (for NATS:
    credentials, TLS, ``timeout``); ``max_backlog``: the bytes kept while the
    server is unreachable; ``on_ready`` is called once the first baseline is
    stored; the other keywords are the watcher's."""
    from ._async import AsyncWatcher
    from ._plugins import Plugins

    check_stream_name(stream)
    for name, value in (("baseline_every", baseline_every), ("max_backlog", max_backlog)):
        if type(value) is not int or value < 1:
            raise ConfigError(f"{name}={value!r}: give a whole number, 1 or more")
    sink = Plugins().sinks.sink(to, stream, options or {})
    try:
        # Before a tree is read: a bad URL or credentials fail at once.
        position = await sink.open(subjects(stream))
        async with AsyncWatcher(*paths, stop_event=stop_event, **watcher_keywords) as w:
            publisher = Publisher(sink, stream, w.watcher.roots, position=position,
                                  max_backlog=max_backlog)
            await _Run(w, publisher, baseline_every, on_ready).run()
    finally:
        await sink.close()


class _Run:
    """The publisher's loop: batches as they come, retries while the sink is
    down, and baselines when due and the sink is up."""

    def __init__(self, w: AsyncWatcher, publisher: Publisher, baseline_every: int,
                 on_ready: Callable[[Publisher], object] | None) -> None:
        self.w, self.publisher = w, publisher
        self.baseline_every, self.on_ready = baseline_every, on_ready
        self.get: asyncio.Future[list[Event] | None] | None = None
        self.ended = False

    async def run(self) -> None:
        pub = self.publisher
        try:
            while not self.ended:
                if pub.needs_baseline and not pub.behind:
                    await self._baseline()
                    continue
                if self.get is None:
                    self.get = asyncio.ensure_future(self.w.get())
                waiting = pub.behind or pub.needs_baseline
                done, _ = await asyncio.wait({self.get}, timeout=pub.retry if waiting else None)
                if done:
                    await self._take()
                else:
                    await pub.flush()
        finally:
            if self.get is not None:
                self.get.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.get

    async def _take(self) -> None:
        assert self.get is not None
        batch, self.get = self.get.result(), None
        if batch is None:
            self.ended = True
            return
        await self.publisher.send(batch)
        if self.publisher.since_baseline >= self.baseline_every:
            self.publisher.needs_baseline = True

    async def _baseline(self) -> None:
        # No batch may be taken from the watcher while its snapshot is taken: the
        # snapshot hands over what was not taken, and counts the rest as sent.
        if self.get is not None:
            if self.get.done():
                await self._take()
                return
            self.get.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.get
            self.get = None
        if await self.publisher.baseline(self.w.watcher) and self.on_ready is not None:
            self.on_ready(self.publisher)  # once: after the first baseline stored
            self.on_ready = None


def publish(*paths: str, to: str, stream: str = "crosswatch",
            options: Mapping[str, Any] | None = None, **keywords: Any) -> None:
    """:func:`apublish`, blocking: until Ctrl-C or the roots are gone."""
    asyncio.run(apublish(*paths, to=to, stream=stream, options=options, **keywords))

"""NATS JetStream: the sink a publisher writes to, and the source a follower reads.

Batches go to a stream, baselines to an object store bucket named after it
(``crosswatch-STREAM``), one object per root. The client library, nats-py
(``pip install crosswatch[nats]``), is imported when a connection is made.
(The plugin that registers the sink is :mod:`crosswatch._nats`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ._errors import (
    ConfigError,
    RemoteAuthError,
    RemoteError,
    RemoteTLSError,
    ServerUnreachableError,
    StreamMismatchError,
    UnknownRootError,
)

#: Keywords handed to ``nats.connect`` as they are: credentials and TLS.
CONNECT_OPTIONS = frozenset({"user", "password", "token", "user_credentials", "nkeys_seed",
                             "tls", "tls_hostname", "name"})
#: How long a stored message's id is remembered for de-duplication (seconds).
DUPLICATE_WINDOW = 120.0
#: How long a client that failed to connect gets to close: after a failed TLS
#: handshake, nats-py's close never returns (its socket is released all the same).
CLOSE_WAIT = 1.0
#: Tries to read a baseline, each within the connection's timeout.
BASELINE_TRIES = 5


def _client() -> Any:
    try:
        import nats
    except ImportError:
        raise ConfigError("NATS needs its client: pip install 'crosswatch[nats]'") from None
    return nats


def bucket_of(stream: str) -> str:
    return f"crosswatch-{stream}"


class _Connection:
    """One connection to a server, and the stream it serves.

    ``options``: the credential and TLS keywords of ``nats.connect``
    (:data:`CONNECT_OPTIONS`), and ``timeout``, the seconds to wait for the server
    (5 by default). Credentials are passed on, never logged or put in an error.
    """

    def __init__(self, url: str, stream: str, options: Mapping[str, Any]) -> None:
        unknown = set(options) - CONNECT_OPTIONS - {"timeout"}
        if unknown:
            raise ConfigError(f"unknown NATS option(s) {', '.join(sorted(unknown))}: "
                              f"use {', '.join(sorted(CONNECT_OPTIONS | {'timeout'}))}")
        self.url = url
        self.stream = stream
        self.timeout = float(options.get("timeout", 5.0))
        self._options = {k: v for k, v in options.items() if k in CONNECT_OPTIONS}
        self._nc: Any = None
        self.js: Any = None

    async def connect(self) -> None:
        nats = _client()
        errors: list[Exception] = []

        async def error_cb(exc: Exception) -> None:  # nats-py reports auth errors here
            errors.append(exc)

        nc = nats.NATS()
        try:
            await self._reachable()
            # nats-py retries a first connection without end, whatever it is told:
            # the deadline is ours.
            await asyncio.wait_for(nc.connect(
                self.servers, connect_timeout=self.timeout, allow_reconnect=False,
                max_reconnect_attempts=0, error_cb=error_cb, **self._options), self.timeout)
        except Exception as exc:
            # A connection refused half-way (credentials) keeps its socket until
            # the client is closed.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), CLOSE_WAIT)
            info = getattr(nc, "_server_info", None)
            raise self._connect_error(exc, errors, info if isinstance(info, dict) else {}) from None
        self._nc = nc
        self.js = nc.jetstream(timeout=self.timeout)

    @property
    def servers(self) -> list[str]:
        """The URLs given (several, comma-separated, for a cluster)."""
        return [u.strip() for u in self.url.split(",") if u.strip()]

    async def _reachable(self) -> None:
        """Raise at once if nothing listens at any of the servers' addresses."""
        failed: OSError | TimeoutError = ConnectionRefusedError()
        for url in self.servers:
            parts = urllib.parse.urlsplit(url)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 4222),
                    self.timeout)
            except (OSError, TimeoutError) as exc:
                failed = exc
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise failed

    def _connect_error(self, exc: Exception, errors: list[Exception],
                       info: Mapping[str, Any]) -> RemoteError:
        """What a failed connection means; ``info``: what the server said of itself."""
        seen = [*errors, exc]
        tls = self._tls_error(seen, info)
        if tls is not None:
            return tls
        text = " ".join(str(e) for e in seen).lower()
        if "authorization" in text or "authentication" in text:
            return RemoteAuthError(f"the NATS server at {self.url} refused the credentials: "
                                   "check the user, password, token or creds file")
        return ServerUnreachableError(f"no NATS server answered at {self.url} within "
                                      f"{self.timeout:g} s: is it running, and is the "
                                      "address right?")

    def _tls_error(self, seen: list[Exception], info: Mapping[str, Any]) -> RemoteTLSError | None:
        failed = next((e for e in seen if isinstance(e, ssl.SSLError)), None)
        if isinstance(failed, ssl.SSLCertVerificationError):
            reason = str(failed.verify_message or "not trusted").rstrip(".")
            hint = ("connect by the name its certificate holds, or give that name "
                    "(--tls-hostname NAME, or the tls_hostname option)"
                    if "hostname" in reason.lower() else
                    "give the CA that signed it (--tls-ca FILE, or an ssl.SSLContext "
                    "that trusts it as the tls option)")
            return RemoteTLSError(f"the NATS server at {self.url} offered a certificate "
                                  f"this side does not accept ({reason}): {hint}")
        reason = str(failed.reason or failed) if failed is not None else ""
        # A server that verifies clients ends the handshake with an alert, or (when
        # it comes before the client reads) just drops the connection.
        dropped = failed is None and any(isinstance(e, ConnectionError) for e in seen)
        if info.get("tls_verify") and (dropped or "ALERT" in reason):
            which = ("ended the connection: this side showed none it trusts" if dropped
                     else "took none from this side" if "CERTIFICATE_REQUIRED" in reason
                     else f"did not accept this side's ({reason})")
            return RemoteTLSError(f"the NATS server at {self.url} verifies its clients' "
                                  f"certificates and {which}: give one signed by a CA it "
                                  "trusts (--tls-cert FILE --tls-key FILE, or load it into "
                                  "the tls option's ssl.SSLContext)")
        if failed is not None:
            return RemoteTLSError(f"the TLS handshake with the NATS server at {self.url} "
                                  f"failed ({reason}): check --tls-ca, --tls-cert and "
                                  "--tls-key (the tls option)")
        return None

    def lost(self, exc: Exception, what: str) -> ServerUnreachableError:
        return ServerUnreachableError(f"the NATS server at {self.url} did not {what} "
                                      f"({type(exc).__name__}): is it still running?")

    async def stream_info(self) -> Any:
        """The stream's info; None if there is no such stream."""
        from nats.js.errors import NotFoundError

        try:
            return await self.js.stream_info(self.stream)
        except NotFoundError:
            return None
        except Exception as exc:
            raise RemoteError(f"the NATS server at {self.url} did not say whether stream "
                              f"{self.stream!r} exists ({exc}): is JetStream enabled "
                              "(nats-server -js)?") from None

    async def close(self) -> None:
        nc, self._nc, self.js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            await nc.close()


class JetStreamSink(_Connection):
    """Batches stored in a JetStream stream, one subject per root; baselines in
    the stream's object store bucket."""

    _objects: Any = None

    async def open(self, subjects: str) -> int:
        await self.connect()
        info = await self.stream_info()
        if info is None:
            try:
                info = await self.js.add_stream(name=self.stream, subjects=[subjects],
                                                duplicate_window=DUPLICATE_WINDOW)
            except Exception as exc:
                raise StreamMismatchError(
                    f"the NATS server did not create stream {self.stream!r} for "
                    f"{subjects!r} ({exc}): another stream may take those subjects; "
                    "give another stream name") from None
        elif subjects not in (info.config.subjects or []):
            raise StreamMismatchError(
                f"stream {self.stream!r} exists for subjects {info.config.subjects}, not "
                f"{subjects!r}: give another stream name, or delete that stream")
        elif not info.config.duplicate_window:
            raise StreamMismatchError(
                f"stream {self.stream!r} exists without a de-duplication window, so a "
                "retried batch would be stored twice: give another stream name")
        try:
            self._objects = await self.js.create_object_store(bucket_of(self.stream))
        except Exception as exc:
            raise StreamMismatchError(
                f"the NATS server did not open object store {bucket_of(self.stream)!r} for "
                f"the baselines ({exc})") from None
        return int(info.state.last_seq or 0)

    async def send(self, subject: str, data: bytes, msg_id: str) -> int:
        try:
            ack = await self.js.publish(subject, data, stream=self.stream,
                                        headers={"Nats-Msg-Id": msg_id})
        except Exception as exc:
            raise self.lost(exc, "store a batch") from None
        return int(ack.seq)

    async def put_baseline(self, root: str, data: bytes, description: str) -> None:
        from nats.js.api import ObjectMeta

        try:
            await self._objects.put(root, data, meta=ObjectMeta(name=root,
                                                                description=description))
        except Exception as exc:
            raise self.lost(exc, "store a baseline") from None


class JetStreamSource(_Connection):
    """What a follower reads: a root's baseline and its subject's messages, through
    a pull consumer (durable, or one that lasts as long as the follower)."""

    _objects: Any = None
    _sub: Any = None

    async def open(self) -> None:
        await self.connect()
        if await self.stream_info() is None:
            raise UnknownRootError(f"there is no stream {self.stream!r} on {self.url}: "
                                   "nothing was published under that name")
        try:
            self._objects = await self.js.object_store(bucket_of(self.stream))
        except Exception:
            raise UnknownRootError(f"stream {self.stream!r} has no baselines: it was not "
                                   "made by a crosswatch publisher") from None

    async def baseline(self, root: str) -> tuple[str, bytes]:
        """The newest baseline of ``root``: its description and its snapshot file."""
        from nats.js.errors import NotFoundError

        for _ in range(BASELINE_TRIES):
            try:
                # A get that read the description of the baseline before one being
                # stored now waits for chunks that the new one removes: try again.
                got = await asyncio.wait_for(self._objects.get(root), self.timeout)
            except NotFoundError:
                raise UnknownRootError(f"root {root!r} was never published on stream "
                                       f"{self.stream!r}: check the id the publisher "
                                       "printed") from None
            except TimeoutError:
                continue
            except Exception as exc:
                raise self.lost(exc, "hand over a baseline") from None
            return str(got.info.description or ""), bytes(got.data or b"")
        raise ServerUnreachableError(f"the NATS server at {self.url} did not hand over the "
                                     f"baseline of root {root} in {BASELINE_TRIES} tries: "
                                     "is it still running?")

    async def acked(self, durable: str) -> int:
        """The position up to which durable consumer ``durable`` acknowledged
        every message (0: none, or no such consumer)."""
        from nats.js.errors import NotFoundError

        try:
            info = await self.js.consumer_info(self.stream, durable)
        except NotFoundError:
            return 0
        if not info.ack_floor.consumer_seq:
            # Nothing acknowledged yet: the floor is then the position before its
            # start, which may be a message of another root.
            return 0
        return int(info.ack_floor.stream_seq or 0)

    async def message_at(self, position: int) -> bytes | None:
        from nats.js.errors import NotFoundError

        try:
            return bytes((await self.js.get_msg(self.stream, position)).data or b"")
        except NotFoundError:
            return None  # dropped by the stream's limits

    async def consume(self, subject: str, start: int, durable: str | None) -> None:
        """Read ``subject`` from position ``start`` on, through a consumer made
        anew (a durable one of that name is replaced)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if durable is not None:
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(self.stream, durable)
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start, 1),
            ack_policy=AckPolicy.EXPLICIT, filter_subject=subject, max_ack_pending=-1)
        try:
            self._sub = await self.js.pull_subscribe(subject, durable=durable,
                                                     stream=self.stream, config=config)
        except Exception as exc:
            raise self.lost(exc, "make a consumer") from None

    async def fetch(self, most: int, wait: float) -> list[Any]:
        """Up to ``most`` messages, after ``wait`` seconds at most; [] if none came."""
        from nats.errors import TimeoutError as NatsTimeout

        try:
            return list(await self._sub.fetch(most, timeout=wait))
        except (TimeoutError, NatsTimeout):
            return []
        except Exception as exc:
            raise self.lost(exc, "hand over messages") from None

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await super().close()

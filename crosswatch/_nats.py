"""The built-in plugin that registers the NATS JetStream sink (``nats://``, ``tls://``).

It loads with every plugin set, so it imports nothing: the client
(:mod:`crosswatch._jetstream`, asyncio and nats-py) loads when a sink is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._hookspecs import hookimpl
from ._sinks import Sink, SinkRegistry


def _factory(url: str, stream: str, options: Mapping[str, Any]) -> Sink:
    from ._jetstream import JetStreamSink

    return JetStreamSink(url, stream, options)


@hookimpl
def crosswatch_register_sinks(register: SinkRegistry) -> None:
    register("nats", _factory)
    register("tls", _factory)

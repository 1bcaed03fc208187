"""Where a publisher sends its messages: the sink contract and the scheme registry."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from ._errors import ConfigError, PluginError


class Sink(Protocol):
    """A durable, ordered message stream with a store for baselines, as a
    publisher uses it.

    ``open`` connects, makes sure the stream takes ``subjects`` (a pattern such
    as ``crosswatch.tree.>``), and returns the stream's last position (0: empty).
    ``send`` returns once the message is stored, in the order of the calls, with
    its position; a message whose ``msg_id`` the stream already holds is stored
    once. ``put_baseline`` stores a root's newest baseline (a snapshot file) with
    its description, in place of the one before. ``close`` lets go of every
    connection; it is called once, also after a failed ``open``.
    """

    async def open(self, subjects: str) -> int: ...

    async def send(self, subject: str, data: bytes, msg_id: str) -> int: ...

    async def put_baseline(self, root: str, data: bytes, description: str) -> None: ...

    async def close(self) -> None: ...


SinkFactory = Callable[[str, str, Mapping[str, Any]], Sink]
"""``factory(url, stream, options)``: a sink, not connected yet."""

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")


class SinkRegistry:
    """The object plugins call: ``register(scheme, factory)``. Rejects duplicates."""

    def __init__(self) -> None:
        self._factories: dict[str, SinkFactory] = {}
        self._current = "<direct>"

    def __call__(self, scheme: str, factory: SinkFactory) -> None:
        if not isinstance(scheme, str) or not _SCHEME.match(scheme):
            raise PluginError(f"plugin {self._current!r} registered a sink for {scheme!r}, "
                              "which is not a lower-case URL scheme such as 'nats'")
        if scheme in self._factories and self._factories[scheme] is not factory:
            raise PluginError(f"two plugins provide a sink for {scheme}://; uninstall one "
                              "or disable it with CROSSWATCH_DISABLE_PLUGINS")
        self._factories[scheme] = factory

    def sink(self, url: str, stream: str, options: Mapping[str, Any]) -> Sink:
        """The sink for ``url``; :class:`ConfigError` naming the schemes known."""
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        factory = self._factories.get(scheme)
        if factory is None:
            known = ", ".join(f"{s}://" for s in self) or "none"
            raise ConfigError(f"no sink takes {url!r}: give a URL such as "
                              f"nats://HOST:PORT (known: {known})")
        return factory(url, stream, options)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._factories))

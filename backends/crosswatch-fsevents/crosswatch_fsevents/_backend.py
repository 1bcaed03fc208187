"""The FSEvents backend: the probe, the roots, the latency, and reading decoded callbacks.

Every macOS call goes through one :class:`~._coreservices.CoreServices` object,
so the same code runs against the OS and against an emulation. The stream's
callback (or an emulation) hands its arrays to :meth:`FSEventsBackend.deliver`;
:meth:`FSEventsBackend.read` decodes them into observations.
"""

from __future__ import annotations

import errno
import math
import os
import warnings
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Any

from crosswatch import CrosswatchWarning
from crosswatch.backend import (
    Backend,
    Capabilities,
    Observation,
    Options,
    Probe,
    WatchGoneError,
)

from . import _abi
from ._coreservices import CoreServices, unavailable


def _latency(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"fsevents latency must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"fsevents latency must be 0 or more seconds, not {value!r}")
    return float(value)


class FSEventsBackend(Backend):
    """macOS FSEvents: one recursive stream over every root, file-level events.

    ``latency`` is how long FSEvents gathers events before it calls back: longer
    means fewer, more coalesced callbacks, shorter means events sooner. It is, by
    precedence, the ``latency=`` argument, ``Options.extra["latency"]``, or this
    class attribute (a subclass may set its own).
    """

    name = "fsevents"
    description = "macOS FSEvents: one recursive stream, file-level events, file ids"
    capabilities = Capabilities(recursive=True)
    latency: float = 0.05

    @classmethod
    def probe(cls, path: str) -> Probe:
        reason = unavailable()
        if reason is not None:
            return Probe.unavailable(cls.name, reason)
        # The stream that feeds deliver() is the next layer; until it is built, a
        # backend that would never report anything must not be selected.
        return Probe.unavailable(
            cls.name, "the FSEvents stream is not built yet: kqueue or polling watch here"
        )

    def __init__(
        self,
        options: Options | None = None,
        *,
        latency: float | None = None,
        coreservices: Any = None,
    ) -> None:
        super().__init__(options or Options())
        chosen = latency if latency is not None else self.options.extra.get("latency")
        self.latency = _latency(type(self).latency if chosen is None else chosen)
        self._cs = coreservices if coreservices is not None else CoreServices()
        self._cs.load()  # on another OS: CoreServicesUnavailable, saying so
        self._decoder = _abi.Decoder()
        self._paths: dict[str, Hashable] = {}
        self._pending: deque[tuple[Any, Any, Any, Any]] = deque()
        self._warned: set[str] = set()
        self._closed = False

    @property
    def latest_id(self) -> int | None:
        """The latest event id seen: where a later stream can resume (``sinceWhen``)."""
        return self._decoder.latest_id

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        """Add a root; known by its path and the path it resolves to (FSEvents
        reports resolved paths: ``/tmp`` is ``/private/tmp`` on macOS)."""
        handle = self._paths.get(path)
        if handle is not None:
            return handle
        if not os.path.isdir(path):
            raise WatchGoneError(errno.ENOENT, "not a directory any more", path)
        self._decoder.add(path, path, os.path.realpath(path))
        self._paths[path] = path
        return path

    def unwatch(self, handle: Hashable) -> None:
        if isinstance(handle, str) and self._paths.pop(handle, None) is not None:
            self._decoder.remove(handle)

    def deliver(
        self,
        paths: Sequence[object],
        flags: Sequence[object],
        event_ids: Sequence[object],
        file_ids: Sequence[object] | None = None,
    ) -> None:
        """One callback's arrays, as Python sequences; decoded by the next :meth:`read`."""
        if not self._closed:
            self._pending.append((paths, flags, event_ids, file_ids))

    def read(self) -> Sequence[Observation]:
        out: list[Observation] = []
        decoder = self._decoder
        while self._pending:
            paths, flags, event_ids, file_ids = self._pending.popleft()
            try:
                out += decoder.decode(paths, flags, event_ids, file_ids)
            except _abi.FSEventsDecodeError as exc:
                self._warn("garbled", f"an FSEvents callback could not be read ({exc}); "
                           "every root is rescanned")
                out += decoder.lost()
        if decoder.strays and decoder.last_stray is not None:
            self._warn("stray", f"FSEvents reported {decoder.last_stray}, which is under no "
                       "root; its events are ignored (is a root's path spelled another way?)")
        if decoder.unknown_bits:
            self._warn("bits", f"FSEvents flags {decoder.unknown_bits:#x} are not known to "
                       "this backend; those events are looked at on the disk")
        return out

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, CrosswatchWarning, stacklevel=2)

    def close(self) -> None:
        self._closed = True
        self._pending.clear()
        self._paths.clear()

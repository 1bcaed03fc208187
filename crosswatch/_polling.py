"""The polling backend: built in, always available, sees what ``stat`` sees.

Each tick asks the engine to diff every root against the disk. The engine stats
every cached entry once and lists a directory again only when its mtime moved,
so a tick costs one ``lstat`` per entry plus one listing per changed directory.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from . import _mounts
from ._backend import Backend, Capabilities, DirDirty, Observation, Options, Probe
from ._hookspecs import hookimpl

if TYPE_CHECKING:
    from ._plugins import BackendRegistry


class PollingBackend(Backend):
    """Scans the tree every ``poll_interval`` seconds."""

    name = "polling"
    description = "stat polling; works everywhere, costs one lstat per entry per tick"
    capabilities = Capabilities(recursive=True, polls=True)

    @classmethod
    def probe(cls, path: str) -> Probe:
        kind = _mounts.virtual(path)
        if kind is not None:
            return Probe(
                cls.name,
                True,
                f"changes on {kind} are not reported by the kernel: a virtual file system, "
                "whose stats do not move, so no scan sees a change",
                score=0,
            )
        return Probe(cls.name, True, "scans every tick; latency up to the poll interval", score=10)

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        self._roots: list[Hashable] = []
        self._next = time.monotonic() + self.options.poll_interval
        self._scanned = False

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        if path not in self._roots:
            self._roots.append(path)
        return path

    def unwatch(self, handle: Hashable) -> None:
        if handle in self._roots:
            self._roots.remove(handle)

    def deadline(self) -> float | None:
        if self._scanned:
            # Asked again once the engine has diffed: the interval counts from the end
            # of the scan, so a tree that takes longer to scan than the interval does
            # not keep a core busy.
            self._scanned = False
            self._next = time.monotonic() + self.options.poll_interval
        return self._next if self._roots else None

    def read(self) -> Sequence[Observation]:
        if time.monotonic() < self._next:
            return []
        self._scanned = True
        return [DirDirty(root, "", recursive=True) for root in self._roots]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(PollingBackend)

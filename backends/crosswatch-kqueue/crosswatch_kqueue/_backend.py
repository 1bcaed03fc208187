"""The kqueue backend: its capabilities, its probe, and the open-file limit.

Every kernel call goes through :attr:`KqueueBackend.system` (see ``_kq``), so
that another implementation of kqueue can stand in for the real one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import ClassVar

from crosswatch.backend import (
    Backend,
    Capabilities,
    Observation,
    Options,
    Probe,
    WatchError,
)

from . import _abi, _kq, _limits

#: Descriptors assumed open when the process's own cannot be listed.
ASSUMED_IN_USE = 16
#: What the probe says until watching and reading through kqueue are built.
NOT_BUILT = "watching through kqueue is not built yet (only its decoding and limits are)"


class KqueueBackend(Backend):
    """kqueue ``EVFILT_VNODE``: one descriptor per directory and file, no recursion."""

    name = "kqueue"
    description = "kqueue(2) EVFILT_VNODE (macOS, BSD): one descriptor per entry"
    capabilities = Capabilities(recursive=False)
    system: ClassVar[_kq.System] = _kq.SYSTEM
    """The kernel's calls; a stand-in with the same methods can take its place."""
    built: ClassVar[bool] = False
    """Whether watch() and read() drive kqueue yet; until then the probe declines."""

    @classmethod
    def probe(cls, path: str) -> Probe:
        system = cls.system
        if not system.available():
            return Probe.unavailable(cls.name, "needs macOS or BSD (kqueue)")
        try:
            plan = cls.plan(path)
        except OSError as exc:
            return Probe.unavailable(cls.name, f"the open-file limit cannot be read: {exc}")
        if not cls.built:
            return Probe.unavailable(cls.name, f"{NOT_BUILT}; {plan.message}")
        score = 90 if plan.fits else 50
        return Probe(cls.name, True, plan.message, score, plan.allowed, plan.entries)

    @classmethod
    def plan(cls, path: str) -> _limits.Plan:
        """What watching ``path`` takes and what the open-file limit allows; reads only."""
        system = cls.system
        soft, hard = system.getrlimit()
        maxfiles = system.maxfilesperproc()
        darwin = system.platform == "darwin"
        in_use = _limits.descriptors_in_use()
        in_use = ASSUMED_IN_USE if in_use is None else in_use
        top = _limits.ceiling(soft, hard, darwin=darwin, maxfilesperproc=maxfiles)
        budget = max(0, top - in_use - _limits.RESERVE - 1)
        dirs, files, complete = _limits.count_entries(path, budget)
        return _limits.plan(
            soft, hard, in_use, dirs, files,
            complete=complete, darwin=darwin, maxfilesperproc=maxfiles,
        )

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        system = self.system
        if not system.available():
            raise WatchError(0, "kqueue needs macOS or BSD; use backend='polling'")
        self.abi = _abi.current(platform=system.platform)
        self.raised_to = self._raise_limit()
        self._kq = system.kqueue()

    def _raise_limit(self) -> int | None:
        """Raise the soft open-file limit to the ceiling; the new limit, or None.

        Done when the backend opens, never in the probe: one descriptor per entry
        is what kqueue costs, and macOS starts processes at 256.
        """
        system = self.system
        soft, hard = system.getrlimit()
        top = _limits.ceiling(
            soft, hard, darwin=system.platform == "darwin",
            maxfilesperproc=system.maxfilesperproc(),
        )
        current = _limits.finite(soft)
        if current is None or top <= current:
            return None
        try:
            system.setrlimit(top, hard)
        except (OSError, ValueError):
            return None  # refused: the limit in force stays, and the probe said so
        return top

    def fileno(self) -> int | None:
        return int(self._kq.fileno()) if self._kq is not None else None

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        raise WatchError(0, f"{NOT_BUILT}; use backend='polling'", path)

    def unwatch(self, handle: Hashable) -> None:
        return None

    def read(self) -> Sequence[Observation]:
        return []

    def close(self) -> None:
        if self._kq is not None:
            self._kq.close()
            self._kq = None

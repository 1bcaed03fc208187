"""Tools for testing crosswatch and its backends.

- :class:`ScriptedBackend`: a backend whose observations the test pushes, to drive
  the engine deterministically; with :class:`FileOps` attached it reports file
  operations the way a per-directory kernel backend (inotify) does.
- :class:`StubBackend`: a backend that watches nothing and answers a given probe,
  for tests of selection.
- :class:`Mirror` and :func:`snapshot`: a consumer that rebuilds a tree from events
  and fails on any broken guarantee, and the disk state to compare it with.
- :class:`BackendConformance`: the suite every backend's tests subclass (needs pytest).
- :func:`force_portable`: the core's portable fallbacks, forced for a test.
- :class:`Inotify`: raw inotify records (Linux), the ground that the emulations of
  other OSes' APIs (kqueue, FSEvents, ReadDirectoryChangesW) stand on.
- :class:`NatsServer`: a real NATS server with JetStream on a loopback port.
- :class:`FoldingFS`: a real case- and normalization-insensitive file system on
  Linux (a FUSE mount served by the test process), as APFS and NTFS are.
- What this OS can do, for tests that must adapt or skip (``LINUX``,
  :func:`symlinks_work`, :func:`tmpfs`, :func:`open_fds`), and the pytest marks
  built on it, each with its reason (:func:`linux_only`, ``needs_symlinks``,
  ``needs_byte_names``, ``needs_posix_paths``, ``needs_posix_permissions``,
  ``needs_posix_signals``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._fuse import FoldingFS, FuseServerError, FuseUnavailableError
from ._inotify import Inotify
from ._mirror import GuaranteeError, Mirror, snapshot
from ._nats_server import NatsServer, NatsServerMissingError
from ._platform import LINUX, open_fds, own_threads, symlinks_work, tmpfs
from ._portable import force_portable
from ._scripted import FileOps, ScriptedBackend
from ._stub import StubBackend

if TYPE_CHECKING:
    from ._collect import collect, converge, ends_with
    from ._conformance import BackendConformance
    from ._marks import (
        linux_only,
        needs_byte_names,
        needs_fuse,
        needs_posix_paths,
        needs_posix_permissions,
        needs_posix_signals,
        needs_symlinks,
    )

__all__ = [
    "LINUX",
    "BackendConformance",
    "FileOps",
    "FoldingFS",
    "FuseServerError",
    "FuseUnavailableError",
    "GuaranteeError",
    "Inotify",
    "Mirror",
    "NatsServer",
    "NatsServerMissingError",
    "ScriptedBackend",
    "StubBackend",
    "collect",
    "converge",
    "ends_with",
    "force_portable",
    "linux_only",
    "needs_byte_names",
    "needs_fuse",
    "needs_posix_paths",
    "needs_posix_permissions",
    "needs_posix_signals",
    "needs_symlinks",
    "open_fds",
    "own_threads",
    "snapshot",
    "symlinks_work",
    "tmpfs",
]

_MARKS = (
    "linux_only",
    "needs_byte_names",
    "needs_fuse",
    "needs_posix_paths",
    "needs_posix_permissions",
    "needs_posix_signals",
    "needs_symlinks",
)


def __getattr__(name: str) -> Any:
    # The suite and the marks import pytest; load them only when asked for.
    if name == "BackendConformance":
        from . import _conformance

        return _conformance.BackendConformance
    if name in ("collect", "converge", "ends_with"):
        from . import _collect

        return getattr(_collect, name)
    if name in _MARKS:
        from . import _marks

        return getattr(_marks, name)
    raise AttributeError(name)

"""crosswatch: what changed in directory trees, on every OS, and never a lie about it.

The public API for consumers is what this module exports; what a plugin author
needs to write a backend is in :mod:`crosswatch.backend`. Everything in
``crosswatch._*`` is private and may change.
"""

from typing import TYPE_CHECKING, Any

from ._errors import (
    BackendUnavailableError,
    ConfigError,
    ConfigTypeError,
    CrosswatchError,
    CrosswatchWarning,
    NotASnapshotError,
    NotStartedError,
    PluginError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotMismatchError,
    SnapshotTruncatedError,
    SnapshotVersionError,
    UnknownBackendError,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    WatchPathError,
)
from ._events import Change, Event
from ._plugins import Plugins
from ._progress import Progress
from ._queue import Backlog
from ._select import ProbeReport, probe
from ._snapshot import since, snapshot
from ._watch import Watcher, watch

if TYPE_CHECKING:
    from ._async import AsyncWatcher, awatch

__version__ = "0.1.0"

__all__ = [
    "AsyncWatcher",
    "BackendUnavailableError",
    "Backlog",
    "Change",
    "ConfigError",
    "ConfigTypeError",
    "CrosswatchError",
    "CrosswatchWarning",
    "Event",
    "NotASnapshotError",
    "NotStartedError",
    "PluginError",
    "Plugins",
    "ProbeReport",
    "Progress",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "UnknownBackendError",
    "WatchError",
    "WatchGoneError",
    "WatchLimitError",
    "WatchPathError",
    "Watcher",
    "__version__",
    "awatch",
    "probe",
    "since",
    "snapshot",
    "watch",
]


def __getattr__(name: str) -> Any:
    # The asyncio API loads asyncio: only for the programs that use it.
    if name in ("AsyncWatcher", "awatch"):
        from . import _async

        return getattr(_async, name)
    raise AttributeError(f"module 'crosswatch' has no attribute {name!r}")

"""crosswatch: what changed in directory trees, on every OS, and never a lie about it.

The public API for consumers is what this module exports; what a plugin author
needs to write a backend is in :mod:`crosswatch.backend`. Everything in
``crosswatch._*`` is private and may change.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    BackendUnavailableError,
    ConfigError,
    ConfigTypeError,
    CrosswatchError,
    CrosswatchWarning,
    FollowerGapError,
    MessageError,
    NotASnapshotError,
    NotStartedError,
    PluginError,
    RemoteAuthError,
    RemoteError,
    RemoteTLSError,
    ServerUnreachableError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotMismatchError,
    SnapshotTruncatedError,
    SnapshotVersionError,
    StreamMismatchError,
    UnknownBackendError,
    UnknownRootError,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    WatchPathError,
)
from ._events import Change, Event

if TYPE_CHECKING:
    from ._async import AsyncWatcher, awatch
    from ._follow import Follower, afollow, follow
    from ._plugins import Plugins
    from ._progress import Progress
    from ._publish import apublish, publish
    from ._queue import Backlog
    from ._select import ProbeReport, probe
    from ._snapshot import since, snapshot
    from ._watch import Watcher, watch

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
    "Follower",
    "FollowerGapError",
    "MessageError",
    "NotASnapshotError",
    "NotStartedError",
    "PluginError",
    "Plugins",
    "ProbeReport",
    "Progress",
    "RemoteAuthError",
    "RemoteTLSError",
    "RemoteError",
    "ServerUnreachableError",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotMismatchError",
    "SnapshotTruncatedError",
    "SnapshotVersionError",
    "StreamMismatchError",
    "UnknownBackendError",
    "UnknownRootError",
    "WatchError",
    "WatchGoneError",
    "WatchLimitError",
    "WatchPathError",
    "Watcher",
    "__version__",
    "afollow",
    "apublish",
    "awatch",
    "follow",
    "probe",
    "publish",
    "since",
    "snapshot",
    "watch",
]


#: Where each name not imported above lives. They are imported on first use, so that
#: ``import crosswatch`` costs little (asyncio, the engine and the plugin machinery
#: load only for the programs that use them).
_LAZY = {
    "AsyncWatcher": "_async",
    "Follower": "_follow",
    "afollow": "_follow",
    "apublish": "_publish",
    "awatch": "_async",
    "Backlog": "_queue",
    "Plugins": "_plugins",
    "ProbeReport": "_select",
    "Progress": "_progress",
    "Watcher": "_watch",
    "follow": "_follow",
    "probe": "_select",
    "publish": "_publish",
    "since": "_snapshot",
    "snapshot": "_snapshot",
    "watch": "_watch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crosswatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

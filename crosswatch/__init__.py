"""crosswatch: what changed in directory trees, on every OS, and never a lie about it.

The public API for consumers is what this module exports; what a plugin author
needs to write a backend is in :mod:`crosswatch.backend`. Everything in
``crosswatch._*`` is private and may change.
"""

from ._errors import (
    BackendUnavailableError,
    ConfigError,
    ConfigTypeError,
    CrosswatchError,
    CrosswatchWarning,
    NotStartedError,
    PluginError,
    UnknownBackendError,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    WatchPathError,
)
from ._events import Change, Event
from ._plugins import Plugins
from ._queue import Backlog
from ._select import ProbeReport, probe
from ._watch import Watcher, watch

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "Backlog",
    "Change",
    "ConfigError",
    "ConfigTypeError",
    "CrosswatchError",
    "CrosswatchWarning",
    "Event",
    "NotStartedError",
    "PluginError",
    "Plugins",
    "ProbeReport",
    "UnknownBackendError",
    "WatchError",
    "WatchGoneError",
    "WatchLimitError",
    "WatchPathError",
    "Watcher",
    "__version__",
    "probe",
    "watch",
]

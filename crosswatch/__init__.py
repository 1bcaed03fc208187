"""crosswatch: what changed in directory trees, on every OS, and never a lie about it.

The public API is what this module exports; everything in ``crosswatch._*`` is
private and may change.
"""

from ._backend import (
    Action,
    Backend,
    Capabilities,
    DirDirty,
    EntryChange,
    Gone,
    Observation,
    Options,
    Probe,
    Renamed,
    SubtreeLost,
)
from ._errors import (
    BackendUnavailableError,
    ConfigError,
    CrosswatchError,
    CrosswatchWarning,
    PluginError,
    UnknownBackendError,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    WatchPathError,
)
from ._events import Change, Event
from ._hookspecs import hookimpl, hookspec
from ._plugins import BackendRegistry, Plugins
from ._select import ProbeReport, probe
from ._watch import Backlog, Watcher, watch

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Backend",
    "BackendRegistry",
    "BackendUnavailableError",
    "Backlog",
    "Capabilities",
    "Change",
    "ConfigError",
    "CrosswatchError",
    "CrosswatchWarning",
    "DirDirty",
    "EntryChange",
    "Event",
    "Gone",
    "Observation",
    "Options",
    "PluginError",
    "Plugins",
    "Probe",
    "ProbeReport",
    "Renamed",
    "SubtreeLost",
    "UnknownBackendError",
    "WatchError",
    "WatchGoneError",
    "WatchLimitError",
    "WatchPathError",
    "Watcher",
    "__version__",
    "hookimpl",
    "hookspec",
    "probe",
    "watch",
]

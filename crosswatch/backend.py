"""What a plugin author needs to write a crosswatch backend.

A backend subclasses :class:`Backend`, declares its :class:`Capabilities`, answers
:meth:`Backend.probe` with a :class:`Probe`, reads :class:`Options`, and reports
observations (:class:`EntryChange`, :class:`Renamed`, :class:`DirDirty`,
:class:`SubtreeLost`, :class:`Gone`, :class:`MountsChanged`). Its plugin registers
it through a function marked :data:`hookimpl` that calls the
:class:`BackendRegistry` it is given. The errors :class:`WatchGoneError` and
:class:`WatchLimitError` tell the engine why a watch could not be placed.
:func:`read_mounts`, :func:`parse_mounts` and :func:`fs_type` read the mount table
for a probe, and :class:`MountWatch` turns its changes into a
:class:`MountsChanged` for Linux backends; :func:`open_dir` opens a path at any
depth, also one longer than ``PATH_MAX``. :class:`Waker` wakes the watcher's
thread from a backend's own thread, on every OS (a pipe, or a socket pair where
selectors take only sockets). See ``docs/plugins.md``.
"""

from __future__ import annotations

from ._backend import (
    Action,
    Backend,
    Capabilities,
    DirDirty,
    EntryChange,
    Gone,
    Handle,
    MountsChanged,
    Observation,
    Options,
    Probe,
    Renamed,
    SubtreeLost,
)
from ._errors import WatchError, WatchGoneError, WatchLimitError
from ._hookspecs import hookimpl, hookspec
from ._longpath import open_dir
from ._mounts import REMOTE_FS, VIRTUAL_FS, Mount, fs_type
from ._mounts import parse as parse_mounts
from ._mounts import read as read_mounts
from ._mountwatch import MountWatch
from ._os import Waker
from ._plugins import BackendRegistry

__all__ = [
    "Action",
    "Backend",
    "BackendRegistry",
    "Capabilities",
    "DirDirty",
    "EntryChange",
    "Gone",
    "Handle",
    "Mount",
    "MountWatch",
    "MountsChanged",
    "Observation",
    "Options",
    "Probe",
    "REMOTE_FS",
    "Renamed",
    "SubtreeLost",
    "VIRTUAL_FS",
    "WatchError",
    "WatchGoneError",
    "WatchLimitError",
    "Waker",
    "fs_type",
    "hookimpl",
    "hookspec",
    "open_dir",
    "parse_mounts",
    "read_mounts",
]

"""The backend contract: what a plugin implements and the observations it reports.

A backend is thin. It talks to one OS API, turns what the OS says into
*observations* and holds no tree, no filters and no batching: the engine owns the
truth and treats every observation as a hint that it verifies against the disk.

The watcher drives a backend from one thread, and hands what it reads to the engine:

1. ``probe(path)`` (a classmethod) answers, cheaply and without raising, whether the
   backend can watch ``path`` and how well.
2. ``__init__(options)`` opens the OS resource lazily or at once.
3. ``watch(path, recursive=…)`` returns an opaque, hashable handle. Backends whose
   capabilities say ``recursive`` are asked once per root; the others once per
   directory, *before* the engine lists it (so nothing created in between is missed).
4. ``read()`` is called when ``fileno()`` is readable, or when the time returned by
   ``deadline()`` has come, and again while the engine's work waits for the queue
   to run dry (an empty result says it is); it must not block and returns the
   observations waiting.
5. ``unwatch(handle)`` and ``close()`` release what ``watch`` and ``__init__`` took.

Optionally, ``watch_self(path)`` watches only the fate of a directory above a root
(or a symbolic link on the way to it): its observations say that it was renamed
or removed, nothing about its entries, so the engine learns that the root's path
no longer leads to the root without ever waking up for siblings. The default
returns ``None``: not supported, and the engine relies on its other checks (a
``DirDirty`` for a root, which the polling backend reports on every tick, makes it
verify the root's path).

With access events on, a backend whose ``capabilities.own_reads`` is set reports
the engine's own listings of watched directories as the OS reports anyone's:
``OPENED``, ``ACCESSED`` (one or more) and ``CLOSED_NOWRITE`` on the directory's own
watch (name ``""``) and on its parent's (the directory's name). The engine counts
its listings and takes these out; nothing else about them is asked of the backend.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

Handle: TypeAlias = Hashable


class Action(enum.Enum):
    """What an :class:`EntryChange` says happened to one entry."""

    CREATED = "created"
    DELETED = "deleted"
    MODIFIED = "modified"
    ATTRIB = "attrib"
    MOVED_FROM = "moved_from"
    MOVED_TO = "moved_to"
    OPENED = "opened"
    ACCESSED = "accessed"
    CLOSED_WRITE = "closed_write"
    CLOSED_NOWRITE = "closed_nowrite"


@dataclass(frozen=True, slots=True)
class EntryChange:
    """Entry ``name`` of the directory watched by ``handle`` changed.

    ``name`` is relative to that directory; recursive backends may give a relative
    path with separators, and ``""`` means the watched directory itself. ``cookie``
    links a ``MOVED_FROM`` with its ``MOVED_TO``.
    """

    handle: Handle
    name: str
    action: Action
    is_dir: bool | None = None
    cookie: int | None = None
    pid: int | None = None
    """The process that made the change, when the OS says; copied to the event."""


@dataclass(frozen=True, slots=True)
class Renamed:
    """The kernel paired a rename: ``old_name`` under ``old_handle`` is now ``new_name``."""

    old_handle: Handle
    old_name: str
    new_handle: Handle
    new_name: str
    is_dir: bool | None = None
    pid: int | None = None
    """The process that renamed it, when the OS says; copied to the event."""


@dataclass(frozen=True, slots=True)
class DirDirty:
    """Entries of this directory (or of its whole subtree) changed: look.

    ``name`` selects a subdirectory of the watched one, as in :class:`EntryChange`.
    """

    handle: Handle
    name: str = ""
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class SubtreeLost:
    """Events were lost below ``handle`` (``None``: everywhere this backend watches).

    The engine rescans, reports what changed as catch-up events and then a
    ``rescan`` notice.
    """

    handle: Handle | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Gone:
    """The watch behind ``handle`` ended (its directory was removed or unmounted).

    The handle is dead after this; the engine verifies what is on disk now.
    """

    handle: Handle


@dataclass(frozen=True, slots=True)
class MountsChanged:
    """File systems were mounted or unmounted at ``points`` (resolved paths).

    For a backend whose kernel API does not report mounts (:class:`MountWatch`
    finds them), so it keeps no path of its own: the engine finds what each point
    means for the roots this backend watches. Inside a tree, the entry at the point
    is rescanned; at or above a root, the root's path is verified.
    """

    points: frozenset[str]


Observation: TypeAlias = EntryChange | Renamed | DirDirty | SubtreeLost | Gone | MountsChanged


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do that selection or the engine acts on.

    Every flag here is read by crosswatch; a backend's other qualities go in its
    probe's ``reason`` and ``score``.
    """

    recursive: bool = False
    """One watch covers a subtree; otherwise the engine asks for one per directory."""
    access_events: bool = False
    """Opens, reads and closes can be reported; a watcher asked for them
    (``access=True``) selects only backends that have this."""
    polls: bool = False
    """Finds changes by comparing stats, so the engine keeps every file's stat from
    the first scan (event-driven backends let it skip them)."""
    own_reads: bool = False
    """Access events include the engine's own listings of watched directories (the
    engine takes them out; see the module docstring)."""
    pids: bool = False
    """Observations carry the pid of the process that made each change; a watcher
    asked for pids (``pids=True``, ``ignore_pids=``) selects only such backends."""
    dirs_report_themselves: bool = False
    """A directory's changes to itself (its attributes) come on its own handle with
    name ``""`` and never on its parent's under its name, so the engine reports
    them for every directory, not only for roots."""
    merges_later: bool = False
    """The OS folds a change into an earlier event about the same name while that
    event waits unread (fanotify), so the event also stands for changes made after
    the ones that follow it. A paired rename is then no proof of what its two names
    hold now: the engine looks at both again once the queue has been read."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A backend's answer for one path: can it watch it, and how well."""

    backend: str
    available: bool
    reason: str = ""
    """Why not, or what to know (``"needs macOS"``, ``"NFS: remote changes unseen"``)."""
    score: int = 0
    """Preference among available backends; higher wins."""
    limit: int | None = None
    """Watches or handles still free, when the OS has such a limit."""
    needed: int | None = None
    """Watches or handles this path would take, when estimated."""

    @classmethod
    def unavailable(cls, backend: str, reason: str) -> Probe:
        return cls(backend, False, reason)


@dataclass(frozen=True, slots=True)
class Options:
    """What the watcher asks of every backend it opens."""

    access: bool = False
    """Report access kinds (opened, accessed, closed_*); otherwise do not even ask."""
    poll_interval: float = 0.5
    """Seconds between scans, for backends that poll."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific settings, keyed by option name."""


class Backend(ABC):
    """Base class of every backend; see the module docstring for the protocol."""

    name: ClassVar[str]
    """One name everywhere: plugin, entry point, config value, CLI value."""
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    extra_options: ClassVar[Mapping[str, str]] = {}
    """The keys of ``Options.extra`` this backend reads, each with what it means.

    A watcher refuses any other key given for this backend (a typo would otherwise
    be ignored without a word); the backend checks the values when it opens.
    """

    @classmethod
    @abstractmethod
    def probe(cls, path: str) -> Probe:
        """Say whether ``path`` (an existing directory or file) can be watched here.

        Must be cheap and must not raise; import OS-specific modules here or in
        ``__init__``, never at module level, so the plugin imports on every OS.
        """

    def __init__(self, options: Options) -> None:
        self.options = options

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when :meth:`read` has work, or ``None``."""
        return None

    def deadline(self) -> float | None:
        """``time.monotonic()`` value at which :meth:`read` must be called, or ``None``."""
        return None

    @abstractmethod
    def watch(self, path: str, *, recursive: bool) -> Handle:
        """Start watching directory ``path``; return a handle observations will carry.

        Raise :class:`~crosswatch.WatchGoneError` if ``path`` no longer exists or is
        no longer a directory, :class:`~crosswatch.WatchLimitError` if the OS refuses
        more watches. Watching a path already watched returns its handle.
        """

    @abstractmethod
    def unwatch(self, handle: Handle) -> None:
        """Stop watching (``watch`` or ``watch_self``); a handle already dead is ignored."""

    def watch_self(self, path: str) -> Handle | None:
        """Watch only the fate of the entry at ``path``; ``None``: not supported.

        ``path`` is a directory above a root, or a symbolic link on the way to one
        (not followed). Observations on the handle are only
        ``EntryChange(handle, "", DELETED or MOVED_FROM)`` and ``Gone(handle)``. The
        handle differs from any that :meth:`watch` returns, even for the same
        directory, and watching that directory with :meth:`watch` too (or again
        here) must keep both working: each call is released by one :meth:`unwatch`.
        Raise as :meth:`watch` does.
        """
        return None

    @abstractmethod
    def read(self) -> Sequence[Observation]:
        """Return the observations waiting, in the order they happened; never block."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release every OS resource; later calls do nothing."""

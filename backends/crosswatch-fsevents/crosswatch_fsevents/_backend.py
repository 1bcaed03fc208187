"""The FSEvents backend: the probe, the roots, the latency, and reading the stream.

Every macOS call goes through :attr:`FSEventsBackend.system` (see
``_coreservices``), so the same code runs against the OS and against an emulation
(``crosswatch_fsevents.testing``). One stream covers every root (``_stream``); its
callbacks come on a dispatch queue's thread and are handed over to the watcher's
thread, which decodes them (``_abi``) in :meth:`FSEventsBackend.read`.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from crosswatch import ConfigError, CrosswatchWarning
from crosswatch.backend import (
    Action,
    Backend,
    Capabilities,
    DirDirty,
    EntryChange,
    Gone,
    MountsChanged,
    Observation,
    Options,
    Probe,
    Renamed,
    SubtreeLost,
    WatchGoneError,
    fs_type,
)

from . import _abi, _flags
from ._coreservices import SYSTEM, CoreServicesAPI
from ._stream import Stream

#: File systems where FSEvents hears only of the changes made by this Mac.
REMOTE_FS = frozenset({"nfs", "smbfs", "afpfs", "webdav", "cifs", "ftp"})


def _latency(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"fsevents latency must be a number of seconds, such as 0.05, "
                          f"not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"fsevents latency must be 0 or more seconds, such as 0.05, "
                          f"not {value!r}")
    return float(value)


@dataclass(slots=True)
class _LinkDir:
    """A directory holding symbolic links on the way to roots (``watch_self``): it is
    one of the stream's paths, and what happens to its entries is the links' fate."""

    handle: int
    links: dict[int, str] = field(default_factory=dict)  # fate handle -> the link's name


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
    extra_options: ClassVar[Mapping[str, str]] = {
        "latency": "seconds FSEvents gathers changes before it calls back (default 0.05)",
    }
    #: Every OS call goes through this door; an emulation takes its place in a subclass.
    system: ClassVar[CoreServicesAPI] = SYSTEM

    @classmethod
    def probe(cls, path: str) -> Probe:
        reason = cls.system.unavailable()
        if reason is not None:
            return Probe.unavailable(cls.name, reason)
        kind = fs_type(path)
        if kind in REMOTE_FS:
            return Probe(cls.name, True, f"{kind}: changes made by other hosts are not seen",
                         score=5)
        return Probe(cls.name, True, "one stream for every root, file-level events", score=110)

    def __init__(self, options: Options | None = None, *, latency: float | None = None) -> None:
        super().__init__(options or Options())
        chosen = latency if latency is not None else self.options.extra.get("latency")
        self.latency = _latency(type(self).latency if chosen is None else chosen)
        system = self.system
        system.load()  # on another OS: CoreServicesUnavailable, saying so
        flags = _flags.STREAM_FLAGS
        if not system.extended_data():  # before macOS 10.13: plain paths, no file ids
            flags &= ~_flags.kFSEventStreamCreateFlagUseExtendedData
        self._stream = Stream(system, self.latency, flags)
        self._decoder = _abi.Decoder()
        self._ids = itertools.count(1)
        self._roots: dict[str, int] = {}  # path watched -> handle
        self._real: dict[int, str] = {}  # root handle -> the path the stream watches
        self._shallow: set[Hashable] = set()  # roots watched without their subtrees
        self._dirs: dict[str, _LinkDir] = {}  # real path of a link's directory
        self._fates: dict[int, str] = {}  # fate handle -> the directory holding its link
        self._warned: set[str] = set()
        self._closed = False

    @property
    def latest_id(self) -> int | None:
        """The latest event id seen: where a later stream can resume (``sinceWhen``)."""
        return self._stream.latest_id

    @property
    def stream_paths(self) -> tuple[str, ...]:
        """The paths the stream watches now."""
        return self._stream.paths

    def fileno(self) -> int | None:
        return None if self._closed else self._stream.waker.fileno()

    # ------------------------------------------------------------ roots and links

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        """Add a root to the stream; known by its path and the path it resolves to
        (FSEvents reports resolved paths: ``/tmp`` is ``/private/tmp`` on macOS).

        Raises :class:`~._stream.StreamError` if FSEvents will not watch it (the
        stream over the other roots goes on)."""
        handle = self._roots.get(path)
        if handle is not None:
            return handle
        if not os.path.isdir(path):
            raise WatchGoneError(errno.ENOENT, "not a directory any more", path)
        handle = next(self._ids)
        real = os.path.realpath(path)
        self._decoder.add(handle, path, real)
        self._real[handle] = real
        try:
            self._restream()
        except BaseException:
            self._decoder.remove(handle)
            del self._real[handle]
            raise
        self._roots[path] = handle
        if not recursive:
            self._shallow.add(handle)
        return handle

    def watch_self(self, path: str) -> Hashable | None:
        """A symbolic link on the way to a root: its directory joins the stream, and a
        change of its entries is the link's fate. Directories above a root return
        None: the stream's ``WatchRoot`` reports their renames (``RootChanged``)."""
        if not os.path.islink(path):
            return None
        parent = os.path.realpath(os.path.dirname(path))
        handle = next(self._ids)
        d = self._dirs.get(parent)
        if d is None:
            d = self._dirs[parent] = _LinkDir(next(self._ids))
            self._decoder.add(d.handle, parent)
        d.links[handle] = os.path.basename(path)
        self._fates[handle] = parent
        try:
            self._restream()
        except BaseException:
            self._unlink(handle)
            raise
        return handle

    def unwatch(self, handle: Hashable) -> None:
        if not isinstance(handle, int):
            return
        if handle in self._fates:
            self._unlink(handle)
        elif self._real.pop(handle, None) is not None:
            self._decoder.remove(handle)
            self._roots = {p: h for p, h in self._roots.items() if h != handle}
            self._shallow.discard(handle)
        else:
            return
        if not self._closed:
            try:
                self._restream()
            except OSError as exc:  # the smaller stream was refused: every root is lost
                self._warn("restream", f"FSEvents refused the stream over the roots left "
                           f"({exc}); nothing is watched until a root is added")

    def _unlink(self, handle: int) -> None:
        parent = self._fates.pop(handle)
        d = self._dirs[parent]
        d.links.pop(handle, None)
        if not d.links:
            del self._dirs[parent]
            self._decoder.remove(d.handle)

    def _restream(self) -> None:
        self._stream.watch([*self._real.values(), *self._dirs])

    # ------------------------------------------------------------ reading

    def deliver(
        self,
        paths: Sequence[object],
        flags: Sequence[object],
        event_ids: Sequence[object],
        file_ids: Sequence[object] | None = None,
    ) -> None:
        """One callback's arrays, as Python sequences (from any thread); decoded by the
        next :meth:`read`, which :meth:`fileno` wakes the loop for."""
        self._stream.put(paths, flags, event_ids, file_ids, extended=False)

    def read(self) -> Sequence[Observation]:
        out: list[Observation] = []
        decoder = self._decoder
        for events, flags, event_ids, file_ids, extended in self._stream.take():
            try:
                if extended:
                    events, file_ids = _abi.split_extended(events)
                out += decoder.decode(events, flags, event_ids, file_ids)
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
        if self._shallow:
            out = _shallow(out, self._shallow)
        return self._links(out) if self._dirs else out

    def _links(self, observations: list[Observation]) -> list[Observation]:
        """The observations of links' directories made the links' fates: a change of
        the directory's entries (or a loss there) may be the link renamed, removed or
        replaced, and the engine then checks the roots below; the rest is dropped."""
        dirs: dict[Hashable, _LinkDir] = {d.handle: d for d in self._dirs.values()}
        out: list[Observation] = []
        fated: dict[int, None] = {}
        for obs in observations:
            d, names = _link_dir_of(obs, dirs)
            if d is None:
                out.append(obs)
                continue
            for fate, name in d.links.items():
                if names is None or name in names:
                    fated[fate] = None
        return out + [EntryChange(h, "", Action.MOVED_FROM) for h in fated]

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, CrosswatchWarning, stacklevel=3)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._roots.clear()
        self._real.clear()
        self._dirs.clear()
        self._fates.clear()
        self._stream.close()


def _shallow(observations: list[Observation], shallow: set[Hashable]) -> list[Observation]:
    """The observations of roots watched without their subtrees cut to their entries:
    the stream reports the whole tree, and the engine would look deeper for nothing."""
    out: list[Observation] = []
    for obs in observations:
        if isinstance(obs, Renamed):
            deep = "/" in obs.old_name or "/" in obs.new_name
            if obs.old_handle not in shallow or not deep:
                out.append(obs)
            elif "/" not in obs.new_name:  # in from below: arrived
                out.append(EntryChange(obs.new_handle, obs.new_name, Action.CREATED, obs.is_dir))
            elif "/" not in obs.old_name:  # down out of sight: left
                out.append(EntryChange(obs.old_handle, obs.old_name, Action.DELETED, obs.is_dir))
        elif isinstance(obs, Gone | MountsChanged) or obs.handle not in shallow or not obs.name:
            out.append(obs)
        elif "/" in obs.name or isinstance(obs, DirDirty):
            continue  # below the entries: out of sight
        elif isinstance(obs, SubtreeLost):  # a loss at an entry: a look at it
            out.append(EntryChange(obs.handle, obs.name, Action.CREATED))
        else:
            out.append(obs)
    return out


def _link_dir_of(
    obs: Observation, dirs: dict[Hashable, _LinkDir]
) -> tuple[_LinkDir | None, set[str] | None]:
    """(the links' directory ``obs`` is about, the entry names it names there, or None
    for any of them), or (None, None) for an observation on a root."""
    if isinstance(obs, Renamed):
        d = dirs.get(obs.old_handle) or dirs.get(obs.new_handle)
        return d, {obs.old_name, obs.new_name}
    if isinstance(obs, MountsChanged):
        return None, None
    d = dirs.get(obs.handle)
    if d is None:
        return None, None
    if isinstance(obs, SubtreeLost | DirDirty | EntryChange) and not obs.name:
        return d, None  # the directory itself, or all of it
    if isinstance(obs, SubtreeLost):
        return d, {obs.name.split("/")[0]}
    if isinstance(obs, EntryChange) and obs.action in (Action.CREATED, Action.DELETED):
        return d, {obs.name}
    return d, set()

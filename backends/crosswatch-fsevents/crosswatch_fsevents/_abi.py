"""The decoding of one callback's arrays into observations.

Pure Python, no OS calls: tested on every OS with the arrays a stream's callback
is handed. The constants live in ``_flags`` and are re-exported here.

FSEvents coalesces: one event may stand for several changes to its path
(created, written and removed within the latency), and its flags may carry bits
from earlier changes to that path. So no flag set is taken as what happened;
each event only tells the engine where to look:

* an item only created or removed, or renamed without its partner but with a file
  id: a look at the entry (``EntryChange`` ``CREATED``, or ``DELETED`` where it may
  have gone), which the engine makes agree with the disk;
* an item cloned, created or removed and also written, or renamed without its
  partner nor a file id: the directory it is in is dirty (``DirDirty``), and the
  engine's diff of it finds what is there now. Every such directory of one
  callback goes into one run of ``DirDirty``, so the diff pairs by identity a
  rename whose two halves it finds; the run comes after the callback's renames,
  so a directory a later rename moved is also named where it went;
* an item only written or with only its metadata changed: ``EntryChange``
  (``MODIFIED``, or ``ATTRIB``), which the engine checks against its cache (a name
  it does not know is looked at on the disk);
* two ``ItemRenamed`` events with the same file id in one callback (extended
  data): ``Renamed``, the first path to the second;
* the root's own path (an item event on it, ``RootChanged``, a mount or unmount at
  or above it): the engine verifies that the path still leads to the root;
* a loss (``MustScanSubDirs``, ``UserDropped``, ``KernelDropped``): ``SubtreeLost``.
"""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from crosswatch.backend import Action, DirDirty, EntryChange, Observation, Renamed, SubtreeLost

from ._flags import *  # noqa: F403  (the constants, re-exported here)
from ._flags import (
    DROPPED,
    ITEM,
    KIND,
    KNOWN,
    LOST,
    METADATA,
    SPECIAL,
    STRUCTURE,
    kFSEventStreamEventExtendedDataPathKey,
    kFSEventStreamEventExtendedFileIDKey,
    kFSEventStreamEventFlagEventIdsWrapped,
    kFSEventStreamEventFlagHistoryDone,
    kFSEventStreamEventFlagItemCloned,
    kFSEventStreamEventFlagItemIsDir,
    kFSEventStreamEventFlagItemIsFile,
    kFSEventStreamEventFlagItemIsSymlink,
    kFSEventStreamEventFlagItemModified,
    kFSEventStreamEventFlagItemRemoved,
    kFSEventStreamEventFlagItemRenamed,
    kFSEventStreamEventFlagMount,
    kFSEventStreamEventFlagNone,
    kFSEventStreamEventFlagRootChanged,
    kFSEventStreamEventFlagUnmount,
)

#: Moved or cloned: the other place is unknown, so the directory is diffed (a run of
#: those pairs a move by identity).
MOVED = kFSEventStreamEventFlagItemRenamed | kFSEventStreamEventFlagItemCloned
CONTENT = METADATA | kFSEventStreamEventFlagItemModified

_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class FSEventsDecodeError(ValueError):
    """One callback's arrays do not fit together; nothing of it was decoded.

    The stream's events of that callback are lost: the caller reports a loss of
    every root (:meth:`Decoder.lost`), which the engine repairs with a rescan.
    """


def split_extended(entries: Sequence[object]) -> tuple[list[str | bytes], list[int | None]]:
    """(paths, file ids) from the dictionaries of an extended-data callback.

    Each entry is the event's dictionary turned into a Python mapping: its
    ``"path"`` is required, its ``"fileID"`` is optional (``None`` where missing).
    """
    paths: list[str | bytes] = []
    ids: list[int | None] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise FSEventsDecodeError(
                f"extended data: event {i} is a {type(entry).__name__}, not a dictionary"
            )
        path = entry.get(kFSEventStreamEventExtendedDataPathKey)
        if not isinstance(path, str | bytes):
            raise FSEventsDecodeError(f"extended data: event {i} has no path")
        file_id = entry.get(kFSEventStreamEventExtendedFileIDKey)
        if file_id is not None and (not isinstance(file_id, int) or isinstance(file_id, bool)):
            raise FSEventsDecodeError(
                f"extended data: event {i} has a file id that is not an integer: {file_id!r}"
            )
        paths.append(path)
        ids.append(file_id)
    return paths, ids


@dataclass(slots=True)
class _Root:
    handle: Hashable
    spellings: tuple[str, ...]


@dataclass(slots=True)
class _Event:
    path: str
    flags: int
    event_id: int
    file_id: int | None
    index: int = 0  # its place in the callback


@dataclass(slots=True)
class Decoder:
    """Turns a stream's callbacks into observations on the roots it watches.

    A root is known by one or more *spellings*: FSEvents reports paths with
    symbolic links resolved (``/tmp/x`` is reported as ``/private/tmp/x``), so a
    root is added with the path watched and the path it resolves to; relative
    names are computed against the spelling an event matched. An event under
    several roots (one inside another) is reported on each.
    """

    roots: dict[Hashable, _Root] = field(default_factory=dict)
    latest_id: int | None = None
    """The latest event id seen (0s, which ``RootChanged`` carries, aside): the
    ``sinceWhen`` of a later stream that resumes where this one stopped."""
    history_done: bool = False
    """``HistoryDone`` came: the replay of a stream started ``since`` an id is over."""
    wrapped: int = 0
    """How many times the event ids wrapped around (``latest_id`` restarted)."""
    strays: int = 0
    """Events whose path is under no root (and above none), ignored."""
    last_stray: str | None = None
    unknown_bits: int = 0
    """Flag bits seen that ``FSEvents.h`` does not document (a newer OS)."""

    def add(self, handle: Hashable, *spellings: str) -> None:
        """Watch ``handle``'s root under each absolute path given (duplicates dropped)."""
        clean: list[str] = []
        for spelling in spellings:
            if not spelling.startswith("/"):
                raise ValueError(f"a root's path must be absolute, not {spelling!r}")
            p = _strip(spelling)
            if p not in clean:
                clean.append(p)
        if not clean:
            raise ValueError("a root needs at least one path")
        self.roots[handle] = _Root(handle, tuple(clean))

    def remove(self, handle: Hashable) -> None:
        self.roots.pop(handle, None)

    def lost(self) -> list[Observation]:
        """What a callback that could not be decoded stands for: every root lost."""
        return [SubtreeLost(h) for h in self.roots]

    # ------------------------------------------------------------ decoding

    def decode(
        self,
        paths: Sequence[object],
        flags: Sequence[object],
        event_ids: Sequence[object],
        file_ids: Sequence[object] | None = None,
    ) -> list[Observation]:
        """The observations one callback's arrays stand for.

        ``paths`` are ``str`` or ``bytes`` (UTF-8; bytes that are not are carried as
        surrogate escapes, as ``os.fsdecode`` does on macOS); ``file_ids`` are the
        extended data's ``fileID``s (``None`` where missing). Raises
        :class:`FSEventsDecodeError` if the arrays do not fit together; then
        nothing of the callback is used, and :meth:`latest_id` is unchanged.
        """
        events = _events(paths, flags, event_ids, file_ids)
        out: list[Observation] = []
        dirty: dict[DirDirty, int] = {}  # one run, in the order first seen: its first event
        lost: dict[SubtreeLost, None] = {}
        moves: list[tuple[int, Renamed]] = []  # (the event it begins at, the rename)
        renames = self._pair(events)
        for i, ev in enumerate(events):
            self._note_id(ev)
            f = ev.flags
            self.unknown_bits |= f & ~KNOWN
            if f & kFSEventStreamEventFlagHistoryDone:
                self.history_done = True
                continue  # its path means nothing
            if f & kFSEventStreamEventFlagEventIdsWrapped and not f & ~(
                kFSEventStreamEventFlagEventIdsWrapped
            ):
                continue
            if f & LOST:
                for obs in self._lost(ev.path, dropped=bool(f & DROPPED)):
                    lost[obs] = None
                continue
            if f & (
                kFSEventStreamEventFlagRootChanged
                | kFSEventStreamEventFlagMount
                | kFSEventStreamEventFlagUnmount
            ):
                self._moved_under(ev, out, dirty)
                if not f & ITEM:
                    continue
            paired = renames.get(i)
            if paired is not None:
                out += paired[0]
                moves += [(i, o) for o in paired[0] if isinstance(o, Renamed)]
                self._after_rename(ev, paired[1], out, dirty)
                continue
            self._item(ev, out, dirty)
        if moves:
            dirty = _moved_on(dirty, moves)
        if lost:
            # A rescan of a subtree covers every look inside it.
            out = [o for o in out if not _covered(o, lost)]
            dirty = {d: i for d, i in dirty.items() if not _covered(d, lost)}
        return out + list(dirty) + list(lost)

    def _note_id(self, ev: _Event) -> None:
        if ev.flags & kFSEventStreamEventFlagEventIdsWrapped:
            self.wrapped += 1
            self.latest_id = ev.event_id or None
        elif ev.event_id and (self.latest_id is None or ev.event_id > self.latest_id):
            self.latest_id = ev.event_id

    def _places(self, path: str) -> list[tuple[Hashable, str]]:
        """(handle, name relative to the root) for each root ``path`` is at or under."""
        out: list[tuple[Hashable, str]] = []
        for root in self.roots.values():
            for top in root.spellings:
                rel = _relative(path, top)
                if rel is not None:
                    out.append((root.handle, rel))
                    break
        return out

    def _above(self, path: str) -> list[Hashable]:
        """The roots strictly below ``path`` (a mount or loss reported above them)."""
        return [
            r.handle
            for r in self.roots.values()
            if any(_relative(top, path) not in (None, "") for top in r.spellings)
        ]

    def _stray(self, path: str) -> None:
        self.strays += 1
        self.last_stray = path

    def _lost(self, path: str, *, dropped: bool) -> list[SubtreeLost]:
        """A loss: every root if events were dropped (Apple: rescan all a stream
        watches) or the path is nowhere near a root, else the subtree at the path."""
        places = self._places(path)
        above = self._above(path)
        if dropped or not (places or above):
            return [SubtreeLost(h) for h in self.roots]
        return [SubtreeLost(h, rel) for h, rel in places] + [SubtreeLost(h) for h in above]

    def _moved_under(
        self, ev: _Event, out: list[Observation], dirty: dict[DirDirty, int]
    ) -> None:
        """``RootChanged``, ``Mount``, ``Unmount``: what the path leads to changed.

        At or above a root, the engine verifies the root's path (``DirDirty`` of the
        root); inside a root, the mount point's subtree is read again.
        """
        places = self._places(ev.path)
        above = self._above(ev.path)
        if not (places or above):
            self._stray(ev.path)
            return
        for h, rel in places:
            if not rel:
                dirty.setdefault(DirDirty(h, ""), ev.index)
            elif ev.flags & kFSEventStreamEventFlagRootChanged:  # another root's path
                dirty.setdefault(DirDirty(h, posixpath.dirname(rel)), ev.index)
            else:
                out.append(SubtreeLost(h, rel))
        for h in above:
            dirty.setdefault(DirDirty(h, ""), ev.index)

    def _item(self, ev: _Event, out: list[Observation], dirty: dict[DirDirty, int]) -> None:
        f = ev.flags
        places = self._places(ev.path)
        if not places:
            self._stray(ev.path)
            return
        is_dir = _is_dir(f)
        for h, rel in places:
            if not f & KNOWN or f == kFSEventStreamEventFlagNone:
                # No item flag: a stream without file events names a directory whose
                # entries changed; a bit this module does not know, the same look.
                dirty.setdefault(DirDirty(h, rel), ev.index)
            elif not rel:  # the root itself
                if f & STRUCTURE:
                    out.append(EntryChange(h, "", Action.DELETED, True))  # root checked
                else:
                    dirty.setdefault(DirDirty(h, ""), ev.index)  # its stat compared: attrib
            elif f & STRUCTURE and not f & CONTENT and (
                not f & MOVED or ev.file_id is not None
            ):
                # Only created or removed (maybe both, order lost), or renamed with a
                # file id but no partner here (moved in or out): a look at the entry,
                # which keeps the cached state if it is the same one (a diff of the
                # directory would take a file listed while it was new as written since).
                gone = bool(f & (kFSEventStreamEventFlagItemRemoved | MOVED))
                look = EntryChange(h, rel, Action.DELETED if gone else Action.CREATED, is_dir)
                if not out or out[-1] != look:
                    out.append(look)
            elif f & STRUCTURE:  # moved, or created and written (the bits stay set): diff
                dirty.setdefault(DirDirty(h, posixpath.dirname(rel)), ev.index)
            elif f & kFSEventStreamEventFlagItemModified and is_dir is not True:
                out.append(EntryChange(h, rel, Action.MODIFIED, is_dir))
            elif f & METADATA:
                out.append(EntryChange(h, rel, Action.ATTRIB, is_dir))
            elif f & kFSEventStreamEventFlagItemModified:
                dirty.setdefault(DirDirty(h, rel), ev.index)  # a directory "written": list it
            elif not f & ITEM:  # kind bits or OwnEvent only: look at the entry
                dirty.setdefault(DirDirty(h, posixpath.dirname(rel)), ev.index)

    def _pair(self, events: list[_Event]) -> dict[int, tuple[list[Observation], _Event]]:
        """Renames paired by file id: for each event paired, the ``Renamed`` it
        begins (if any) and the event of its file's last place in the callback.

        The ``ItemRenamed`` events of one file id are taken in order, each one's path
        the next one's source (``a -> b -> c`` is two moves); a rename whose source
        and destination are one path is no move, and is left to the hints.
        """
        by_id: dict[int, list[int]] = {}
        for i, ev in enumerate(events):
            renamed = ev.flags & kFSEventStreamEventFlagItemRenamed
            special = ev.flags & (SPECIAL & ~kFSEventStreamEventFlagEventIdsWrapped)
            if ev.file_id is not None and renamed and not special:
                by_id.setdefault(ev.file_id, []).append(i)
        out: dict[int, tuple[list[Observation], _Event]] = {}
        for indexes in by_id.values():
            last = events[indexes[-1]]
            for a, b in itertools.pairwise(indexes):
                old, new = events[a], events[b]
                if old.path == new.path:
                    continue
                obs = self._renamed(old, new)
                if obs is None:
                    continue
                out.setdefault(a, ([], last))[0].extend(obs)
                out.setdefault(b, ([], last))
        return out

    def _after_rename(
        self, ev: _Event, last: _Event, out: list[Observation], dirty: dict[DirDirty, int]
    ) -> None:
        """What a paired event says besides its rename: created or removed at its
        path (a look there), written or its metadata changed (at the file's last place:
        a write before the move is news about the file, wherever it is now)."""
        kind = ev.flags & KIND
        structure = ev.flags & STRUCTURE & ~kFSEventStreamEventFlagItemRenamed
        if structure:
            self._item(_Event(ev.path, structure | kind, ev.event_id, None, ev.index), out, dirty)
        content = ev.flags & (METADATA | kFSEventStreamEventFlagItemModified)
        if content:
            self._item(_Event(last.path, content | kind, ev.event_id, None, ev.index), out, dirty)

    def _renamed(self, old: _Event, new: _Event) -> list[Observation] | None:
        """``Renamed`` on each root holding both paths; None if no root holds both
        (then each half is a hint where it is)."""
        olds = dict(self._places(old.path))
        news = dict(self._places(new.path))
        both = [h for h in olds if h in news and olds[h] and news[h]]
        if not both or len(both) != len(olds) or len(both) != len(news):
            return None
        is_dir = _is_dir(old.flags | new.flags)
        return [Renamed(h, olds[h], h, news[h], is_dir) for h in both]


def _events(
    paths: Sequence[object],
    flags: Sequence[object],
    event_ids: Sequence[object],
    file_ids: Sequence[object] | None,
) -> list[_Event]:
    n = len(paths)
    if len(flags) != n or len(event_ids) != n or (file_ids is not None and len(file_ids) != n):
        ids = "" if file_ids is None else f", {len(file_ids)} file ids"
        raise FSEventsDecodeError(
            f"a callback's arrays differ in length: {n} paths, {len(flags)} flags, "
            f"{len(event_ids)} event ids{ids}"
        )
    out = []
    for i in range(n):
        path, f, eid = paths[i], flags[i], event_ids[i]
        fid = None if file_ids is None else file_ids[i]
        if not _uint(f, _U32):
            raise FSEventsDecodeError(f"event {i}: flags {f!r} are not a 32-bit unsigned value")
        if not _uint(eid, _U64):
            raise FSEventsDecodeError(f"event {i}: id {eid!r} is not a 64-bit unsigned value")
        if fid is not None and not _uint(fid, _U64):
            raise FSEventsDecodeError(f"event {i}: file id {fid!r} is not a 64-bit value")
        if isinstance(path, bytes):
            text = path.decode("utf-8", "surrogateescape")
        elif isinstance(path, str):
            text = path
        else:
            raise FSEventsDecodeError(f"event {i}: the path is a {type(path).__name__}")
        meaningless = kFSEventStreamEventFlagHistoryDone | kFSEventStreamEventFlagEventIdsWrapped
        if not text.startswith("/") and not f & meaningless:
            raise FSEventsDecodeError(f"event {i}: the path {text!r} is not absolute")
        if "\0" in text:
            raise FSEventsDecodeError(f"event {i}: the path {text!r} holds a NUL")
        out.append(_Event(_strip(text), f, eid, fid if _uint(fid, _U64) else None, i))
    return out


def _moved_on(dirty: dict[DirDirty, int], moves: list[tuple[int, Renamed]]) -> dict[DirDirty, int]:
    """The dirty directories, each also where the callback's later renames put it.

    The run is applied after the callback's renames, but a directory was named where
    it was when its event was made: one inside a directory renamed after that (in
    the callback's order) is diffed at its new place too.
    """
    out: dict[DirDirty, int] = {}
    for d, index in dirty.items():
        out[d] = index
        handle, name = d.handle, d.name
        for at, move in moves:
            rel = _relative(name, move.old_name) if move.old_handle == handle else None
            if at > index and rel is not None:
                handle = move.new_handle
                name = posixpath.join(move.new_name, rel) if rel else move.new_name
        if (handle, name) != (d.handle, d.name):
            out.setdefault(DirDirty(handle, name, d.recursive), index)
    return out


def _uint(value: object, top: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


def _strip(path: str) -> str:
    """``path`` without trailing slashes (directory-level events end with one)."""
    stripped = path.rstrip("/")
    return stripped or "/"


def _relative(path: str, top: str) -> str | None:
    """``path`` relative to ``top`` (``""`` if equal), or None if not under it."""
    if path == top:
        return ""
    prefix = top if top.endswith("/") else top + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _is_dir(flags: int) -> bool | None:
    if flags & kFSEventStreamEventFlagItemIsDir:
        return True
    if flags & (kFSEventStreamEventFlagItemIsFile | kFSEventStreamEventFlagItemIsSymlink):
        return False
    return None


def _covered(obs: Observation, lost: Iterable[SubtreeLost]) -> bool:
    """Does a rescan in ``lost`` cover what ``obs`` would make the engine look at?"""
    if isinstance(obs, SubtreeLost):
        return obs in lost
    if isinstance(obs, Renamed):
        return _covered(DirDirty(obs.old_handle, obs.old_name), lost) and _covered(
            DirDirty(obs.new_handle, obs.new_name), lost
        )
    handle = getattr(obs, "handle", None)
    name = getattr(obs, "name", "")
    for lo in lost:
        if lo.handle is None or (lo.handle == handle and _relative(name, lo.name) is not None):
            return True
        if lo.handle == handle and not lo.name:
            return True
    return False

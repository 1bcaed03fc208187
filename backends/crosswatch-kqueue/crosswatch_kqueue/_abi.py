"""kqueue's ABI for vnodes: filter, flag and note values, and the decoding of one kevent.

Pure Python, no system calls: tested on any OS with kevents given as plain ints.
The values are those of ``sys/event.h`` (kqueue(2)) on macOS and FreeBSD; where
Python's ``select`` module has a name (``KQ_*``), its value is used instead, so the
running kernel's header wins over this table.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, fields
from types import ModuleType
from typing import NamedTuple

from crosswatch.backend import (
    Action,
    DirDirty,
    EntryChange,
    Gone,
    Handle,
    Observation,
    SubtreeLost,
    WatchError,
    WatchLimitError,
)


@dataclass(frozen=True, slots=True)
class Abi:
    """The kqueue values one OS uses. ``note_funlock`` is ``None`` where it does not exist.

    The vnode notes 0x01-0x40 and the flags below have the same values on macOS,
    FreeBSD, OpenBSD and NetBSD; what differs is above them: 0x80 is
    ``NOTE_NONE`` on macOS and ``NOTE_OPEN`` on FreeBSD, 0x100 is ``NOTE_FUNLOCK`` on
    macOS and ``NOTE_CLOSE`` on FreeBSD. Filters are negative on macOS, FreeBSD and
    OpenBSD (``EVFILT_VNODE`` -4) but not on NetBSD (3), so the filter is taken from
    ``select`` when it can be.
    """

    evfilt_vnode: int = -4
    ev_add: int = 0x0001
    ev_delete: int = 0x0002
    ev_enable: int = 0x0004
    ev_disable: int = 0x0008
    ev_oneshot: int = 0x0010
    ev_clear: int = 0x0020
    ev_receipt: int = 0x0040
    ev_dispatch: int = 0x0080
    ev_error: int = 0x4000
    ev_eof: int = 0x8000
    note_delete: int = 0x0001
    note_write: int = 0x0002
    note_extend: int = 0x0004
    note_attrib: int = 0x0008
    note_link: int = 0x0010
    note_rename: int = 0x0020
    note_revoke: int = 0x0040
    note_funlock: int | None = None

    @property
    def watch_notes(self) -> int:
        """The notes every descriptor asks for: its content, metadata, links and fate."""
        return (
            self.note_delete
            | self.note_write
            | self.note_extend
            | self.note_attrib
            | self.note_link
            | self.note_rename
            | self.note_revoke
        )

    @property
    def watch_flags(self) -> int:
        """Added and enabled; ``EV_CLEAR``: the notes reset once reported."""
        return self.ev_add | self.ev_enable | self.ev_clear


#: The documented values per OS (``sys/event.h``).
DARWIN = Abi(note_funlock=0x0100)
FREEBSD = Abi()
#: Values on FreeBSD that macOS gives other meanings (not asked for; ignored if seen).
FREEBSD_NOTE_OPEN = 0x0080
FREEBSD_NOTE_CLOSE = 0x0100
FREEBSD_NOTE_CLOSE_WRITE = 0x0200
FREEBSD_NOTE_READ = 0x0400
DARWIN_NOTE_NONE = 0x0080

#: Names in ``select`` for the fields of :class:`Abi` (``KQ_FILTER_VNODE``, ``KQ_EV_ADD``…).
_SELECT_NAMES = {
    "evfilt_vnode": "KQ_FILTER_VNODE",
    **{f"ev_{n}": f"KQ_EV_{n.upper()}" for n in (
        "add", "delete", "enable", "disable", "oneshot", "clear", "receipt", "dispatch",
        "error", "eof",
    )},
    **{f"note_{n}": f"KQ_NOTE_{n.upper()}" for n in (
        "delete", "write", "extend", "attrib", "link", "rename", "revoke", "funlock",
    )},
}


def documented(platform: str = sys.platform) -> Abi:
    """The table for ``platform`` (a ``sys.platform`` value); FreeBSD's for other BSDs."""
    return DARWIN if platform == "darwin" else FREEBSD


def current(select_module: ModuleType | None = None, platform: str = sys.platform) -> Abi:
    """The values in force: ``select``'s ``KQ_*`` where it has them, else the table."""
    base = documented(platform)
    if select_module is None:
        import select as select_module
    values = {}
    for f in fields(Abi):
        value = getattr(select_module, _SELECT_NAMES[f.name], None)
        values[f.name] = value if isinstance(value, int) else getattr(base, f.name)
    return Abi(**values)


class KEvent(NamedTuple):
    """One ``struct kevent`` as plain ints (``select.kevent``'s attributes)."""

    ident: int
    filter: int
    flags: int
    fflags: int
    data: int = 0
    udata: int = 0

    @classmethod
    def of(cls, kev: object) -> KEvent:
        """From a ``select.kevent`` (or anything with its attributes)."""
        return cls(*(int(getattr(kev, a)) for a in cls._fields))


@dataclass(frozen=True, slots=True)
class Vnode:
    """What the backend knows of one descriptor it registered.

    ``parent`` and ``name`` place the entry: the watch handle of the directory that
    holds it and its name there (``None`` and ``""`` for a root). A directory has a
    watch of its own, ``watch``, the handle :meth:`Backend.watch` returned for it;
    a file has none. ``path`` is relative to the root, for messages.
    """

    path: str
    is_dir: bool
    parent: Handle | None = None
    name: str = ""
    watch: Handle | None = None

    def __post_init__(self) -> None:
        if self.is_dir and self.watch is None:
            raise ValueError("a directory's descriptor needs its watch handle")
        if self.parent is None and not self.is_dir:
            raise ValueError("a file's descriptor needs its directory's watch handle")

    @property
    def is_root(self) -> bool:
        return self.parent is None


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one kevent means: observations, whether to close its descriptor, an error.

    ``close``: the descriptor watches nothing useful any more (the entry was removed,
    revoked, or a file renamed, so its name here is stale): the backend closes it
    and forgets it. The listing of the parent that ``DirDirty`` leads to opens what
    is there now. ``error``: the kernel refused the descriptor's registration; the
    observations still make the engine look at what went unwatched.
    """

    observations: tuple[Observation, ...] = ()
    close: bool = False
    error: WatchError | None = None


NOTHING = Decoded()
_HERE = documented()

#: EV_ERROR data saying that the descriptor or its vnode is gone: as if deleted.
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.EBADF})
_LIMIT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def decode(event: KEvent, vnode: Vnode | None, abi: Abi | None = None) -> Decoded:
    """The meaning of ``event`` for the descriptor described by ``vnode``.

    - on a directory, ``NOTE_WRITE``, ``NOTE_EXTEND`` or ``NOTE_LINK``: its entries
      changed, ``DirDirty`` of it (the engine's rescan pairs renames by identity);
    - on a file, ``NOTE_WRITE`` or ``NOTE_EXTEND``: ``MODIFIED``; ``NOTE_LINK`` (its
      link count changed) and ``NOTE_ATTRIB``: ``ATTRIB``, as inotify reports them;
    - ``NOTE_DELETE``, ``NOTE_REVOKE`` or ``EV_EOF`` (the knote detached): the entry
      is gone, ``DirDirty`` of its parent; a directory's watch also ends (``Gone``)
      so the engine drops the handle. The descriptor is closed;
    - ``NOTE_RENAME``: ``DirDirty`` of its (old) parent. A file's descriptor is
      closed (its name here is stale); a directory's is kept, since it follows the
      directory and the engine keeps the handle through the rescan's pairing;
    - on a root, removed or revoked: ``Gone`` of its watch (the engine checks the
      root's path and ends it); renamed: ``DirDirty`` of the root, whose rescan
      verifies the root's path first;
    - ``EV_ERROR``: data 0 is a receipt (nothing); ``ENOENT``/``EBADF``, the entry
      went first, as removed; any other errno, an error naming the entry, and the
      directory's watch ends (the engine rescans and places it again) or the
      file's directory is rescanned (``SubtreeLost``: the file's events were lost).

    Other filters, unknown notes and flags, and descriptors the backend no longer
    knows (``vnode`` None) mean nothing.
    """
    abi = abi or _HERE
    if vnode is None or event.filter != abi.evfilt_vnode:
        return NOTHING
    if event.flags & abi.ev_error:
        return _error(event.data, vnode)
    notes = event.fflags
    dead = bool(notes & (abi.note_delete | abi.note_revoke) or event.flags & abi.ev_eof)
    renamed = bool(notes & abi.note_rename)
    dirty = bool(notes & (abi.note_write | abi.note_extend | abi.note_link))
    attrib = bool(notes & abi.note_attrib)
    if vnode.is_root:
        return _root(vnode, dead=dead, renamed=renamed, dirty=dirty, attrib=attrib)
    parent = vnode.parent
    assert parent is not None
    if vnode.is_dir:
        assert vnode.watch is not None
        if dead:
            return Decoded((DirDirty(parent), Gone(vnode.watch)), close=True)
        out: list[Observation] = []
        if renamed:
            out.append(DirDirty(parent))  # its name in the parent is stale: no ATTRIB
        elif attrib:
            out.append(EntryChange(parent, vnode.name, Action.ATTRIB, True))
        if dirty:
            out.append(DirDirty(vnode.watch))
        return Decoded(tuple(out))
    if dead or renamed:
        return Decoded((DirDirty(parent),), close=True)
    out = []
    if notes & (abi.note_write | abi.note_extend):
        out.append(EntryChange(parent, vnode.name, Action.MODIFIED, False))
    if attrib or notes & abi.note_link:
        out.append(EntryChange(parent, vnode.name, Action.ATTRIB, False))
    return Decoded(tuple(out))


def _root(vnode: Vnode, *, dead: bool, renamed: bool, dirty: bool, attrib: bool) -> Decoded:
    watch = vnode.watch
    assert watch is not None
    if dead:
        return Decoded((Gone(watch),), close=True)
    out: list[Observation] = []
    if attrib and not renamed:
        out.append(EntryChange(watch, "", Action.ATTRIB, True))
    if dirty or renamed:
        out.append(DirDirty(watch))
    return Decoded(tuple(out))


def _error(err: int, vnode: Vnode) -> Decoded:
    if err == 0:
        return NOTHING  # EV_RECEIPT's answer for a change that was made
    if err in _GONE_ERRNOS:
        if vnode.is_root:
            assert vnode.watch is not None
            return Decoded((Gone(vnode.watch),), close=True)
        assert vnode.parent is not None
        gone: tuple[Observation, ...] = (DirDirty(vnode.parent),)
        if vnode.watch is not None:
            gone += (Gone(vnode.watch),)
        return Decoded(gone, close=True)
    what = "directory" if vnode.is_dir else "file"
    shown = vnode.path or "the root"
    try:
        reason = os.strerror(err)
    except (ValueError, OverflowError):
        reason = f"error {err}"
    if err in _LIMIT_ERRNOS:
        error: WatchError = WatchLimitError(
            err,
            f"kqueue cannot watch the {what} {shown!r}: {reason}; raise the open-file "
            "limit (ulimit -n) or use backend='polling'",
            vnode.path,
        )
    else:
        error = WatchError(
            err, f"kqueue refused to watch the {what} {shown!r}: {reason}", vnode.path
        )
    if vnode.watch is not None:
        return Decoded((Gone(vnode.watch),), close=True, error=error)
    assert vnode.parent is not None
    return Decoded((SubtreeLost(vnode.parent, ""),), close=True, error=error)


def fate_notes(abi: Abi | None = None) -> int:
    """The notes a descriptor watched for its own fate only asks for."""
    abi = abi or _HERE
    return abi.note_delete | abi.note_rename | abi.note_revoke


def decode_fate(event: KEvent, handle: Handle, abi: Abi | None = None) -> Decoded:
    """The meaning of ``event`` on a descriptor watched only for its own fate.

    Removed or revoked (or ``EV_EOF``): ``DELETED`` of the entry itself and ``Gone``,
    the descriptor closed; renamed: ``MOVED_FROM`` of the entry itself, the descriptor
    kept until unwatched (the engine checks the roots below and watches their paths
    again). ``EV_ERROR`` other than a receipt: ``Gone``, since nothing is watched.
    """
    abi = abi or _HERE
    if event.filter != abi.evfilt_vnode:
        return NOTHING
    if event.flags & abi.ev_error:
        return NOTHING if event.data == 0 else Decoded((Gone(handle),), close=True)
    if event.fflags & (abi.note_delete | abi.note_revoke) or event.flags & abi.ev_eof:
        return Decoded((EntryChange(handle, "", Action.DELETED), Gone(handle)), close=True)
    if event.fflags & abi.note_rename:
        return Decoded((EntryChange(handle, "", Action.MOVED_FROM),))
    return NOTHING

"""kqueue emulated on Linux, on top of inotify, for testing the kqueue backend here.

:class:`KqueueEmulation` stands in for the kernel (``crosswatch_kqueue._kq``):
``open`` opens real descriptors (so ``RLIMIT_NOFILE`` and ``EMFILE`` are real), and
its queues (:class:`EmulatedQueue`) turn what inotify reports of each registered
descriptor's inode into that descriptor's vnode notes, as macOS and FreeBSD
document them:

- a directory: ``NOTE_WRITE`` when an entry is added, removed or renamed in it,
  with ``NOTE_LINK`` when that entry is a subdirectory that comes or goes (not for
  one renamed within it); ``NOTE_ATTRIB`` for its own metadata;
- a file: ``NOTE_WRITE`` for a write (``NOTE_EXTEND`` too when it grew),
  ``NOTE_ATTRIB`` for its metadata, ``NOTE_LINK`` when a link to it is made;
- either: ``NOTE_DELETE`` at every unlink (or rename over it), ``NOTE_RENAME``
  when renamed, ``NOTE_REVOKE`` when its file system is unmounted.

inotify reports an inode's removal only once its last descriptor is closed, and
kqueue's descriptors keep it open; so removals are derived from the link count
(``fstat``) when inotify says it changed: a file's own ``IN_ATTRIB``, and for a
directory its parent's ``IN_DELETE``, which the emulation watches too.

With ``EV_CLEAR`` a descriptor's notes accumulate until they are read, then
reset; without it they stay. Closing a descriptor through :meth:`KqueueEmulation.close`
removes its knotes and what they had pending. Nothing else comes through: no
names, no rename cookies, no recursion, as with kqueue. ``EV_RECEIPT`` and
per-change ``EV_ERROR`` results behave as kevent(2) says. Failures can be
injected: :meth:`KqueueEmulation.fail_open` (``EMFILE`` at the Nth open),
:meth:`KqueueEmulation.fail_add` (an ``EV_ERROR`` for the Nth registration) and
:meth:`EmulatedQueue.post` (any kevent for a registered descriptor); and
:meth:`EmulatedQueue.overflow` drops inotify's records, as an overflow of its
queue would, after which each descriptor's notes are rebuilt from its inode's
state (kqueue itself never drops notes).

Use it as the backend's door::

    class EmulatedKqueue(KqueueBackend):
        system = KqueueEmulation()
"""

from __future__ import annotations

import errno
import os
import select
import stat
import sys
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crosswatch.testing import Inotify
from crosswatch.testing import _inotify as ino

from . import _abi, _kq
from ._backend import KqueueBackend

__all__ = ["EmulatedKqueue", "EmulatedQueue", "KqueueEmulation"]

_ENTRIES = ino.IN_CREATE | ino.IN_DELETE | ino.IN_MOVED_FROM | ino.IN_MOVED_TO
#: Records on a watched directory's parent after which its link count is looked at.
_PARENT = ino.IN_DELETE | ino.IN_MOVED_TO
_MASK = ino.CHANGES | ino.IN_UNMOUNT


@dataclass(slots=True)
class _Knote:
    """One registered descriptor: what it asked for, what is pending, what it last was."""

    fd: int
    identity: tuple[int, int]
    is_dir: bool
    flags: int
    fflags: int
    udata: int
    wd: int
    parent_wd: int | None
    nlink: int
    size: int
    mtime: int = 0
    ctime: int = 0
    path: str = ""
    pending: int = 0
    pending_flags: int = 0
    data: int = 0
    dead: bool = False


def _stamp(knote: _Knote, st: os.stat_result) -> None:
    """What the emulation last saw of ``knote``'s inode, for an overflow to compare."""
    knote.size, knote.mtime, knote.ctime = st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _where(fd: int) -> str:
    """The path the kernel has for what ``fd`` is open on ("" if unknown)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


class EmulatedQueue:
    """One emulated kqueue: knotes by descriptor, fed by one inotify instance.

    ``fileno()`` is an epoll descriptor, readable when inotify has records or
    when notes are pending that were not read yet.
    """

    def __init__(self, system: KqueueEmulation) -> None:
        self.abi = system.abi
        self._system = system
        self._inotify = Inotify()
        self._knotes: dict[int, _Knote] = {}
        self._order: dict[int, None] = {}  # fds with pending notes, oldest first
        self._uses: dict[int, int] = {}  # wd -> knotes using it (own or parent)
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._inotify.fileno(), select.EPOLLIN)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self.closed = False

    def fileno(self) -> int:
        return self._epoll.fileno()

    # ------------------------------------------------------------ kevent(2)

    def control(
        self, changes: Sequence[Any] | None, max_events: int, timeout: float | None = None
    ) -> list[_abi.KEvent]:
        if self.closed:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        with self._lock:
            out: list[_abi.KEvent] = []
            for change in changes or ():
                self._change(_abi.KEvent.of(change), out, max_events)
            if out:  # receipts or errors: no events this time, as kevent(2) does
                return out
            self._take_records()
            if not self._order and (timeout is None or timeout > 0):
                self._lock.release()
                try:
                    self._inotify.wait(timeout)
                finally:
                    self._lock.acquire()
                self._take_records()
            events = self._collect(max_events)
            self._rewake()
            return events

    def post(self, fd: int, fflags: int = 0, flags: int = 0, data: int = 0) -> None:
        """Make the knote of ``fd`` pending with these notes and flags (injected)."""
        with self._lock:
            knote = self._knotes.get(fd)
            if knote is None:
                raise OSError(errno.ENOENT, "no knote for that descriptor")
            knote.pending_flags |= flags
            knote.data = data
            self._note(knote, fflags, force=True)
            self._rewake()

    def _change(self, change: _abi.KEvent, out: list[_abi.KEvent], room: int) -> None:
        abi = self.abi
        err = 0
        if change.filter != abi.evfilt_vnode:
            err = errno.EINVAL
        elif change.flags & abi.ev_delete:
            err = self._delete(change.ident)
        elif change.flags & abi.ev_add:
            err = self._add(change)
        if err or change.flags & abi.ev_receipt:
            if len(out) >= room:
                raise OSError(err, os.strerror(err))
            out.append(change._replace(flags=change.flags | abi.ev_error, data=err))

    def _add(self, change: _abi.KEvent) -> int:
        fd = change.ident
        known = self._knotes.get(fd)
        if known is not None:  # EV_ADD again: the knote is modified
            known.flags, known.fflags, known.udata = change.flags, change.fflags, change.udata
            return 0
        injected = self._system._injected("add")
        if injected:
            return injected
        try:
            st = os.fstat(fd)
        except OSError as exc:
            return exc.errno or errno.EBADF
        is_dir = stat.S_ISDIR(st.st_mode)
        try:
            wd = self._inotify.add_fd(fd, _MASK)
        except OSError as exc:
            return errno.ENOMEM if exc.errno == errno.ENOSPC else (exc.errno or errno.EINVAL)
        self._uses[wd] = self._uses.get(wd, 0) + 1
        knote = _Knote(fd, (st.st_dev, st.st_ino), is_dir, change.flags, change.fflags,
                       change.udata, wd, None, st.st_nlink, st.st_size)
        knote.path = _where(fd)
        _stamp(knote, st)
        self._knotes[fd] = knote
        if is_dir:
            self._watch_parent(knote)
        return 0

    def _watch_parent(self, knote: _Knote) -> None:
        """Watch the directory holding ``knote``'s, where its removal is reported."""
        try:
            wd = self._inotify.add(f"/proc/self/fd/{knote.fd}/..", _MASK)
        except OSError:
            knote.parent_wd = None
            return
        self._uses[wd] = self._uses.get(wd, 0) + 1
        knote.parent_wd = wd

    def _unuse(self, wd: int | None) -> None:
        if wd is None:
            return
        left = self._uses.get(wd, 0) - 1
        if left > 0:
            self._uses[wd] = left
            return
        self._uses.pop(wd, None)
        self._inotify.remove(wd)

    def _delete(self, fd: int) -> int:
        knote = self._knotes.pop(fd, None)
        if knote is None:
            return errno.ENOENT
        self._order.pop(fd, None)
        self._unuse(knote.wd)
        self._unuse(knote.parent_wd)
        return 0

    def forget(self, fd: int) -> None:
        """The descriptor is being closed: its knote goes, pending notes included."""
        with self._lock:
            if fd in self._knotes:
                self._delete(fd)

    # ------------------------------------------------------------ inotify -> notes

    def _take_records(self) -> None:
        records = self._inotify.read()
        if not records:
            return
        abi = self.abi
        by_wd: dict[int, list[_Knote]] = {}
        parents: dict[int, list[_Knote]] = {}
        for knote in self._knotes.values():
            by_wd.setdefault(knote.wd, []).append(knote)
            if knote.parent_wd is not None:
                parents.setdefault(knote.parent_wd, []).append(knote)
        # A rename within one directory adds and removes no subdirectory there.
        pairs: dict[int, int] = {}
        for r in records:
            if r.mask & ino.IN_MOVED_FROM:
                pairs[r.cookie] = r.wd
        inside = {r.cookie for r in records
                  if r.mask & ino.IN_MOVED_TO and pairs.get(r.cookie) == r.wd}
        looked: set[int] = set()
        for r in records:
            if r.mask & ino.IN_Q_OVERFLOW:
                self._overflowed()
                continue
            if r.name and r.mask & _PARENT:
                for child in parents.get(r.wd, ()):
                    self._look(child, looked)
            for knote in by_wd.get(r.wd, ()):
                if r.name:
                    if knote.is_dir and r.mask & _ENTRIES:
                        notes = abi.note_write
                        if r.mask & ino.IN_ISDIR and r.cookie not in inside:
                            notes |= abi.note_link
                        self._note(knote, notes)
                    continue
                self._self_record(knote, r.mask, looked)

    def _self_record(self, knote: _Knote, mask: int, looked: set[int]) -> None:
        abi = self.abi
        if mask & ino.IN_MODIFY and not knote.is_dir:
            notes = abi.note_write
            st = self._stat(knote)
            if st is not None:
                if st.st_size > knote.size:
                    notes |= abi.note_extend
                _stamp(knote, st)
            self._note(knote, notes)
        if mask & ino.IN_ATTRIB:
            self._look(knote, looked, attrib=True)
        if mask & ino.IN_MOVE_SELF:
            knote.path = _where(knote.fd)
            self._note(knote, abi.note_rename)
            if knote.is_dir:  # it may be in another directory now
                self._unuse(knote.parent_wd)
                self._watch_parent(knote)
        if mask & ino.IN_DELETE_SELF:
            self._note(knote, abi.note_delete)
        if mask & ino.IN_UNMOUNT:
            self._note(knote, abi.note_revoke)
        if mask & ino.IN_IGNORED and not knote.dead:
            knote.dead = True  # the inode went without our descriptor closing
            knote.pending_flags |= abi.ev_eof
            self._note(knote, 0, force=True)

    def _look(self, knote: _Knote, looked: set[int], *, attrib: bool = False) -> None:
        """Its link count, once per read of records: fewer is an unlink (NOTE_DELETE)."""
        abi = self.abi
        if knote.fd in looked:
            if attrib:
                self._note(knote, abi.note_attrib)
            return
        looked.add(knote.fd)
        st = self._stat(knote)
        if st is None:
            return
        # A directory's count falls as its subdirectories go: only 0 is its removal.
        if st.st_nlink == 0 or (st.st_nlink < knote.nlink and not knote.is_dir):
            notes = abi.note_delete
        elif st.st_nlink > knote.nlink and not knote.is_dir:
            notes = abi.note_link
        else:
            notes = abi.note_attrib if attrib else 0
        knote.nlink = st.st_nlink
        if not knote.is_dir:  # a directory's changes are not read again here
            _stamp(knote, st)
        if notes:
            self._note(knote, notes)

    def overflow(self) -> None:
        """Drop what inotify holds now, as when its queue overflows (injected)."""
        with self._lock:
            self._inotify.read()
            self._overflowed()
            self._rewake()

    def _overflowed(self) -> None:
        """inotify lost records, and kqueue never loses notes: each descriptor is
        told what its inode's state says happened since it was last looked at (a
        directory's entries changed: its mtime; a file written: its size and mtime;
        metadata: its ctime; renamed: the kernel's path for it; unlinked: its link
        count)."""
        abi = self.abi
        looked: set[int] = set()
        for knote in list(self._knotes.values()):
            st = self._stat(knote)
            if st is None:
                continue
            notes = 0
            if (st.st_size, st.st_mtime_ns) != (knote.size, knote.mtime):
                notes = abi.note_write
                if knote.is_dir:
                    notes |= abi.note_link  # a subdirectory may have come or gone
                elif st.st_size > knote.size:
                    notes |= abi.note_extend
            elif st.st_ctime_ns != knote.ctime:
                notes = abi.note_attrib
            where = _where(knote.fd)
            if where != knote.path:
                notes |= abi.note_rename
            knote.path = where
            self._look(knote, looked)
            _stamp(knote, st)
            self._note(knote, notes)

    def _stat(self, knote: _Knote) -> os.stat_result | None:
        try:
            return os.fstat(knote.fd)
        except OSError:
            return None

    def _note(self, knote: _Knote, notes: int, *, force: bool = False) -> None:
        notes &= knote.fflags
        if not notes and not force:
            return
        knote.pending |= notes
        self._order[knote.fd] = None

    def _collect(self, max_events: int) -> list[_abi.KEvent]:
        abi = self.abi
        out: list[_abi.KEvent] = []
        for fd in list(self._order):
            if len(out) >= max_events:
                break
            knote = self._knotes[fd]
            out.append(_abi.KEvent(fd, abi.evfilt_vnode, knote.flags | knote.pending_flags,
                                   knote.pending, knote.data, knote.udata))
            if knote.flags & abi.ev_oneshot:
                self._delete(fd)
            elif knote.flags & abi.ev_clear or knote.dead:
                knote.pending = knote.pending_flags = knote.data = 0
                del self._order[fd]
        return out

    def _rewake(self) -> None:
        """Keep the wake pipe readable exactly while notes are pending."""
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        if self._order:
            os.write(self._wake_w, b"!")

    def close(self) -> None:
        """Release the inotify instance and the knotes (not the descriptors)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._knotes.clear()
            self._order.clear()
            self._epoll.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._inotify.close()
        self._system._closed(self)


class KqueueEmulation(_kq.System):
    """The kqueue backend's door, emulated on Linux (see the module docstring)."""

    def __init__(self, platform: str = sys.platform) -> None:
        self.platform = platform
        self.abi = _abi.current(platform=platform)
        self._queues: weakref.WeakSet[EmulatedQueue] = weakref.WeakSet()
        self._faults: dict[str, list[tuple[int, int]]] = {"open": [], "add": []}
        self._lock = threading.Lock()
        self.opened = 0
        """Descriptors opened through :meth:`open` and not closed yet."""

    def available(self) -> bool:
        return sys.platform.startswith("linux")

    @property
    def queues(self) -> list[EmulatedQueue]:
        """The queues open now (to inject into: :meth:`EmulatedQueue.post`, ``overflow``)."""
        return list(self._queues)

    def kqueue(self) -> EmulatedQueue:
        queue = EmulatedQueue(self)
        self._queues.add(queue)
        return queue

    def kevent(self, ident: int, filter: int, flags: int, fflags: int, udata: int = 0) -> Any:
        return _abi.KEvent(ident, filter, flags, fflags, 0, udata)

    def control(
        self, kq: Any, changes: Sequence[Any] | None, max_events: int, timeout: float | None
    ) -> list[Any]:
        return list(kq.control(changes, max_events, timeout))

    def open(self, path: str, dir_fd: int | None = None, *, link: bool = False) -> int:
        err = self._injected("open")
        if err:
            raise OSError(err, os.strerror(err), path)
        fd = super().open(path, dir_fd, link=link)
        self.opened += 1
        return fd

    def close(self, fd: int) -> None:
        for queue in list(self._queues):
            queue.forget(fd)
        os.close(fd)
        self.opened -= 1

    # ------------------------------------------------------------ injected failures

    def fail_open(self, err: int = errno.EMFILE, at: int = 1) -> None:
        """The ``at``-th :meth:`open` from now fails with ``err``."""
        with self._lock:
            self._faults["open"].append((at, err))

    def fail_add(self, err: int = errno.ENOMEM, at: int = 1) -> None:
        """The ``at``-th ``EV_ADD`` from now is refused with ``err`` (an ``EV_ERROR``)."""
        with self._lock:
            self._faults["add"].append((at, err))

    def _injected(self, what: str) -> int:
        with self._lock:
            faults = self._faults[what]
            left = [(at - 1, err) for at, err in faults]
            self._faults[what] = [(at, err) for at, err in left if at > 0]
            return next((err for at, err in left if at == 0), 0)

    def _closed(self, queue: EmulatedQueue) -> None:
        self._queues.discard(queue)


class EmulatedKqueue(KqueueBackend):
    """The kqueue backend driving the emulation; selected by class, same name."""

    system = KqueueEmulation()

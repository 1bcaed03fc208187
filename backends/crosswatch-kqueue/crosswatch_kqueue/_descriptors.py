"""The descriptors the kqueue backend holds: opened within a budget, registered, closed.

Every descriptor is opened and closed here, so that the count held never passes
:attr:`Descriptors.budget`: past it, opening fails with ``EMFILE`` as the OS would
at its limit, and the rest of the program (the engine's own listings among it)
keeps the descriptors it needs.
"""

from __future__ import annotations

import errno
import itertools
import os
from typing import Any

from crosswatch.backend import open_dir

from . import _abi, _kq, _limits
from ._dirs import (
    GONE_ERRNOS,
    LIMIT_ERRNOS,
    LIST_FLAGS,
    Dir,
    Knote,
    Refused,
    is_regular,
    regular_files,
)

#: Descriptors assumed open when the process's own cannot be listed.
ASSUMED_IN_USE = 16
#: Registrations handed to the kernel per ``kevent`` call.
BATCH = 256


class Descriptors:
    """The queue's registered descriptors (by ``udata``) and the count held."""

    def __init__(self, system: _kq.KqueueSystem, abi: _abi.Abi, kq: Any) -> None:
        self.system = system
        self.abi = abi
        self.kq = kq
        self.knotes: dict[int, Knote] = {}
        self.held = 0
        self._udatas = itertools.count(1)
        self.budget = self._budget()
        """Descriptors that may be held for entries: the soft open-file limit, less
        those open when the backend opened (the queue's among them) and
        ``_limits.RESERVE`` kept for the rest of the program. ``None``: unlimited."""

    def udata(self) -> int:
        """A new ``udata``: a counter, never a descriptor's number (those are reused)."""
        return next(self._udatas)

    def _budget(self) -> int | None:
        try:
            soft = _limits.finite(self.system.getrlimit()[0])
        except OSError:
            return None
        if soft is None:
            return None
        in_use = _limits.descriptors_in_use()
        in_use = ASSUMED_IN_USE if in_use is None else in_use
        return max(0, soft - in_use - _limits.RESERVE)

    def open(self, path: str, *, link: bool = False) -> int:
        """``system.open`` at any depth: past ``PATH_MAX``, relative to its directory."""
        try:
            return self.take(path, None, link=link)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
        parent = open_dir(os.path.dirname(path), LIST_FLAGS)
        try:
            return self.take(os.path.basename(path), parent, link=link)
        finally:
            os.close(parent)

    def take(self, path: str, dir_fd: int | None, *, link: bool = False) -> int:
        """One more descriptor, within :attr:`budget`; past it, ``EMFILE`` as the OS says."""
        if self.budget is not None and self.held >= self.budget:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), path)
        fd = self.system.open(path, dir_fd, link=link)
        self.held += 1
        return fd

    def release(self, fd: int) -> None:
        self.held -= 1
        self.system.close(fd)

    def open_files(
        self, d: Dir, dir_fd: int, known: dict[str, Knote] | None, opened: list[int]
    ) -> list[Knote]:
        """Descriptors for the regular files in ``d`` not in ``known`` (whose files
        that went, or whose name leads to another file now, are closed first)."""
        try:
            listing = os.open(".", LIST_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in LIMIT_ERRNOS:
                raise Refused(exc, d.path) from None
            raise
        out: list[Knote] = []
        try:
            listed = dict(regular_files(listing))
            for name, knote in list((known or {}).items()):
                if listed.get(name) != knote.ino:
                    self.close_file(d, knote)
            for name, ino in listed.items():
                if known is not None and name in known:
                    continue
                path = d.file_path(name)
                try:
                    fd = self.take(name, listing)
                except OSError as exc:
                    if exc.errno in GONE_ERRNOS:
                        continue  # went, or is a link now: the directory says so
                    raise Refused(exc, path) from None
                opened.append(fd)
                if not is_regular(fd):  # a directory or a FIFO by now
                    opened.remove(fd)
                    self.release(fd)
                    continue
                vnode = _abi.Vnode(path, False, d.handle, name)
                out.append(Knote(fd, self.udata(), vnode, home=d, ino=ino))
        finally:
            os.close(listing)
        return out

    def register(
        self, knotes: list[Knote], d: Dir | None, opened: list[int], notes: int | None = None
    ) -> list[Knote]:
        """``EV_ADD`` each, with a receipt; the knotes registered.

        A file that went before it was registered is closed and left out; any other
        refusal raises :class:`Refused` for the entry refused.
        """
        abi, system = self.abi, self.system
        notes = abi.watch_notes if notes is None else notes
        flags = abi.watch_flags | abi.ev_receipt
        by_udata = {k.udata: k for k in knotes}
        kept = list(knotes)
        for at in range(0, len(knotes), BATCH):
            batch = knotes[at : at + BATCH]
            changes = [system.kevent(k.fd, abi.evfilt_vnode, flags, notes, k.udata) for k in batch]
            try:
                receipts = system.control(self.kq, changes, len(changes), 0)
            except OSError as exc:
                raise Refused(exc, d.path if d is not None else "") from None
            for raw in receipts:
                receipt = _abi.KEvent.of(raw)
                knote = by_udata.get(receipt.udata)
                if not receipt.flags & abi.ev_error or receipt.data == 0 or knote is None:
                    continue
                error = OSError(receipt.data, os.strerror(receipt.data))
                vnode = knote.vnode
                if vnode is None or vnode.is_dir or receipt.data not in GONE_ERRNOS:
                    raise Refused(error, vnode.path if vnode is not None else "")
                kept.remove(knote)
                opened.remove(knote.fd)
                self.release(knote.fd)
        return kept

    def close_file(self, d: Dir, knote: Knote) -> None:
        if knote.vnode is not None and d.files.get(knote.vnode.name) is knote:
            del d.files[knote.vnode.name]
        self.close_knote(knote)

    def close_knote(self, knote: Knote) -> None:
        if self.knotes.pop(knote.udata, None) is not None:
            self.release(knote.fd)

    def close_all(self, fds: list[int]) -> None:
        for fd in fds:
            self.release(fd)
        fds.clear()

    def limits(self) -> tuple[int, int] | None:
        try:
            return self.system.getrlimit()
        except OSError:
            return None


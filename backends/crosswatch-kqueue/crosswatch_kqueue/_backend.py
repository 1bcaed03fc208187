"""The kqueue backend: its probe, the open-file limit, and the driving of the queue.

Every kernel call goes through :attr:`KqueueBackend.system` (see ``_kq``), so
that another implementation of kqueue can stand in for the real one (the Linux
emulation in ``crosswatch_kqueue.testing``).

kqueue watches descriptors, not paths, and has no recursion and no names. Each
watched directory holds its own descriptor and one per regular file in it
(``_dirs``). A directory's ``NOTE_WRITE`` (its entries changed) is reported as
``DirDirty``, which the engine's rescan of that one directory turns into events,
pairing renames by identity; the backend lists the directory again to open the
files that came and close those that went. What each note means is ``_abi``'s.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

from crosswatch.backend import (
    Backend,
    Capabilities,
    Gone,
    Observation,
    Options,
    Probe,
    WatchError,
    WatchGoneError,
)

from . import _abi, _kq, _limits
from ._descriptors import ASSUMED_IN_USE, Descriptors
from ._dirs import (
    LIST_FLAGS,
    Dir,
    Knote,
    Refused,
    file_refusal,
    refusal,
)

#: Kevents read per call; the rest wait for the next ``read()``.
MAX_EVENTS = 1024


class KqueueBackend(Backend):
    """kqueue ``EVFILT_VNODE``: one descriptor per directory and file, no recursion."""

    name = "kqueue"
    description = "kqueue(2) EVFILT_VNODE (macOS, BSD): one descriptor per entry"
    capabilities = Capabilities(recursive=False, polls=True)
    system: ClassVar[_kq.KqueueSystem] = _kq.SYSTEM
    """The kernel's calls; a stand-in with the same methods can take its place."""

    @classmethod
    def probe(cls, path: str) -> Probe:
        system = cls.system
        if not system.available():
            return Probe.unavailable(cls.name, "needs macOS or BSD (kqueue)")
        try:
            plan = cls.plan(path)
        except OSError as exc:
            return Probe.unavailable(cls.name, f"the open-file limit cannot be read: {exc}")
        score = 90 if plan.fits else 50
        return Probe(cls.name, True, plan.message, score, plan.allowed, plan.entries)

    @classmethod
    def plan(cls, path: str) -> _limits.Plan:
        """What watching ``path`` takes and what the open-file limit allows; reads only."""
        system = cls.system
        soft, hard = system.getrlimit()
        maxfiles = system.maxfilesperproc()
        darwin = system.platform == "darwin"
        in_use = _limits.descriptors_in_use()
        in_use = ASSUMED_IN_USE if in_use is None else in_use
        top = _limits.ceiling(soft, hard, darwin=darwin, maxfilesperproc=maxfiles)
        budget = max(0, top - in_use - _limits.RESERVE - 1)
        dirs, files, complete = _limits.count_entries(path, budget)
        return _limits.plan(
            soft, hard, in_use, dirs, files,
            complete=complete, darwin=darwin, maxfilesperproc=maxfiles,
        )

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        system = self.system
        if not system.available():
            raise WatchError(0, "kqueue needs macOS or BSD; use backend='polling'")
        self.abi = _abi.current(platform=system.platform)
        self.raised_to = self._raise_limit()
        self._kq: Any = system.kqueue()
        self._handles = itertools.count(1)
        self._dirs: dict[int, Dir] = {}
        self._by_identity: dict[tuple[int, int], Dir] = {}
        self._fates: dict[int, Knote] = {}  # watch_self handle -> its descriptor
        self._fds = Descriptors(system, self.abi, self._kq)

    def _raise_limit(self) -> int | None:
        """Raise the soft open-file limit to the ceiling; the new limit, or None.

        Done when the backend opens, never in the probe: one descriptor per entry
        is what kqueue costs, and macOS starts processes at 256.
        """
        system = self.system
        soft, hard = system.getrlimit()
        top = _limits.ceiling(
            soft, hard, darwin=system.platform == "darwin",
            maxfilesperproc=system.maxfilesperproc(),
        )
        current = _limits.finite(soft)
        if current is None or top <= current:
            return None
        try:
            system.setrlimit(top, hard)
        except (OSError, ValueError):
            return None  # refused: the limit in force stays, and the probe said so
        return top

    def fileno(self) -> int | None:
        return int(self._kq.fileno()) if self._kq is not None else None

    # ------------------------------------------------------------ watching

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        """Open the directory and each regular file in it, and register them all.

        All or nothing: if any of them cannot be opened for a lack of descriptors
        (or any other reason than having vanished), everything opened for it is
        closed again and the directory is refused, ``WatchLimitError`` naming the
        limit; the engine polls it instead and says so once.
        """
        self._check_open(path)
        try:
            fd = self._fds.open(path)
        except OSError as exc:
            raise refusal(exc, path, self._fds.limits()) from None
        opened = [fd]
        try:
            st = os.fstat(fd)
            if not stat.S_ISDIR(st.st_mode):  # replaced since it was listed
                raise WatchGoneError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            known = self._by_identity.get((st.st_dev, st.st_ino))
            if known is not None:
                self._fds.release(fd)
                opened.clear()
                return known.handle
            d = Dir(next(self._handles), path, (st.st_dev, st.st_ino))
            parent, name = self._placement(fd, path, st.st_ino)
            d.knote = Knote(fd, self._fds.udata(), _abi.Vnode(path, True, parent, name, d.handle),
                            home=d)
            files = self._fds.open_files(d, fd, None, opened)
            files = self._fds.register([d.knote, *files], d, opened)[1:]
        except Refused as refused:
            self._fds.close_all(opened)
            if refused.path == path:
                raise refusal(refused.error, path, self._fds.limits()) from None
            raise file_refusal(refused.error, refused.path, self._fds.limits()) from None
        except BaseException:
            self._fds.close_all(opened)
            raise
        self._dirs[d.handle] = d
        self._by_identity[d.identity] = d
        for knote in (d.knote, *files):
            self._fds.knotes[knote.udata] = knote
        d.files = {k.vnode.name: k for k in files if k.vnode is not None}
        return d.handle

    def watch_self(self, path: str) -> Hashable | None:
        """A descriptor of ``path`` itself (a link not followed), for its fate only.

        Where the OS cannot open a symbolic link itself (neither ``O_SYMLINK`` nor
        ``O_PATH``), a link is not watched: None.
        """
        self._check_open(path)
        try:
            fd = self._fds.open(path, link=True)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
                return None
            raise refusal(exc, path, self._fds.limits()) from None
        handle = next(self._handles)
        knote = Knote(fd, self._fds.udata(), None, fate=handle)
        try:
            self._fds.register([knote], None, [fd], notes=_abi.fate_notes(self.abi))
        except Refused as refused:
            self._fds.release(fd)
            raise refusal(refused.error, path, self._fds.limits()) from None
        except BaseException:
            self._fds.release(fd)
            raise
        self._fds.knotes[knote.udata] = knote
        self._fates[handle] = knote
        return handle

    def unwatch(self, handle: Hashable) -> None:
        if not isinstance(handle, int) or self._kq is None:
            return
        fate = self._fates.pop(handle, None)
        if fate is not None:
            self._fds.close_knote(fate)
            return
        d = self._dirs.get(handle)
        if d is not None:
            self._drop(d)

    # ------------------------------------------------------------ reading

    def read(self) -> Sequence[Observation]:
        if self._kq is None:
            return []
        abi = self.abi
        out: list[Observation] = []
        relist: dict[int, Dir] = {}
        entries = abi.note_write | abi.note_extend | abi.note_link
        for raw in self.system.control(self._kq, None, MAX_EVENTS, 0):
            event = _abi.KEvent.of(raw)
            knote = self._fds.knotes.get(event.udata)
            if knote is None or knote.fd != event.ident:
                continue  # closed since: its events went with it
            if knote.fate is not None:
                decoded = _abi.decode_fate(event, knote.fate, abi)
                out.extend(decoded.observations)
                if decoded.close:
                    self._fates.pop(knote.fate, None)
                    self._fds.close_knote(knote)
                continue
            decoded = _abi.decode(event, knote.vnode, abi)
            out.extend(decoded.observations)
            home = knote.home
            assert home is not None
            assert knote.vnode is not None
            if knote.vnode.is_dir:
                if decoded.close:
                    self._drop(home)
                    relist.pop(home.handle, None)
                    continue
                if event.fflags & abi.note_rename and not event.flags & abi.ev_error:
                    self._replace(home)
                if event.fflags & entries and not event.flags & abi.ev_error:
                    relist[home.handle] = home
            elif decoded.close:
                # Removed, renamed or refused: what has its name now is opened anew.
                self._fds.close_file(home, knote)
                if home.handle in self._dirs:
                    relist[home.handle] = home
        for d in relist.values():
            out.extend(self._relist(d))
        return out

    def _relist(self, d: Dir) -> list[Observation]:
        """List ``d`` again: close the files that went, open those that came.

        A file that cannot be opened or registered ends the directory's watch
        (``Gone``): its writes would go unseen. The engine, finding the directory
        still there, rescans it and watches it again, which refuses it as a whole
        with ``WatchLimitError``: it is polled from then on, and the user told.
        """
        assert d.knote is not None
        opened: list[int] = []
        try:
            files = self._fds.open_files(d, d.knote.fd, d.files, opened)
            files = self._fds.register(files, d, opened)
        except Refused:
            self._fds.close_all(opened)
            self._drop(d)
            return [Gone(d.handle)]
        except OSError:
            self._fds.close_all(opened)
            return []  # the directory is gone: its own notes say so
        for knote in files:
            assert knote.vnode is not None
            self._fds.knotes[knote.udata] = knote
            d.files[knote.vnode.name] = knote
        return []

    # ------------------------------------------------------------ descriptors

    def _placement(self, fd: int, path: str, ino: int) -> tuple[int | None, str]:
        """The watch of the directory holding the one open as ``fd``, and its name there.

        None when that directory is not watched here: then this one is a root.
        """
        try:
            up = os.stat("..", dir_fd=fd)
        except OSError:
            return None, ""
        parent = self._by_identity.get((up.st_dev, up.st_ino))
        if parent is None or parent.identity == (up.st_dev, ino):
            return None, ""
        name = os.path.basename(path.rstrip(os.sep))
        return parent.handle, name

    def _replace(self, d: Dir) -> None:
        """After ``d`` was renamed: the watch of the directory it is in now, and its name."""
        assert d.knote is not None
        assert d.knote.vnode is not None
        vnode = d.knote.vnode
        try:
            up = os.stat("..", dir_fd=d.knote.fd)
        except OSError:
            return
        parent = self._by_identity.get((up.st_dev, up.st_ino))
        name = ""
        if parent is not None and parent.knote is not None:
            try:
                listing = os.open(".", LIST_FLAGS, dir_fd=parent.knote.fd)
            except OSError:
                listing = -1
            if listing >= 0:
                try:
                    with os.scandir(listing) as it:
                        name = next((e.name for e in it if e.inode() == d.identity[1]), "")
                except OSError:
                    name = ""
                finally:
                    os.close(listing)
        if not name:
            parent = None  # out of the tree, or not found: told of its own fate only
        d.knote.vnode = _abi.Vnode(vnode.path, True, parent.handle if parent else None, name,
                                   d.handle)

    def _drop(self, d: Dir) -> None:
        """Close every descriptor ``d`` holds and forget it."""
        for knote in list(d.files.values()):
            self._fds.close_knote(knote)
        d.files.clear()
        if d.knote is not None:
            self._fds.close_knote(d.knote)
        self._dirs.pop(d.handle, None)
        if self._by_identity.get(d.identity) is d:
            del self._by_identity[d.identity]

    def _check_open(self, path: str) -> None:
        if self._kq is None:
            raise WatchError(errno.EBADF, "the kqueue backend is closed", path)

    def close(self) -> None:
        if self._kq is None:
            return
        for knote in list(self._fds.knotes.values()):
            self._fds.close_knote(knote)
        self._dirs.clear()
        self._by_identity.clear()
        self._fates.clear()
        self._kq.close()
        self._kq = None

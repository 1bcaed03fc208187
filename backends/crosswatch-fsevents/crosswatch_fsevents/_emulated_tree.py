"""The FSEvents emulation's view of the disk: raw inotify records over a stream's
paths turned into FSEvents' per-path changes (Linux only; see ``testing``).

FSEvents watches paths, recursively; inotify watches directories, one by one. So
this adds a watch to every directory under each path, and to each new one itself,
listing a directory created since (what was made in it before its watch is
reported as created, as FSEvents reports it; a directory moved in is listed so
too, to cover the time before its watch). A directory renamed inside the tree
keeps its watches under its new path; one moved out loses them (FSEvents reports
by path). Records are read after the fact, so a path may hold another directory
by then (``mkdir a; mv a t/a; mkdir a``): each watch keeps the identity of its
directory, and only a watch whose directory is no longer at its path is dropped,
or taken for the one at a rename's destination. For ``WatchRoot``, the directories
on the way to each path are watched too (another instance), and a change of an
entry on the way is ``RootChanged``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from crosswatch.backend import open_dir
from crosswatch.testing import Inotify
from crosswatch.testing._inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Record,
)

from . import _flags as F

TREE_MASK = (
    IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
    | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # added through /proc/self/fd/N: a link to follow
WAY_MASK = IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

#: (path, flags, file id or None): one change, as FSEvents would record it.
Change = tuple[str, int, int | None]


def lstat(path: str) -> os.stat_result | None:
    """``os.lstat`` at any depth; None if the entry is gone."""
    try:
        return os.lstat(path)
    except OSError:
        pass
    parent, name = os.path.split(path)
    try:
        fd = open_dir(parent, _DIR_FLAGS)
    except OSError:
        return None
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(fd)


def kind(st: os.stat_result | None, is_dir: bool) -> int:
    if is_dir or (st is not None and stat.S_ISDIR(st.st_mode)):
        return F.kFSEventStreamEventFlagItemIsDir
    if st is not None and stat.S_ISLNK(st.st_mode):
        return F.kFSEventStreamEventFlagItemIsSymlink
    return F.kFSEventStreamEventFlagItemIsFile


@dataclass(slots=True)
class _Root:
    given: str  # as handed to FSEventStreamCreate (the path of RootChanged)
    real: str  # where it leads now: the path events are reported under


class Tree:
    """The watches of one emulated stream; :meth:`read` turns records into changes."""

    def __init__(self, paths: list[str], *, watch_root: bool, record: Callable[[Change], None]):
        self.record = record
        self.roots = [_Root(p, os.path.realpath(p)) for p in paths]
        self.tree = Inotify()
        self.way: Inotify | None = None
        try:
            self.way = Inotify() if watch_root else None
        except OSError:
            self.tree.close()
            raise
        self._path: dict[int, str] = {}  # tree wd -> the directory's path
        self._ids: dict[int, tuple[int, int]] = {}  # tree wd -> its (st_dev, st_ino)
        self._way: dict[int, list[tuple[str, int]]] = {}  # way wd -> (entry name, root)
        self.overflowed = False
        for i in range(len(self.roots)):
            self._watch_root(i)

    def fds(self) -> list[int]:
        return [self.tree.fileno()] + ([self.way.fileno()] if self.way else [])

    def close(self) -> None:
        self.tree.close()
        if self.way is not None:
            self.way.close()

    # ------------------------------------------------------------ placing watches

    def _watch_root(self, i: int) -> None:
        root = self.roots[i]
        root.real = os.path.realpath(root.given)
        if self.way is not None:
            for start in dict.fromkeys((root.given, root.real)):
                up, name = os.path.split(start)
                while name:
                    try:
                        wd = self.way.add(up, WAY_MASK | IN_ONLYDIR)
                    except OSError:
                        pass
                    else:
                        entries = self._way.setdefault(wd, [])
                        if (name, i) not in entries:
                            entries.append((name, i))
                    up, name = os.path.split(up)
        self.add_tree(root.real, report=False)

    def add_tree(self, path: str, *, report: bool, new_only: bool = False) -> None:
        """Watch ``path`` and every directory below; with ``report``, each entry found
        is a change ``ItemCreated`` (they were made before the watch), with
        ``new_only`` only in the directories that had no watch yet.

        What went from such a directory before its watch has no record, and a reader
        may have listed it meanwhile: the directory itself is also named at directory
        level (its path with a slash, no item flag), which says to list it."""
        stack = [path]
        while stack:
            where = stack.pop()
            try:
                fd = open_dir(where, _DIR_FLAGS)
            except OSError:
                continue
            try:
                wd = self.tree.add_fd(fd, TREE_MASK)
                new = wd not in self._path
                me = os.fstat(fd)
                self._path[wd] = where
                self._ids[wd] = (me.st_dev, me.st_ino)
                with os.scandir(fd) as it:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError:
                continue
            finally:
                os.close(fd)
            listed = report and (new or not new_only)
            if listed:
                self.record((where.rstrip("/") + "/", F.kFSEventStreamEventFlagNone, None))
            for name, is_dir in entries:
                child = os.path.join(where, name)
                if listed:
                    st = lstat(child)
                    self.record((child, F.kFSEventStreamEventFlagItemCreated | kind(st, is_dir),
                                 None if st is None else st.st_ino))
                if is_dir:
                    stack.append(child)

    def _drop_tree(self, path: str, *, gone: bool = False) -> None:
        """Forget the watches of ``path`` and below (moved out of the paths watched);
        with ``gone``, only those whose directory is no longer at its path (another
        may have taken it since the record was made, and is watched there)."""
        prefix = path + "/"
        for wd, p in list(self._path.items()):
            if (p == path or p.startswith(prefix)) and not (gone and self._holds(wd, p)):
                del self._path[wd]
                self._ids.pop(wd, None)
                self.tree.remove(wd)

    def _holds(self, wd: int, path: str) -> bool:
        """Is the directory of watch ``wd`` at ``path`` now?"""
        st = lstat(path)
        return st is not None and (st.st_dev, st.st_ino) == self._ids.get(wd)

    def _move_tree(self, old: str, new: str) -> None:
        prefix = old + "/"
        for wd, p in list(self._path.items()):
            if p == old:
                self._path[wd] = new
            elif p.startswith(prefix):
                self._path[wd] = new + p[len(old) :]

    # ------------------------------------------------------------ reading records

    def read(self) -> None:
        """Every record waiting, turned into changes (a rename's halves paired by
        cookie to give both the file id, waiting a little for a second half)."""
        records = self.tree.read()
        if records and records[-1].mask & IN_MOVED_FROM:
            self.tree.wait(0.005)
            records += self.tree.read()
        moved: dict[int, tuple[str, bool]] = {}
        for rec in records:
            self._on_tree(rec, moved)
        for old, is_dir in moved.values():  # moved out of the tree
            self.record((old, F.kFSEventStreamEventFlagItemRenamed | kind(None, is_dir), None))
            if is_dir:
                self._drop_tree(old, gone=True)
        if self.way is not None:  # after the tree's: what happened in it came first
            for rec in self.way.read():
                self._on_way(rec)

    def _on_way(self, rec: Record) -> None:
        if rec.mask & IN_Q_OVERFLOW:
            changed = set(range(len(self.roots)))
        else:
            entries = self._way.get(rec.wd, [])
            name = os.fsdecode(rec.name)
            self_change = rec.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)
            changed = {i for n, i in entries if self_change or n == name}
        for i in sorted(changed):
            self.record((self.roots[i].given, F.kFSEventStreamEventFlagRootChanged, None))
            self._drop_tree(self.roots[i].real)
            self._watch_root(i)  # FSEvents watches the path: whatever it leads to now

    def _on_tree(self, rec: Record, moved: dict[int, tuple[str, bool]]) -> None:
        mask = rec.mask
        if mask & IN_Q_OVERFLOW:
            self.overflowed = True
            return
        where = self._path.get(rec.wd)
        if where is None:
            return
        if mask & IN_IGNORED:
            self._path.pop(rec.wd, None)
            self._ids.pop(rec.wd, None)
            return
        is_dir = bool(mask & IN_ISDIR)
        if not rec.name:  # the directory itself: its parent's watch reports it, but a root's
            if not any(r.real == where for r in self.roots):
                return
            if mask & IN_DELETE_SELF:
                flag = F.kFSEventStreamEventFlagItemRemoved
            elif mask & IN_MOVE_SELF:
                flag = F.kFSEventStreamEventFlagItemRenamed
            elif mask & IN_ATTRIB:
                flag = F.kFSEventStreamEventFlagItemInodeMetaMod
            elif mask & IN_UNMOUNT:
                flag = F.kFSEventStreamEventFlagUnmount
            else:
                return
            st = lstat(where)
            self.record((where, flag | F.kFSEventStreamEventFlagItemIsDir,
                         None if st is None else st.st_ino))
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                self._drop_tree(where)
            return
        path = os.path.join(where, os.fsdecode(rec.name))
        if mask & IN_MOVED_FROM:
            moved[rec.cookie] = (path, is_dir)
            return
        st = None if mask & IN_DELETE else lstat(path)
        ino = None if st is None else st.st_ino
        k = kind(st, is_dir)
        if mask & IN_MOVED_TO:
            flag = F.kFSEventStreamEventFlagItemRenamed
            pair = moved.pop(rec.cookie, None)
            if pair is not None:
                self.record((pair[0], flag | k, ino))
                if is_dir:
                    self._move_tree(pair[0], path)
            self.record((path, flag | k, ino))
            if is_dir:
                # Moved in, moved before its watch was placed (the watches moved may be
                # another directory's, listed at the old path since), or holding one
                # made while it moved (not found at the path its record named): the
                # directories without a watch get one, and what was made in them is
                # reported. FSEvents, which watches paths, has no such gap.
                self.add_tree(path, report=True, new_only=True)
        elif mask & IN_CREATE:
            self.record((path, F.kFSEventStreamEventFlagItemCreated | k, ino))
            if is_dir:
                self.add_tree(path, report=True)
        elif mask & IN_DELETE:
            self.record((path, F.kFSEventStreamEventFlagItemRemoved | k, None))
        elif mask & IN_MODIFY:
            self.record((path, F.kFSEventStreamEventFlagItemModified | k, ino))
        elif mask & IN_ATTRIB:
            self.record((path, F.kFSEventStreamEventFlagItemInodeMetaMod | k, ino))

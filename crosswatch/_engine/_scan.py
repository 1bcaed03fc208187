"""Scan and listing I/O: opening a cached directory, listing it, reading a subtree in.

A directory is always opened and checked against its node before it is listed: a
path can lead elsewhere by the time it is read (a rename not read yet), and a
listing of the wrong directory would be taken for the right one's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING

from .. import _longpath as longpath
from .. import _os
from .._backend import Action
from .._events import Change
from .._tree import Kind, Node, Slim, entry_kind, kind_of, lstat, slim
from ._moves import Key
from ._own import OwnReads
from ._roots import Root
from ._work import Adopt

if TYPE_CHECKING:
    from . import Engine

#: A directory modified this recently (ns) when listed may change again within the
#: same timestamp tick (or a network server's clock skew), so it is listed again.
RACY_NS = 1_000_000_000
#: The coarsest file timestamp tick we expect (jiffies at HZ=100).
TICK_NS = 10_000_000

_NAME = attrgetter("name")

#: One entry of a new directory's listing: name, inode number, kind, lstat if taken.
Listed = tuple[str, int, Kind, "Slim | None"]


class Stopped(Exception):
    """The engine's ``stopped()`` said so in the middle of reading a tree (a close)."""


@dataclass(slots=True)
class Part:
    """A listing of a subtree being read, stored up to ``next``."""

    node: Node
    path: str
    depth: int
    listing: list[Listed]
    next: int = 0
    subdirs: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class Fill:
    """A subtree being read into the cache from ``top``: what is left to list, and
    the listing being stored when the consumer's bound stopped it."""

    top: Node
    root: Root
    emit: bool
    as_of: int
    stack: list[tuple[Node, str, int]]
    listing: Part | None = None
    adopted: list[tuple[Node, str, Key]] = field(default_factory=list)


def _listed(entry: os.DirEntry[str], stat_files: bool) -> Listed:
    """What the cache keeps of a listed entry; OSError if it is gone already."""
    if entry.is_dir(follow_symlinks=False):
        return (entry.name, entry.inode(), Kind.DIR, None)
    if stat_files:
        st = slim(_os.entry_lstat(entry))
        return (entry.name, st.st_ino, kind_of(st), st)
    return (entry.name, entry.inode(), entry_kind(entry), None)


class Scanner:
    """Reads directories into the cache for the engine's rules.

    With access events on, it counts its own listings, which a backend whose
    ``own_reads`` is set reports too (see OwnReads).
    """

    def __init__(self, engine: Engine, *, access: bool = False) -> None:
        self.e = engine
        self._own = OwnReads() if access else None

    # ------------------------------------------------------------ opening

    def open(self, node: Node, path: str, *, fresh: bool = False) -> _os.Opened | None:
        """A cached directory opened to list (see ``_os.open_listing``), or None;
        remembers when it was read.

        A ``fresh`` node (just found in its parent's listing) takes its stat from the
        open directory: one path lookup fewer than ``lstat``, and right for a mount
        point, whose listed inode is the one it covers. Another directory of the same
        file system at the path means ``node`` was replaced by a rename whose
        observations are not read yet (unless the listing's inode numbers are not
        the real ones, as on some FUSE file systems): it is looked at again after them.
        """
        e = self.e
        if not (longpath.WALKS and _os.LISTS_BY_FD) and longpath.entries_out_of_reach(path):
            self._out_of_reach(node, path)
            if fresh:
                self.take_stat(node, path)
            node.listed = None
            return None
        try:
            fd, st = _os.open_listing(path)
        except (FileNotFoundError, NotADirectoryError):
            e.stale.defer(node)
            return None
        except OSError as exc:
            e.warn_once(path, f"cannot read directory {path!r} ({exc.strerror}); skipped")
            if fresh:
                self.take_stat(node, path)
            node.listed = None
            return None
        if st.st_ino != node.ino and st.st_dev == node.dev and not (
            fresh and e.watches.watched_here(node, path)
        ):
            _os.close(fd)
            e.stale.defer(node)
            return None
        if self._own is not None:
            self._count_own_read(node)
        if fresh:
            node.take(st)
        racy = node.mtime >= time.time_ns() - RACY_NS
        node.listed = None if racy else node.mtime
        return fd

    def _out_of_reach(self, node: Node, path: str) -> None:
        """Say once per root that the directories from ``node``'s depth on are not read."""
        e = self.e
        root = e.roots.of(node)
        top = root.path if root is not None else path
        e.warn_once(
            f"deep:{top}",
            f"paths below depth {node.depth()} of {top!r} are longer than the OS allows "
            f"here (PATH_MAX {longpath.PATH_MAX}) and are not watched",
        )

    # ------------------------------------------------------------ own reads

    def _count_own_read(self, node: Node) -> None:
        """Count a listing of ``node`` about to be reported by the watches that see it."""
        roots = self.e.roots
        root = roots.of(node)
        own = self._own
        if own is None or root is None or not root.backend.capabilities.own_reads:
            return
        if node.parent is not None:
            if node.parent.handle is not None:
                own.opened(node, False)
            return
        if node.handle is not None:
            own.opened(node, True)
        parent, name = os.path.split(node.name)
        for other in roots.all:  # a root whose parent is another root (recursive=False)
            seen = other.node.children.get(name) if other.node.name == parent else None
            if seen is not None and seen.is_dir and other.node.handle is not None:
                own.opened(seen, False)

    def own_read(self, node: Node, own: bool, action: Action) -> bool:
        """Is this access event of ``node`` the engine's own listing? ``own``: it came
        through the directory's own watch (else through its parent's)."""
        return self._own is not None and node.is_dir and self._own.take(node, own, action)

    def forget_reads(self, node: Node) -> None:
        """``node`` left the cache: its listings' events still to come are never reported."""
        if self._own is not None:
            self._own.forget(node)

    @staticmethod
    def take_stat(node: Node, path: str) -> None:
        st = lstat(path)
        if st is not None:
            node.take(st)

    # ------------------------------------------------------------ listing

    def list_stats(self, node: Node) -> Iterator[tuple[str, Slim]] | None:
        """Every entry of a cached directory with its lstat, or None if unreadable.

        The entries come as they are read, so that a caller that keeps few of them
        (a rescan of 200,000 unchanged files) never holds them all.
        """
        fd = self.open(node, node.path())
        if fd is None:
            return None
        return self._stats(fd, self.e.listed)

    def names(self, node: Node, path: str) -> list[str] | None:
        """The names in directory ``path``, as stored, if it is ``node``'s (None if
        it cannot be read, or the path leads to another directory now); the cache is
        left as it is."""
        try:
            fd, st = _os.open_listing(path)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != (node.dev, node.ino):
            _os.close(fd)
            return None
        if self._own is not None:
            self._count_own_read(node)
        try:
            with _os.entries(fd) as it:
                return [entry.name for entry in it]
        except OSError:
            return None
        finally:
            _os.close(fd)

    @staticmethod
    def _stats(fd: _os.Opened, listed: Callable[[int], None]) -> Iterator[tuple[str, Slim]]:
        count = 0  # told to ``listed`` (a comparison with a snapshot shows its progress)
        try:
            with _os.entries(fd) as it:
                for entry in it:
                    count += 1
                    try:
                        st = slim(_os.entry_lstat(entry))
                    except OSError:
                        continue  # removed since the listing: its event will follow
                    yield entry.name, st
        finally:
            _os.close(fd)
            listed(count)

    def list_new(self, node: Node, root: Root) -> list[Listed] | None:
        """Watch, then list, a new directory; nothing is cached (see NewDirs)."""
        e = self.e
        path = node.path()
        fresh = node.meta is None
        if node.depth() >= root.max_depth:
            if fresh:
                self.take_stat(node, path)
            return None
        per_dir = not root.backend.capabilities.recursive
        if per_dir and not e.watches.watch_dir(node, root, path):
            return None
        fd = self.open(node, path, fresh=fresh)
        if fd is None:
            return None
        node.children.as_of = time.time_ns() - TICK_NS
        try:  # the entries may stat relative to fd: it stays open while they are used
            with _os.entries(fd) as it:
                return self._listing(self._kept(list(it), node, root), node, root)
        finally:
            _os.close(fd)

    def _kept(
        self, entries: list[os.DirEntry[str]], node: Node, root: Root
    ) -> list[os.DirEntry[str]]:
        """The entries not ignored: asked of each only if one may be (one C-level
        pass over the names tells, for the default list of plain names)."""
        roots = self.e.roots
        if not roots.filters:
            return entries
        names = list(map(_NAME, entries))
        roots.listing(root, node, names)
        if roots.gitignores is None and not roots.ignore.may_match(names):
            return entries
        left_out = roots.left_out(root, node)
        return [e for e in entries if not left_out(e.name, _is_dir(e))]

    def _listing(
        self, entries: Iterable[os.DirEntry[str]], node: Node, root: Root, *, new: bool = False
    ) -> list[Listed]:
        """What the cache keeps of entries already rid of the ignored ones (see
        :meth:`_kept`): if ``new``, those not cached."""
        stat_files = root.backend.capabilities.polls
        children = node.children
        listing: list[Listed] = []
        for entry in entries:
            name = entry.name
            if new and name in children:
                continue
            try:
                listing.append(_listed(entry, stat_files))
            except OSError:
                continue  # removed since the listing: its event will follow
        return listing

    # ------------------------------------------------------------ reading a subtree in

    def fill(self, top: Node, root: Root, *, emit: bool) -> None:
        """Watch, then list, a directory new to the cache and everything below it.

        Watching before listing closes the race with entries created in between: they
        are in the listing, or their event arrives (and finds them cached: no duplicate).
        ``emit``: report what is found as created (else it is the first reading).
        """
        if root.only is not None and top is root.node:
            for name in sorted(root.only):
                self.fill_only(root, name, emit=emit)
            return
        done = self.fill_more(self.start_fill(top, root, emit=emit))
        assert done or emit

    @staticmethod
    def start_fill(top: Node, root: Root, *, emit: bool) -> Fill:
        """A reading of ``top``'s subtree, to go on with :meth:`fill_more`."""
        as_of = time.time_ns() - TICK_NS  # writes after this are reported by events
        return Fill(top, root, emit, as_of, [(top, top.path(), top.depth())])

    def fill_more(self, task: Fill) -> bool:
        """Go on with a subtree's reading; False if it stopped because the consumer
        is full (``Worklist.full``: only when reporting), and ``task`` says where."""
        e = self.e
        root = task.root
        per_dir = not root.backend.capabilities.recursive
        bulk = not (task.emit or root.backend.capabilities.polls)
        stack = task.stack
        stopped = e.stopped
        while task.listing is not None or stack:
            if stopped():
                raise Stopped
            if task.listing is None:
                node, path, depth = stack.pop()
                if depth >= root.max_depth:
                    if node is not task.top:  # never listed: its own stat is all there is
                        self.take_stat(node, path)
                    continue
                if per_dir and node is not root.node and not e.watches.watch_dir(node, root, path):
                    continue
                fresh = node is not task.top
                listing = self._read(node, path, depth, root, fresh, bulk, task.as_of)
                if listing is None:
                    continue
                if isinstance(listing, list):
                    stack += self._below(path, depth, listing)
                    continue
                task.listing = listing
            part = task.listing
            if not self._store(part, task.emit, task.adopted):
                return False
            task.listing = None
            stack += self._below(part.path, part.depth, part.subdirs)
        for parent, name, key in task.adopted:
            e.work.spawn(Adopt(parent, name, key))
        return True

    @staticmethod
    def _below(path: str, depth: int, subdirs: list[Node]) -> list[tuple[Node, str, int]]:
        prefix = path if path.endswith(os.sep) else path + os.sep
        return [(sub, prefix + sub.name, depth + 1) for sub in subdirs]

    def _read(
        self, node: Node, path: str, depth: int, root: Root, fresh: bool, bulk: bool, as_of: int
    ) -> Part | list[Node] | None:
        """List a directory of a subtree being read: its subdirectories, cached at
        once if ``bulk`` (a first reading), else the entries still to store; None
        if it cannot be listed."""
        fd = self.open(node, path, fresh=fresh)
        if fd is None:
            return None
        children = node.children
        try:  # the entries may stat relative to fd: it stays open while they are used
            with _os.entries(fd) as it:
                entries = list(it)
            self.e.listed(len(entries))
            entries = self._kept(entries, node, root)
            children.as_of = as_of
            if bulk and not children:
                subdirs = children.take_first_listing(entries)
                if subdirs is not None:
                    return subdirs
            return Part(node, path, depth, self._listing(entries, node, root, new=True))
        finally:
            _os.close(fd)

    def _store(self, part: Part, emit: bool, adopted: list[tuple[Node, str, Key]]) -> bool:
        """Cache a listing entry by entry, reporting each as created if ``emit``;
        False if it stopped because the consumer is full (``part`` says where)."""
        e = self.e
        moves, work = e.moves, e.work
        node, path = part.node, part.path
        children = node.children
        listing = part.listing
        while part.next < len(listing):
            if emit and work.full():
                return False
            name, ino, kind, st = listing[part.next]
            part.next += 1
            if name in children:
                continue
            if emit and moves:
                key = moves.key_of(node.dev, ino)
                if key is not None:  # renamed in here: a move, not a creation
                    adopted.append((node, name, key))
                    continue
            child = children.put_listed(name, ino, kind, st)
            if child is not None:
                part.subdirs.append(child)
            if emit:
                e.out.emit(Change.CREATED, os.path.join(path, name), kind is Kind.DIR)
        return True

    def fill_only(self, root: Root, name: str, *, emit: bool = False) -> None:
        """Cache one file root's entry, if it exists now."""
        st = lstat(os.path.join(root.node.name, name))
        if st is not None and name not in root.node.children:
            node = Node(name, root.node, st)
            root.node.children[name] = node
            if emit:
                self.e.out.emit(Change.CREATED, node.path(), node.is_dir)


def _is_dir(entry: os.DirEntry[str]) -> Callable[[], bool]:
    return lambda: entry.is_dir(follow_symlinks=False)

"""The engine: turns backend observations into events a consumer can trust.

It keeps a cache of every watched tree and treats each observation as a hint to
verify against the disk. Every rule is idempotent ("created" for an entry already
cached with the same identity does nothing, "deleted" of an unknown entry does
nothing), so replayed or stale observations cannot make the cache drift, and a
rescan (a diff of disk against cache) repairs whatever was lost.
"""

from __future__ import annotations

import errno
import fnmatch
import math
import os
import time
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import filterfalse
from operator import attrgetter

from ._backend import (
    Action,
    Backend,
    DirDirty,
    EntryChange,
    Gone,
    Observation,
    Renamed,
    SubtreeLost,
)
from ._errors import WatchError, WatchGoneError, WatchLimitError
from ._events import Change, Event
from ._tree import DIR, FILE, LINK, OTHER, Children, Node, kind_of, lstat, pack

#: A directory modified this recently (ns) when listed may change again within the
#: same timestamp tick (or a network server's clock skew), so it is listed again.
RACY_NS = 1_000_000_000
#: Reads of the backend's queue before new directories are listed (see Engine.apply).
DRAIN_READS = 4
#: Rounds of listing new directories and diffing deferred ones at the end of a batch.
FINISH_ROUNDS = 4
#: The coarsest file timestamp tick we expect (jiffies at HZ=100).
TICK_NS = 10_000_000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NAME = attrgetter("name")
_INODE = os.DirEntry.inode
_IS_FILE = os.DirEntry.is_file  # follows symlinks: see _store_bulk
_IS_LINK = os.DirEntry.is_symlink


#: One entry of a new directory's listing: name, inode number, kind, lstat if taken.
_Listed = tuple[str, int, str, "os.stat_result | None"]


def _listed_kind(entry: os.DirEntry[str]) -> str:
    """The kind of a listed entry that is not a directory, from its ``d_type``."""
    if entry.is_symlink():
        return LINK
    return FILE if entry.is_file(follow_symlinks=False) else OTHER


def _listed(entry: os.DirEntry[str], stat_files: bool) -> _Listed:
    """What the cache keeps of a listed entry; OSError if it is gone already."""
    if entry.is_dir(follow_symlinks=False):
        return (entry.name, entry.inode(), DIR, None)
    if stat_files:
        st = entry.stat(follow_symlinks=False)
        return (entry.name, st.st_ino, kind_of(st), st)
    return (entry.name, entry.inode(), _listed_kind(entry), None)


def _cache(parent: Node, name: str, ino: int, kind: str, st: os.stat_result | None) -> Node | None:
    """Store a listed entry under ``parent``; the new node if it is a directory."""
    if kind == DIR:
        child = Node.listed_dir(name, parent, ino)
        parent.children[name] = child
        return child
    if st is not None:
        parent.children[name] = Node(name, parent, st)
    else:  # no stat and no object: see Children
        raw: dict[str, object] = parent.children  # type: ignore[assignment]
        raw[name] = pack(ino, kind)
    return None


_ACCESS = {
    Action.OPENED: Change.OPENED,
    Action.ACCESSED: Change.ACCESSED,
    Action.CLOSED_WRITE: Change.CLOSED_WRITE,
    Action.CLOSED_NOWRITE: Change.CLOSED_NOWRITE,
}


class Ignore:
    """Names or root-relative paths (with ``/``) matched by glob patterns are left out."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        pats = [p.strip("/") for p in patterns if p.strip("/")]
        self.names = [p for p in pats if "/" not in p]
        self.paths = [p for p in pats if "/" in p]

    def __bool__(self) -> bool:
        return bool(self.names or self.paths)

    def match(self, name: str, rel: Callable[[], str]) -> bool:
        if any(fnmatch.fnmatchcase(name, p) for p in self.names):
            return True
        return bool(self.paths) and any(fnmatch.fnmatchcase(rel(), p) for p in self.paths)


@dataclass(eq=False)
class Root:
    """A watched root: a directory, or a file (its parent's node holds ``only``)."""

    path: str
    node: Node
    backend: Backend
    recursive: bool
    only: set[str] | None = None

    @property
    def max_depth(self) -> float:
        """Directories at this depth below ``node`` or deeper are neither listed nor watched."""
        return math.inf if self.recursive and self.only is None else 1


@dataclass(eq=False)
class _Pending:
    """A ``moved_from`` waiting for its ``moved_to``; its node is detached meanwhile."""

    parent: Node
    name: str
    node: Node | None
    deadline: float
    held: list[tuple[Backend, Observation]] = field(default_factory=list)
    #: (backend, cookie) of each ``moved_from`` held: its ``moved_to`` is held too.
    held_from: set[tuple[int, Hashable]] = field(default_factory=set)
    #: When it began among the pending moves (set by _PendingMoves.add).
    seq: int = 0

    def hold(self, backend: Backend, obs: Observation) -> None:
        self.held.append((backend, obs))
        if isinstance(obs, EntryChange) and obs.action is Action.MOVED_FROM:
            self.held_from.add((id(backend), obs.cookie))


class _PendingMoves:
    """The pending moves by (backend, cookie); also found by what they hold back.

    Every observation asks whether a pending move holds it back (see Engine._hold):
    indexed by old place and by moved directory, that costs the depth of the
    observed directory, not the number of moves pending.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, Hashable], _Pending] = {}
        self._at: dict[tuple[int, str], list[_Pending]] = {}  # (id(parent), name)
        self._dirs: dict[int, _Pending] = {}  # id(moved directory)
        self._count = 0

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __iter__(self) -> Iterator[tuple[int, Hashable]]:
        return iter(self._by_key)

    def get(self, key: tuple[int, Hashable]) -> _Pending | None:
        return self._by_key.get(key)

    def values(self) -> Iterable[_Pending]:
        return self._by_key.values()

    def items(self) -> Iterable[tuple[tuple[int, Hashable], _Pending]]:
        return self._by_key.items()

    def add(self, key: tuple[int, Hashable], pending: _Pending) -> None:
        self.pop(key)
        self._by_key[key] = pending
        self._count += 1
        pending.seq = self._count
        if pending.node is not None:
            self._at.setdefault((id(pending.parent), pending.name), []).append(pending)
            if pending.node.is_dir:
                self._dirs[id(pending.node)] = pending

    def pop(self, key: tuple[int, Hashable]) -> _Pending | None:
        pending = self._by_key.pop(key, None)
        if pending is None:
            return None
        if pending.node is not None:
            place = (id(pending.parent), pending.name)
            others = self._at[place]
            others.remove(pending)
            if not others:
                del self._at[place]
            if self._dirs.get(id(pending.node)) is pending:
                del self._dirs[id(pending.node)]
        return pending

    def clear(self) -> None:
        for key in list(self._by_key):
            self.pop(key)

    def at(self, parent: Node, name: str) -> _Pending | None:
        """The first pending move of a cached entry out of ``parent``/``name``."""
        others = self._at.get((id(parent), name))
        return others[0] if others else None

    def holding(self, node: Node, name: str, skip: _Pending | None) -> _Pending | None:
        """The first pending move of ``name`` in ``node``, or of ``node`` or an ancestor."""
        found = [p for p in self._at.get((id(node), name), ()) if p is not skip]
        up: Node | None = node
        while up is not None:
            moved = self._dirs.get(id(up))
            if moved is not None and moved is not skip:
                found.append(moved)
            up = up.parent
        return min(found, key=attrgetter("seq"), default=None)


@dataclass
class _Suspect:
    """An entry moved onto a name where the disk showed something else."""

    node: Node
    dst_parent: Node
    dst_name: str
    src_parent: Node
    src_name: str


class Engine:
    """Applies observations to the tree cache and appends the resulting events to ``out``.

    Not thread-safe: one thread drives it (the watcher's loop).
    """

    def __init__(
        self,
        *,
        access: bool = False,
        ignore: Ignore | None = None,
        pair_wait: float = 0.02,
        fallback_interval: float = 1.0,
        warn: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access = access
        self.ignore = ignore or Ignore()
        self.pair_wait = pair_wait
        self.fallback_interval = fallback_interval
        self.warn = warn
        self.clock = clock
        self.out: list[Event] = []
        self.roots: list[Root] = []
        self._root_by_top: dict[int, Root] = {}
        self._handles: dict[Backend, dict[Hashable, Node]] = {}
        self._pending = _PendingMoves()
        self._adjacent: dict[Backend, tuple[int, Hashable]] = {}
        self._warned: set[str] = set()
        self._deferred: dict[int, Node] = {}
        self._unwatched: dict[int, Node] = {}
        self._to_fill: list[Node] = []
        # Entries moved onto a name where the disk showed something else: looked at
        # again once the queue has been read further (see _move).
        self._suspects: dict[int, _Suspect] = {}
        # New directories listed but not yet placed: names observations touched since.
        self._holding: dict[int, set[str]] = {}
        # New directories listed as soon as they were watched, by id: (node, listing).
        self._listed_early: dict[int, tuple[Node, list[_Listed]]] = {}
        # While a batch is applied: names where a cached directory was found by its
        # watch before its rename was read, looked at again after (see _park).
        self._parked: dict[tuple[int, str], tuple[Node, str]] | None = None
        self._fallback_due: float | None = None
        # When directories deferred by a batch are looked at for good (see expire).
        self._stale_due: float | None = None

    # ----------------------------------------------------------------- roots

    def add_root(self, path: str, backend: Backend, *, recursive: bool = True) -> Root:
        """Start watching ``path`` (absolute) with ``backend``; scan it without events.

        Raises :class:`FileNotFoundError` and friends for a path that cannot be watched.
        """
        st = os.stat(path)
        if kind_of(st) == DIR:
            node = Node(path, None, st)
            root = Root(path, node, backend, recursive)
        else:
            parent = os.path.dirname(path)
            for other in self.roots:  # several files of one directory share its watch
                if other.only is not None and other.node.name == parent:
                    other.only.add(os.path.basename(path))
                    self._fill_only(other, os.path.basename(path))
                    return other
            node = Node(parent, None, os.stat(parent))
            root = Root(path, node, backend, False, {os.path.basename(path)})
        self.roots.append(root)
        self._root_by_top[id(node)] = root
        self._handles.setdefault(backend, {})
        self._watch_root(root)
        self._fill(node, root, emit=False)
        return root

    def _watch_root(self, root: Root) -> None:
        backend = root.backend
        handle = backend.watch(root.node.name, recursive=root.max_depth > 1)
        self._bind(root.node, handle, backend)

    def _bind(self, node: Node, handle: Hashable, backend: Backend) -> None:
        handles = self._handles[backend]
        old = handles.get(handle)
        if old is not None and old is not node:
            old.handle = None
        node.handle = handle
        handles[handle] = node

    def _end_root(self, root: Root) -> None:
        """The root is gone: report it deleted and forget everything below it."""
        settled = self._settle_pending_below(root.node)
        if root.only is None:
            self._emit(Change.DELETED, root.path, True)
        else:
            for name in sorted(root.only):
                child = root.node.children.get(name)
                if child is not None:
                    self._emit(Change.DELETED, child.path(), child.is_dir)
        self._forget(root.node, root.backend)
        self.roots.remove(root)
        del self._root_by_top[id(root.node)]
        self._replay_settled(settled)

    def root_of(self, node: Node) -> Root | None:
        return self._root_by_top.get(id(node.top()))

    def backends(self) -> list[Backend]:
        return list(self._handles)

    # ------------------------------------------------------------ observations

    def apply(self, backend: Backend, observations: Sequence[Observation]) -> None:
        """Apply a backend's observations in order; dirty directories are diffed together.

        New directories are listed at the end. Before that, what the backend has
        queued meanwhile is read and applied too (a few reads at most): an entry
        renamed into a new directory before it was watched has no ``moved_to``, and
        its ``moved_from`` must be pending when the listing finds it, to be reported
        as the move it was. Moves whose destination the disk contradicted, and names
        where a directory was found before its rename was read, are looked at after
        those reads (see _move, _park).
        """
        self._parked = {}
        try:
            self._apply_batch(backend, observations)
            for _ in range(DRAIN_READS):
                if not (self._to_fill or self._suspects or self._parked) or (
                    backend.fileno() is None
                ):
                    break
                more = backend.read()
                if not more:
                    break
                self._apply_batch(backend, more)
        finally:
            parked, self._parked = self._parked, None
        for parent, name in parked.values():
            self._reconcile(parent, name)
        self._check_suspects()
        self._finish(backend)
        if self._deferred and self._stale_due is None:
            self._stale_due = self.clock() + self.pair_wait  # see _settle_stale

    def _finish(self, backend: Backend | None) -> None:
        """List new directories and look at deferred ones, until neither leaves work.

        A deferred directory's diff may replay held observations that make new
        directories, and a listing may defer one: both are done now, since nothing
        else may wake the watcher for them (what is left makes it wake at once).
        """
        for _ in range(FINISH_ROUNDS):
            self._fill_new_dirs(backend)
            self._run_deferred()
            if not self._fillable():
                return

    def _fillable(self) -> bool:
        """Is a new directory waiting to be listed, other than inside a pending move?"""
        return any(self._attached(node) for node in self._to_fill)

    def _apply_batch(self, backend: Backend, observations: Sequence[Observation]) -> None:
        dirty: list[tuple[Node, bool]] = []
        for obs in observations:
            if isinstance(obs, DirDirty):
                located = self._locate(backend, obs.handle, obs.name)
                if located is not None:
                    dirty.append((located, obs.recursive))
                continue
            if dirty:
                self._diff_dirty(dirty)
                dirty = []
            self._apply_one(backend, obs)
        if dirty:
            self._diff_dirty(dirty)

    def _apply_one(self, backend: Backend, obs: Observation) -> None:
        if self._pending and self._hold(backend, obs):
            return
        if isinstance(obs, EntryChange):
            self._entry_change(backend, obs)
        elif isinstance(obs, Renamed):
            self._renamed(backend, obs)
        elif isinstance(obs, SubtreeLost):
            self._subtree_lost(backend, obs)
        elif isinstance(obs, Gone):
            self._gone(backend, obs)

    def _locate(self, backend: Backend, handle: Hashable, name: str) -> Node | None:
        """The cached directory or entry an observation names, or its nearest cached ancestor."""
        node = self._handles.get(backend, {}).get(handle)
        if node is None:
            return None
        for part in name.split(os.sep) if name else ():
            child = node.children.get(part)
            if child is None:
                break
            node = child
        return node

    def _split(self, backend: Backend, handle: Hashable, name: str) -> tuple[Node, str] | None:
        """(cached parent directory, entry name) for an observation, or None if unknown.

        For a recursive backend's relative path whose middle is not cached yet, the
        deepest cached directory and the first missing name are returned: reconciling
        that one entry reports everything below it.
        """
        node = self._handles.get(backend, {}).get(handle)
        if node is None:
            return None
        if not name:  # about the watched directory itself
            return node, ""
        parts = name.split(os.sep)
        for part in parts[:-1]:
            child = node.children.get(part)
            if child is None or child.kind != DIR:
                return node, part
            node = child
        return node, parts[-1]

    def _entry_change(self, backend: Backend, obs: EntryChange) -> None:
        split = self._split(backend, obs.handle, obs.name)
        if split is None:
            return
        parent, name = split
        action = obs.action
        if self._holding and id(parent) in self._holding:
            self._holding[id(parent)].add(name)
        if not name:  # the watched directory itself, seen from its own watch
            self._self_change(parent, action, obs.pid)
            return
        if action is Action.MOVED_FROM:
            self._moved_from(backend, parent, name, obs.cookie)
        elif action is Action.MOVED_TO:
            self._moved_to(backend, parent, name, obs.cookie, obs.pid)
        elif action in (Action.MODIFIED, Action.ATTRIB):
            node = parent.children.get(name)
            if node is None or not self._tracked(parent, name):
                self._reconcile(parent, name, obs.pid)
            elif action is Action.ATTRIB:
                self._emit(Change.ATTRIB, node.path(), node.is_dir, pid=obs.pid)
            elif not node.is_dir:
                # No stat: a write whose event is lost later must still show in a rescan.
                node.reported_modified(time.time_ns() - TICK_NS)
                self._emit(Change.MODIFIED, node.path(), False, pid=obs.pid)
        elif action is Action.CREATED or action is Action.DELETED:  # look at what is there now
            self._reconcile(parent, name, obs.pid, created=action is Action.CREATED)
        else:  # access
            node = parent.children.get(name)
            if self.access and node is not None and self._tracked(parent, name):
                self._emit(_ACCESS[action], node.path(), node.is_dir, pid=obs.pid)

    def _self_change(self, node: Node, action: Action, pid: int | None) -> None:
        """Only a root reports on itself; for any other directory its parent's watch
        does, except that it is deleted: then it is gone, wherever the cache has it."""
        root = self._root_by_top.get(id(node))
        if root is None and action is Action.DELETED and self._attached(node):
            # Its parent's observation may find the cached path stale (an ancestor
            # renamed, not read yet) and only defer a look; this one is certain.
            # Its place is looked at again: a rename the kernel paired with another
            # entry of that name may have put it there, and the disk decides.
            parent, name = node.parent, node.name
            self._remove(node, pid=pid)
            if parent is not None:
                self._reconcile(parent, name)
            return
        if root is None or root.only is not None:
            return
        if action is Action.ATTRIB:
            self._emit(Change.ATTRIB, root.path, True, pid=pid)
        elif action in _ACCESS and self.access:
            self._emit(_ACCESS[action], root.path, True, pid=pid)
        elif action in (Action.DELETED, Action.MOVED_FROM):
            self._check_root(root)

    # ----------------------------------------------------------- the precise path

    def _tracked(self, parent: Node, name: str) -> bool:
        """Does ``name`` in ``parent`` belong in the cache (depth, file roots, ignore)?"""
        found = self._anchor(parent)
        if found is None:
            return False
        root, depth = found
        if root.only is not None:
            return parent is root.node and name in root.only
        if depth >= root.max_depth:
            return False
        if self.ignore:
            return not self.ignore.match(name, lambda: self._rel(root, parent, name))
        return True

    def _rel(self, root: Root, parent: Node, name: str) -> str:
        parts = [name]
        node = parent
        while node is not root.node and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts))

    def _attached(self, node: Node) -> bool:
        return self._anchor(node) is not None

    def _anchor(self, node: Node) -> tuple[Root, int] | None:
        """(root, depth below it) of a node in the cache; None if it is detached."""
        depth = 0
        while node.parent is not None:
            if node.parent.children.get(node.name) is not node:
                return None
            node = node.parent
            depth += 1
        root = self._root_by_top.get(id(node))
        return None if root is None else (root, depth)

    def _reconcile(
        self, parent: Node, name: str, pid: int | None = None, *, created: bool = False
    ) -> None:
        """Make the cache agree with the disk for one entry, reporting the difference.

        ``created``: an observation says an entry appeared here. If the cached entry
        is gone from the disk, it went after that (an earlier reading already found
        the new entry): its going has an observation of its own, still queued, which
        tells a rename from a deletion.
        """
        if not self._tracked(parent, name):
            return
        base = parent.path()
        path = os.path.join(base, name)
        st = lstat(path)
        if not self._path_valid(parent, base):
            self._defer(parent)
            return
        cur = parent.children.get(name)
        if cur is None:
            if st is None:
                return
            if self._pending:
                if self._wait_for_old(parent, name):
                    return
                key = self._pending_key(st)
                if key is not None:  # renamed in before its directory was watched
                    self._adopt(parent, name, key)
                    return
            self._create(parent, name, st, pid, path=path)
        elif st is None:
            if not created:
                self._remove(cur, pid=pid, path=path)
        elif cur.same(st):
            return
        elif cur.kind != DIR and kind_of(st) != DIR:
            cur.refresh(st)  # replaced by another file (atomic save): new content
            self._emit(Change.MODIFIED, path, False, pid=pid)
        else:
            # Removing it may replay observations held behind moves out of it, and
            # those may have cached what is here now: look again, do not just create.
            self._remove(cur, pid=pid)
            self._reconcile(parent, name, pid)

    def _wait_for_old(self, parent: Node, name: str) -> bool:
        """Hold back reporting a new entry at ``name`` while the old one's move waits.

        The entry that had the name left with a ``moved_from`` whose other half has
        not come: the consumer still has it there, so what took its place (new, or
        moved in) is looked at once that move is settled (moved or deleted); reported
        first, it would be taken for the old entry's move or deletion. True if held back.
        """
        root = self.root_of(parent)
        if root is None or parent.handle is None:
            return False
        pending = self._pending.at(parent, name)
        if pending is None:
            return False
        pending.hold(root.backend, EntryChange(parent.handle, name, Action.CREATED, False))
        return True

    def _path_valid(self, node: Node, path: str | None = None) -> bool:
        """Does ``node``'s cached path (``path``, if the caller has it) still lead to it?

        Observations are read after the fact: an ancestor may have been renamed since,
        and the rename is still in the queue. Through such a stale path ``lstat``
        proves nothing, so the caller looks again once the batch has been applied.
        """
        if node.parent is None:
            return True
        st = lstat(node.path() if path is None else path)
        return st is not None and node.same(st)

    def _defer(self, node: Node) -> None:
        self._deferred[id(node)] = node

    def _run_deferred(self) -> None:
        """Diff the directories whose paths were stale, now that the batch is applied."""
        if not self._deferred:
            return
        nodes = list(self._deferred.values())
        self._deferred.clear()
        tops: list[tuple[Node, bool]] = []
        for node in nodes:
            if not node.is_dir:
                continue
            if not self._attached(node):
                if self._in_pending_move(node):
                    self._defer(node)  # looked at once the move settles
                continue
            if self._path_valid(node):
                tops.append((node, False))
            else:
                self._defer(node)  # its ancestor's rename has not been read yet
        if tops:
            self._diff(tops)

    def _create(
        self,
        parent: Node,
        name: str,
        st: os.stat_result,
        pid: int | None = None,
        *,
        fill_now: bool = False,
        path: str | None = None,
    ) -> Node | None:
        """Cache and report a new entry; a directory's contents follow.

        ``path``: the entry's path, when the caller has it already. None if it was
        put off: a cached directory renamed here by observations not read yet.

        Unless ``fill_now``, a new directory is watched at once, so that what is
        renamed into it from now on comes with its ``moved_to``, and listed once the
        batch of observations is applied: an entry renamed into it before it was
        watched (no ``moved_to`` is ever reported) then meets its ``moved_from``,
        read later in the same batch, and is reported as the move it was. A watch
        that turns out to be a cached directory's may make it no new entry at all
        (see _park).
        """
        if path is None:
            path = os.path.join(parent.path(), name)
        is_dir = kind_of(st) == DIR
        root = self.root_of(parent) if is_dir else None
        handle: Hashable | None = None
        if not fill_now and root is not None and (
            not root.backend.capabilities.recursive and parent.depth() + 1 < root.max_depth
        ):
            handle = self._watch_early(path, root)
            owner = self._handles[root.backend].get(handle) if handle is not None else None
            if owner is not None:  # this is that directory, renamed here
                if self._park(owner, parent, name, st):
                    return None
                # The rest of the batch must still reach it through the handle.
                handle = None  # left to the listing (see _fill_new_dirs)
        node = Node(name, parent, st)
        parent.children[name] = node
        self._emit(Change.CREATED, path, node.is_dir, pid=pid)
        if is_dir and root is not None:
            if fill_now:
                self._fill(node, root, emit=True)
            else:
                if handle is not None:
                    self._bind(node, handle, root.backend)
                    self._list_early(node, root)
                self._to_fill.append(node)
        return node

    def _list_early(self, node: Node, root: Root) -> None:
        """List a new directory as soon as it is watched; it is placed with the others.

        What was renamed into it before the watch has no ``moved_to``: the listing
        is its only witness, and another writer may take it away again at once.
        """
        listing = self._list_new(node, root)
        if listing is not None:
            self._listed_early[id(node)] = (node, listing)

    def _watch_early(self, path: str, root: Root) -> Hashable | None:
        """Watch a new directory in the middle of a batch; None on any error (the
        listing tries again, and reports what it cannot watch)."""
        try:
            return root.backend.watch(path, recursive=False)
        except (WatchError, OSError):
            return None

    def _park(self, owner: Node, parent: Node, name: str, st: os.stat_result) -> bool:
        """Put off a directory found at ``parent``/``name`` whose watch is ``owner``'s.

        A watch handle names an inode: the directory here is ``owner``. If its cached
        path no longer leads to it, renames put it here whose observations are not
        read yet (the disk shows a rename before its events are queued). Reported
        now, it would be a creation here and, once the renames are read, a deletion
        there; so the name is looked at again once the batch and what the backend
        queued meanwhile are applied (see apply), by when the renames have usually
        moved ``owner`` here and there is nothing left to report. Moving it here at
        once would be wrong: the renames still queued may take it through other
        names first. True if put off; only while a batch is applied.
        """
        if self._parked is None or not owner.same(st) or not self._attached(owner):
            return False
        if self._path_valid(owner):
            return False  # one directory at two paths (a bind mount): not a rename
        self._parked[(id(parent), name)] = (parent, name)
        return True

    def _fill_new_dirs(self, backend: Backend | None = None) -> None:
        """Place the new directories' listings, one level of them at a time.

        A directory not listed as soon as it was watched (see _list_early) is
        watched and listed here.

        A level's listings are placed in the cache only after ``backend``'s queue has
        been read once more. An entry renamed into a new directory just before the
        listing saw it has by then queued its ``moved_from`` (and its ``moved_to``, if
        the watch came first), so it is reported as the move it was, not as created.
        What observations say meanwhile about a listed name, the disk decides.
        """
        waiting: list[Node] = []
        drains = DRAIN_READS * 4  # a storm of new directories must not keep us here
        while self._to_fill:
            level, self._to_fill = self._to_fill, []
            listed = []
            for node in level:
                early = self._listed_early.pop(id(node), None)
                root = self.root_of(node)
                if root is None or not self._attached(node):
                    self._holding.pop(id(node), None)
                    if root is not None and self._in_pending_move(node):
                        waiting.append(node)  # listed again once the move settles
                    continue
                listing = early[1] if early is not None else self._list_new(node, root)
                if listing is not None:
                    listed.append((node, root, listing))
            if listed and backend is not None and drains > 0 and backend.fileno() is not None:
                drains -= 1
                more = backend.read()
                if more:
                    self._apply_batch(backend, more)
            for node, root, listing in listed:
                self._place_listing(node, root, listing)
        self._to_fill = waiting

    def _list_new(self, node: Node, root: Root) -> list[_Listed] | None:
        """Watch, then list, a new directory; nothing is cached yet (see _fill_new_dirs)."""
        path = node.path()
        fresh = node.meta is None
        if node.depth() >= root.max_depth:
            if fresh:
                self._take_stat(node, path)
            return None
        per_dir = not root.backend.capabilities.recursive
        if per_dir and not self._watch_dir(node, root, path):
            return None
        fd = self._open_dir(node, path, fresh=fresh)
        if fd < 0:
            return None
        node.children.as_of = time.time_ns() - TICK_NS
        ignore = self.ignore if self.ignore else None
        stat_files = root.backend.capabilities.polls
        listing: list[_Listed] = []
        try:  # the entries may stat relative to fd: it stays open while they are used
            with os.scandir(fd) as it:
                for entry in it:
                    name = entry.name
                    if ignore and self._ignored(root, node, name):
                        continue
                    try:
                        listing.append(_listed(entry, stat_files))
                    except OSError:
                        continue  # removed since the listing: its event will follow
        finally:
            os.close(fd)
        self._holding[id(node)] = set()
        return listing

    def _place_listing(self, node: Node, root: Root, listing: list[_Listed]) -> None:
        """Cache and report a new directory's listing: moves in, then what was created."""
        touched = self._holding.pop(id(node), set())
        if not self._attached(node):
            if self._in_pending_move(node):
                self._to_fill.append(node)  # read again once the move settles
            return
        base = node.path()
        for name, ino, kind, st in listing:
            if name in touched:  # observed since it was listed: look again
                if self._pending and name not in node.children and (
                    self._pending.at(node, name) is None  # else it waits (_wait_for_old)
                ):
                    self._moved_in_before(node, name, ino, kind)
                self._reconcile(node, name)
            elif name in node.children or (self._pending and self._wait_for_old(node, name)):
                continue
            else:
                key = self._pending_key_of(node.dev, ino) if self._pending else None
                if key is None:
                    child = _cache(node, name, ino, kind, st)
                    if child is not None:
                        self._to_fill.append(child)
                    self._emit(Change.CREATED, os.path.join(base, name), kind == DIR)
                    continue
                self._adopt(node, name, key)  # renamed in here: a move, not a creation
            # That look may have replayed observations held behind moves, which may
            # have removed or renamed this directory: the rest of the listing follows.
            if not self._attached(node):
                if self._in_pending_move(node):
                    self._to_fill.append(node)  # read again once the move settles
                return
            base = node.path()

    def _moved_in_before(self, node: Node, name: str, ino: int, kind: str) -> None:
        """Report a pending move whose entry the listing found at ``name`` as done.

        The name has changed since (that is what observations said), so the disk
        no longer shows what was renamed in before the watch; the listing did, and
        the consumer learns the move before what followed it.
        """
        key = self._pending_key_of(node.dev, ino)
        pending = self._pending.get(key) if key is not None else None
        if key is None or pending is None or pending.node is None or (
            pending.node.kind != kind
            or pending.parent is node  # cached here since, then moved out: not before
        ):
            return
        self._pending.pop(key)
        self._move(pending.node, pending.parent, pending.name, node, name, None)
        self._replay(pending)

    def _in_pending_move(self, node: Node) -> bool:
        """Is ``node`` detached only because a ``moved_from`` above it waits for its pair?"""
        return any(p.node is not None and p.node.is_ancestor_of(node)
                   for p in self._pending.values())

    def _remove(
        self,
        node: Node,
        *,
        emit: bool = True,
        pid: int | None = None,
        path: str | None = None,
        settled: list[_Pending] | None = None,
    ) -> None:
        """Drop ``node`` and its subtree from the cache, releasing their watches.

        ``path``: the node's path, when the caller has it already. ``settled``: where
        to leave the moves out of the subtree that its going settles, for the caller
        to replay (see _move); they are replayed at once otherwise.
        """
        root = self._root_by_top.get(id(node))
        if root is not None:
            self._end_root(root)
            return
        below = self._settle_pending_below(node)
        if emit:
            self._emit(Change.DELETED, node.path() if path is None else path, node.is_dir, pid=pid)
        parent = node.parent
        if parent is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
        owner = self.root_of(node)
        if owner is not None:
            self._forget(node, owner.backend)
        if settled is None:
            self._replay_settled(below)
        else:
            settled += below

    def _forget(self, node: Node, backend: Backend) -> None:
        handles = self._handles.get(backend, {})
        for sub in node.walk(dirs_only=True):  # only directories hold watches
            handle = sub.handle
            self._unwatched.pop(id(sub), None)
            if handle is not None and handles.get(handle) is sub:
                del handles[handle]
                try:
                    backend.unwatch(handle)
                except OSError:
                    pass
            sub.handle = None

    def _fill(self, top: Node, root: Root, *, emit: bool) -> None:
        """Watch, then list, a directory new to the cache and everything below it.

        Watching before listing closes the race with entries created in between: they
        are in the listing, or their event arrives (and finds them cached: no duplicate).
        """
        if root.only is not None and top is root.node:
            for name in sorted(root.only):
                self._fill_only(root, name, emit=emit)
            return
        per_dir = not root.backend.capabilities.recursive
        as_of = time.time_ns() - TICK_NS  # writes after this are reported by events
        pending = self._pending_by_identity() if emit else None
        adopted: list[tuple[Node, str, tuple[int, Hashable]]] = []
        bulk = not (emit or self.ignore or root.backend.capabilities.polls)
        stack = [(top, top.path(), top.depth())]
        while stack:
            node, path, depth = stack.pop()
            if depth >= root.max_depth:
                if node is not top:  # never listed: its own stat is all there is
                    self._take_stat(node, path)
                continue
            if per_dir and node is not root.node and not self._watch_dir(node, root, path):
                continue
            fd = self._open_dir(node, path, fresh=node is not top)
            if fd < 0:
                continue
            try:  # the entries may stat relative to fd: it stays open while they are used
                with os.scandir(fd) as it:
                    entries = list(it)
                node.children.as_of = as_of
                if bulk and not node.children:
                    subdirs = self._store_bulk(node, path, root, entries)
                else:
                    subdirs = self._store(node, path, root, entries, emit, pending, adopted)
            finally:
                os.close(fd)
            if subdirs:
                prefix = path if path.endswith(os.sep) else path + os.sep
                depth += 1
                stack += [(sub, prefix + sub.name, depth) for sub in subdirs]
        for parent, name, key in adopted:
            self._adopt(parent, name, key)

    def _store_bulk(
        self, node: Node, path: str, root: Root, entries: list[os.DirEntry[str]]
    ) -> list[Node]:
        """Cache a first listing, no events: the hot path of startup.

        Names and inode numbers are kept as they were listed, in C-level passes (see
        :meth:`Children.keep_listing`); only the entries that are not regular files,
        usually a few subdirectories, cost Python code each.
        """
        children = node.children
        store: Callable[[Children, str, object], None] = dict.__setitem__  # type: ignore[assignment]
        subdirs = []
        try:
            for entry in filterfalse(_IS_FILE, entries):  # directories, symlinks, others
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    child = Node.listed_dir(name, node, entry.inode())
                    store(children, name, child)
                    subdirs.append(child)
                else:
                    store(children, name, pack(entry.inode(), _listed_kind(entry)))
            for entry in filter(_IS_LINK, entries):  # a symlink to a file passed as one
                store(children, entry.name, pack(entry.inode(), LINK))
        except OSError:  # removed since the listing, a symlink that cannot be followed...
            dict.clear(children)
            return self._store(node, path, root, entries, False, None, [])
        children.keep_listing("\0".join(map(_NAME, entries)), array("Q", map(_INODE, entries)))
        return subdirs

    def _store(
        self,
        node: Node,
        path: str,
        root: Root,
        entries: list[os.DirEntry[str]],
        emit: bool,
        pending: dict[tuple[int, int], tuple[int, Hashable]] | None,
        adopted: list[tuple[Node, str, tuple[int, Hashable]]],
    ) -> list[Node]:
        """Cache a listing entry by entry, reporting each as created if ``emit``."""
        ignore = self.ignore if self.ignore else None
        stat_files = root.backend.capabilities.polls
        subdirs = []
        for entry in entries:
            name = entry.name
            if name in node.children or (ignore and self._ignored(root, node, name)):
                continue
            if pending:
                key = pending.get((node.dev, entry.inode()))
                if key is not None:  # renamed in here: a move, not a creation
                    adopted.append((node, name, key))
                    continue
            try:
                _, ino, kind, st = _listed(entry, stat_files)
            except OSError:
                continue  # removed since the listing: its event will follow
            child = _cache(node, name, ino, kind, st)
            if child is not None:
                subdirs.append(child)
            if emit:
                self._emit(Change.CREATED, os.path.join(path, name), kind == DIR)
        return subdirs

    def _pending_by_identity(self) -> dict[tuple[int, int], tuple[int, Hashable]] | None:
        if not self._pending:
            return None
        return {
            (p.node.dev, p.node.ino): key
            for key, p in self._pending.items()
            if p.node is not None
        }

    def _pending_key_of(self, dev: int, ino: int) -> tuple[int, Hashable] | None:
        """The pending ``moved_from`` of the entry with this identity, if any."""
        for key, pending in self._pending.items():
            moved = pending.node
            if moved is not None and moved.ino == ino and moved.dev == dev:
                return key
        return None

    def _pending_key(self, st: os.stat_result) -> tuple[int, Hashable] | None:
        key = self._pending_key_of(st.st_dev, st.st_ino)
        found = self._pending.get(key) if key is not None else None
        moved = found.node if found is not None else None
        return key if moved is not None and moved.same(st) else None

    def _adopt(self, parent: Node, name: str, key: tuple[int, Hashable]) -> None:
        """Complete a pending ``moved_from`` whose inode a listing found at ``name``."""
        pending = self._pending.get(key)
        node = pending.node if pending is not None else None
        st = lstat(os.path.join(parent.path(), name))
        if pending is None or node is None or st is None or not node.same(st) or (
            name in parent.children
        ):
            self._reconcile(parent, name)  # not it (an inode number reused): a new entry
            return
        self._pending.pop(key)
        self._move(node, pending.parent, pending.name, parent, name, None)
        if not node.is_dir and node.refresh(st) == "modified":
            # Written since it was read, or a file that reused a freed inode number:
            # either way its content must be read again.
            self._emit(Change.MODIFIED, node.path(), False)
        self._replay(pending)

    def _fill_only(self, root: Root, name: str, *, emit: bool = False) -> None:
        st = lstat(os.path.join(root.node.name, name))
        if st is not None and name not in root.node.children:
            node = Node(name, root.node, st)
            root.node.children[name] = node
            if emit:
                self._emit(Change.CREATED, node.path(), node.is_dir)

    def _ignored(self, root: Root, parent: Node, name: str) -> bool:
        return self.ignore.match(name, lambda: self._rel(root, parent, name))

    def _watch_dir(self, node: Node, root: Root, path: str | None = None) -> bool:
        """Watch one directory; False if it vanished first (its events will say so)."""
        if node.handle is not None:
            return True
        if path is None:
            path = node.path()
        try:
            handle = root.backend.watch(path, recursive=False)
        except WatchGoneError:
            self._defer(node)  # gone, or its path is stale: look again after the batch
            return False
        except WatchLimitError as exc:
            # Never silent: the directories past the limit are polled instead.
            self._warn_once(
                f"limit:{root.path}",
                f"{exc.strerror} (first refused at {path!r}); the directories past the "
                f"limit are polled every {self.fallback_interval:g} s instead",
            )
            self._unwatched[id(node)] = node
            if self._fallback_due is None:
                self._fallback_due = self.clock() + self.fallback_interval
            return True
        except (WatchError, OSError) as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                self._defer(node)
                return False
            self._warn_once(path, f"cannot watch {path!r}: {exc}; changes below it are unseen")
            return True
        owner = self._handles[root.backend].get(handle)
        if owner is not None and owner is not node and self._live(owner):
            # The path leads to another cached directory: renamed here by observations
            # not read yet. Its handle stays with it; both are looked at later.
            self._defer(node)
            self._defer(owner)
            return False
        self._bind(node, handle, root.backend)
        self._unwatched.pop(id(node), None)
        return True

    def _live(self, node: Node) -> bool:
        """Is ``node`` in the cache, or out of it only while its move is pending?"""
        return self._attached(node) or self._in_pending_move(node)

    def _open_dir(self, node: Node, path: str, *, fresh: bool = False) -> int:
        """A descriptor of a cached directory to list, or -1; remembers when it was read.

        A ``fresh`` node (just found in its parent's listing) takes its stat from the
        open directory: one path lookup fewer than ``lstat``, and right for a mount
        point, whose listed inode is the one it covers. Another directory of the same
        file system at the path means ``node`` was replaced by a rename whose
        observations are not read yet (unless the listing's inode numbers are not
        the real ones, as on some FUSE file systems): it is looked at again after them.
        """
        try:
            fd = os.open(path, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            self._defer(node)
            return -1
        except OSError as exc:
            self._warn_once(path, f"cannot read directory {path!r} ({exc.strerror}); skipped")
            if fresh:
                self._take_stat(node, path)
            node.listed = None
            return -1
        st = os.fstat(fd)
        if st.st_ino != node.ino and st.st_dev == node.dev and not (
            fresh and self._watched_here(node, path)
        ):
            os.close(fd)
            self._defer(node)
            return -1
        if fresh:
            node.take(st)
        racy = node.mtime >= time.time_ns() - RACY_NS
        node.listed = None if racy else node.mtime
        return fd

    def _watched_here(self, node: Node, path: str) -> bool:
        """Does ``node``'s watch (if any) belong to the directory now at ``path``?

        Asked when the directory opened at ``path`` is not the inode number its
        parent's listing showed. Watching the path again gives the handle of what is
        there now: the same handle means the watch and the listing agree.
        """
        root = self.root_of(node)
        if node.handle is None or root is None:
            return True
        try:
            handle = root.backend.watch(path, recursive=False)
        except (WatchError, OSError):
            return False
        return handle == node.handle

    def _take_stat(self, node: Node, path: str) -> None:
        st = lstat(path)
        if st is not None:
            node.take(st)

    def _list(self, node: Node) -> list[tuple[str, os.stat_result]] | None:
        """Every entry of a cached directory with its lstat, or None if unreadable."""
        fd = self._open_dir(node, node.path())
        if fd < 0:
            return None
        listed: list[tuple[str, os.stat_result]] = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        listed.append((entry.name, entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue  # removed since the listing: its event will follow
        finally:
            os.close(fd)
        return listed

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    # ------------------------------------------------------------------ renames

    def _moved_from(
        self, backend: Backend, parent: Node, name: str, cookie: int | None
    ) -> None:
        node = parent.children.pop(name, None) if self._tracked(parent, name) else None
        key = (id(backend), cookie)
        if cookie is None:
            self._adjacent[backend] = key
        self._pending.add(key, _Pending(parent, name, node, self.clock() + self.pair_wait))

    def _moved_to(
        self, backend: Backend, parent: Node, name: str, cookie: int | None, pid: int | None
    ) -> None:
        key: tuple[int, Hashable] = (id(backend), cookie)
        if cookie is None:
            key = self._adjacent.pop(backend, key)
        pending = self._pending.pop(key)
        if pending is None:
            self._reconcile(parent, name, pid)  # moved in from outside: created + contents
            return
        if pending.node is None:
            self._reconcile(parent, name, pid)
        else:
            self._move(pending.node, pending.parent, pending.name, parent, name, pid)
        self._replay(pending)

    def _renamed(self, backend: Backend, obs: Renamed) -> None:
        src = self._split(backend, obs.old_handle, obs.old_name)
        dst = self._split(backend, obs.new_handle, obs.new_name)
        for end in (src, dst):
            if end is not None and self._holding and id(end[0]) in self._holding:
                self._holding[id(end[0])].add(end[1])
        if src is None or dst is None or not src[1] or not dst[1]:
            for end in (src, dst):
                if end is not None and end[1]:
                    self._reconcile(*end)
            return
        node = src[0].children.get(src[1]) if self._tracked(*src) else None
        if node is None:
            self._reconcile(*dst)
            return
        del src[0].children[src[1]]
        self._move(node, src[0], src[1], dst[0], dst[1], None)

    def _move(
        self,
        node: Node,
        src_parent: Node,
        src_name: str,
        dst_parent: Node,
        dst_name: str,
        pid: int | None,
    ) -> None:
        """Complete a rename whose source ``node`` is already detached from ``src_parent``.

        The kernel's pairing is trusted: the observations are in the order things
        happened, and what the disk shows now is a later state whose own
        observations are still queued.
        """
        src_path = os.path.join(src_parent.path(), src_name)
        dst_tracked = self._tracked(dst_parent, dst_name)
        src_root, dst_root = self.root_of(src_parent), self.root_of(dst_parent)
        if not dst_tracked or src_root is None or dst_root is None or (
            src_root.backend is not dst_root.backend
        ):
            self._drop_detached(node, src_path, pid)
            if dst_tracked:
                self._reconcile(dst_parent, dst_name, pid)
            return
        dst_path = os.path.join(dst_parent.path(), dst_name)
        if dst_path == src_path:
            if src_name not in src_parent.children:
                src_parent.children[src_name] = node
            return
        st = lstat(dst_path)
        occupant = dst_parent.children.get(dst_name)
        if st is None or not node.same(st):
            # The disk has moved on since the rename. If a reading made after it (a
            # listing) already cached what is there now, that reading stands and the
            # moved entry is gone. Otherwise the kernel's word is taken: whatever
            # came since has observations of its own, still queued. The entry is
            # looked at again once they are read (see _check_suspects).
            other_kind = st is not None and (node.is_dir or kind_of(st) != node.kind)
            if st is not None and other_kind and occupant is not None and occupant.same(st):
                self._drop_detached(node, src_path, pid)
                return
            if st is None or other_kind:
                suspect = _Suspect(node, dst_parent, dst_name, src_parent, src_name)
                self._suspects[id(node)] = suspect
        if occupant is not None and occupant.identity() == node.identity():
            # A reading made after the rename (a listing, or an lstat for an earlier
            # observation) already found this entry at its new place. That reading
            # is newer, so it stays. A file is then reported as moved onto it; a
            # directory's subtree may have been read differently, so its old place
            # is reported deleted instead.
            if node.is_dir:
                self._drop_detached(node, src_path, pid)
            else:
                self._emit(Change.MOVED, dst_path, False, src=src_path, pid=pid)
            return
        settled: list[_Pending] = []
        if occupant is not None:
            if occupant.is_ancestor_of(src_parent):
                # The entry came out of the directory the cache still has at its
                # destination, so that directory left first (its going not read
                # yet, or its move unpaired): both are gone, the newcomer is new.
                self._drop_detached(node, src_path, pid)
                self._remove(occupant, pid=pid)
                self._reconcile(dst_parent, dst_name, pid)
                return
            # A rename replaces a file with a file, an (empty) directory with a
            # directory; anything else there had left before, unobserved so far.
            # What its removal settles is replayed once the move is reported: until
            # then the consumer has the entry at its old name, which a replay may
            # find taken since.
            self._remove(occupant, emit=occupant.is_dir != node.is_dir, pid=pid, settled=settled)
        node.parent, node.name = dst_parent, dst_name
        dst_parent.children[dst_name] = node
        self._emit(Change.MOVED, dst_path, node.is_dir, src=src_path, pid=pid)
        self._replay_settled(settled)

    def _check_suspects(self) -> None:
        """Look again at entries still where a move put them though the disk disagreed.

        What the queue said since has been applied; what it did not explain is
        reconciled: the destination, and the source if the entry is back there.
        """
        suspects = list(self._suspects.values())
        self._suspects.clear()
        for s in suspects:
            if not self._attached(s.dst_parent):
                continue
            # Even when the entry moved on or went since: it may have been the
            # wrong one (a listing newer than the queue cached another entry of the
            # name), and what the disk has at the destination was never reported.
            here = s.dst_parent.children.get(s.dst_name) is s.node
            self._reconcile(s.dst_parent, s.dst_name)
            if not here or s.src_name in s.src_parent.children or not self._attached(
                s.src_parent
            ):
                continue
            back = lstat(os.path.join(s.src_parent.path(), s.src_name))
            if back is not None and s.node.same(back):
                self._reconcile(s.src_parent, s.src_name)

    def _drop_detached(self, node: Node, path: str, pid: int | None) -> None:
        settled = self._settle_pending_below(node)
        self._emit(Change.DELETED, path, node.is_dir, pid=pid)
        owner = self.root_of(node)
        if owner is not None:
            self._forget(node, owner.backend)
        self._replay_settled(settled)

    def _hold(self, backend: Backend, obs: Observation) -> bool:
        """Queue ``obs`` behind a pending ``moved_from`` it depends on; True if queued.

        Only observations about the moved entry's old name or about its subtree wait;
        everything else goes on at once. A move of an entry the cache never had
        holds nothing back: the consumer has nothing of it to keep in order.
        """
        targets: list[tuple[Hashable, str]] = []
        partner: _Pending | None = None
        if isinstance(obs, EntryChange):
            if obs.action is Action.MOVED_TO:
                behind = self._held_partner(backend, obs.cookie)
                if behind is not None:  # keep the pair together, in order
                    behind.hold(backend, obs)
                    return True
                partner = self._partner(backend, obs.cookie)
            targets.append((obs.handle, obs.name))
        elif isinstance(obs, Renamed):
            targets += [(obs.old_handle, obs.old_name), (obs.new_handle, obs.new_name)]
        elif isinstance(obs, Gone):
            targets.append((obs.handle, ""))
        else:
            return False
        for handle, name in targets:
            node = self._handles.get(backend, {}).get(handle)
            if node is None:
                continue
            first = name.split(os.sep, 1)[0] if name else ""
            pending = self._pending.holding(node, first, partner)
            if pending is not None:
                pending.hold(backend, obs)
                return True
        return False

    def _held_partner(self, backend: Backend, cookie: int | None) -> _Pending | None:
        """The pending move behind which this ``moved_to``'s ``moved_from`` was held.

        Without a cookie, only a ``moved_from`` held just before counts.
        """
        key = (id(backend), cookie)
        for pending in self._pending.values():
            if key not in pending.held_from:
                continue
            if cookie is not None:
                return pending
            source, last = pending.held[-1]
            if source is backend and isinstance(last, EntryChange) and (
                last.action is Action.MOVED_FROM
            ):
                return pending
        return None

    def _partner(self, backend: Backend, cookie: int | None) -> _Pending | None:
        key = self._adjacent.get(backend) if cookie is None else (id(backend), cookie)
        return self._pending.get(key) if key is not None else None

    def _replay(self, pending: _Pending) -> None:
        for backend, obs in pending.held:
            self._apply_one(backend, obs)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has work: an unpaired ``moved_from``, a fallback poll,
        directories a batch deferred, or (now) a new directory left to list."""
        if self._fillable():
            return self.clock()
        due = min((p.deadline for p in self._pending.values()), default=None)
        if self._stale_due is not None:
            due = self._stale_due if due is None else min(due, self._stale_due)
        if self._fallback_due is not None:
            due = self._fallback_due if due is None else min(due, self._fallback_due)
        return due

    def expire(self, now: float | None = None) -> None:
        """Settle each ``moved_from`` whose partner did not come in time: deleted."""
        now = self.clock() if now is None else now
        known = set(self._deferred)
        for key in list(self._pending):
            pending = self._pending.get(key)  # replaying held observations may pair others
            if pending is not None and pending.deadline <= now:
                self._pending.pop(key)
                self._settle_unpaired(pending)
        self._check_suspects()
        self._finish(None)
        if self._stale_due is not None and self._stale_due <= now:
            self._stale_due = None
            if self._settle_stale():
                self._finish(None)
        if self._fallback_due is not None and self._fallback_due <= now:
            self._poll_unwatched()
            self._fallback_due = (now + self.fallback_interval) if self._unwatched else None
        if self._stale_due is None and not self._deferred.keys() <= known:
            # Deferred here (a settled move replayed what waited behind it): no batch
            # may come to schedule the look. Only new deferrals count, so one that can
            # never resolve (one inode at two paths) does not wake the watcher again.
            self._stale_due = self.clock() + self.pair_wait

    def _settle_stale(self) -> bool:
        """Let the disk decide where deferred directories' cached paths are stale.

        Called once the backends have nothing more to say: no rename still queued
        will explain a path that leads elsewhere, so the parent of the topmost
        directory on it that is not where the cache has it is diffed, which finds
        that directory by identity or reports it gone. True if anything was diffed.
        """
        tops: dict[int, Node] = {}
        for node in list(self._deferred.values()):
            if not node.is_dir or not self._attached(node) or self._path_valid(node):
                continue
            top = self._stale_top(node)
            if top.parent is not None:
                tops[id(top.parent)] = top.parent
        if not tops:
            return False
        self._diff([(parent, False) for parent in tops.values()])
        return True

    def _stale_top(self, node: Node) -> Node:
        """The topmost of ``node`` and its ancestors whose cached path does not lead to it."""
        chain = []
        up = node
        while up.parent is not None:
            chain.append(up)
            up = up.parent
        return next((n for n in reversed(chain) if not self._path_valid(n)), node)

    @staticmethod
    def _has_ancestor_in(node: Node, nodes: dict[int, Node]) -> bool:
        parent = node.parent
        while parent is not None:
            if id(parent) in nodes:
                return True
            parent = parent.parent
        return False

    def _poll_unwatched(self) -> None:
        """Diff the subtrees whose watches the OS refused; the walk retries the watches."""
        nodes = [n for n in self._unwatched.values() if self._attached(n)]
        self._unwatched = {id(n): n for n in nodes}
        tops = [n for n in nodes if not self._has_ancestor_in(n, self._unwatched)]
        self._diff([(top, True) for top in tops])

    def _settle_unpaired(self, pending: _Pending) -> None:
        node = pending.node
        if node is not None:
            path = os.path.join(pending.parent.path(), pending.name)
            st = lstat(path)
            if st is not None and node.same(st) and pending.name not in pending.parent.children:
                pending.parent.children[pending.name] = node
            else:
                self._drop_detached(node, path, None)
        self._replay(pending)

    def _settle_pending_below(self, node: Node) -> list[_Pending]:
        """Report pending moves out of ``node``'s subtree as deleted, before it goes.

        Returns them, for :meth:`_replay_settled` once the subtree is forgotten.
        """
        settled: list[_Pending] = []
        if not self._pending or not node.is_dir:
            return settled
        for key, pending in list(self._pending.items()):
            if node.is_ancestor_of(pending.parent) and self._pending.pop(key) is not None:
                settled.append(pending)
                if pending.node is not None:
                    path = os.path.join(pending.parent.path(), pending.name)
                    self._drop_detached(pending.node, path, None)
        return settled

    def _replay_settled(self, settled: list[_Pending]) -> None:
        """Apply what moves settled with a subtree held back, now that it is forgotten.

        Observations through the subtree's watches find nothing. A rename out of it
        held with them still has its other half, outside: reported as created there.
        """
        for pending in settled:
            self._replay(pending)

    def _unpend_below(self, tops: Sequence[tuple[Node, bool]]) -> None:
        """Put back the pending moves out of what a diff of ``tops`` is to read.

        While a ``moved_from`` waits, its node is out of the cache but still in the
        consumer's view; a diff would take the name for new. Put back, the entry is
        found by the diff (which pairs by identity) or by the ``moved_to`` later.
        Only moves out of directories the diff lists are put back (a top's subtree if
        ``recursive``, else the top alone): nothing else would check them.
        """
        while tops:
            below = [
                key
                for key, pending in self._pending.items()
                if any(
                    top.is_ancestor_of(pending.parent) if recursive else pending.parent is top
                    for top, recursive in tops
                )
            ]
            if not below:
                return
            for key in below:
                pending = self._pending.pop(key)  # a replay may have settled it
                if pending is None:
                    continue
                node = pending.node
                if node is not None and pending.name not in pending.parent.children:
                    pending.parent.children[pending.name] = node
                elif node is not None:
                    self._drop_detached(node, node.path(), None)
                # Replayed observations may start new pending moves below ``tops``:
                # the loop puts those back too.
                self._replay(pending)

    def _unpend_all(self) -> None:
        """Put every detached node back and forget held observations (a rescan follows)."""
        for pending in self._pending.values():
            if pending.node is not None and pending.name not in pending.parent.children:
                pending.parent.children[pending.name] = pending.node
        self._pending.clear()
        self._adjacent.clear()

    # ------------------------------------------------------------------ rescans

    def _subtree_lost(self, backend: Backend, obs: SubtreeLost) -> None:
        self._unpend_all()
        if obs.handle is None:
            tops = [r.node for r in self.roots if r.backend is backend]
        else:
            node = self._locate(backend, obs.handle, obs.name)
            tops = [node] if node is not None else []
        self.rescan(tops, notice=True)

    def _gone(self, backend: Backend, obs: Gone) -> None:
        node = self._handles.get(backend, {}).pop(obs.handle, None)
        if node is None:
            return
        node.handle = None
        root = self._root_by_top.get(id(node))
        if root is not None:
            self._check_root(root)
        elif not self._attached(node) or node.parent is None:
            return
        elif self._path_valid(node):  # still there: unmounted below, or the watch was dropped
            self.rescan([node], notice=True)
        else:
            self._reconcile(node.parent, node.name)

    def _check_root(self, root: Root) -> None:
        """A root said it was deleted or moved: end it unless it is still there."""
        try:
            st = os.stat(root.node.name)
        except OSError:
            st = None
        if st is None or not root.node.same(st):
            self._end_root(root)
        elif root.node.handle is None:
            self._watch_root(root)
            self.rescan([root.node], notice=True)

    def rescan(self, tops: Sequence[Node], *, notice: bool) -> None:
        """Diff the subtrees below ``tops`` against the disk; report, then say ``rescan``."""
        tops = [t for t in tops if self._attached(t)]
        self._diff([(t, True) for t in tops])
        if notice:
            for top in tops:
                if self._attached(top):
                    root = self._root_by_top.get(id(top))
                    self._emit(Change.RESCAN, root.path if root else top.path(), True)

    def _diff_dirty(self, dirty: list[tuple[Node, bool]]) -> None:
        tops: list[tuple[Node, bool]] = []
        for node, recursive in dirty:
            if not node.is_dir:
                if node.parent is not None:
                    self._reconcile(node.parent, node.name)
                continue
            if not any(t is node and r >= recursive for t, r in tops):
                tops.append((node, recursive))
        self._diff(tops)

    def _diff(self, tops: list[tuple[Node, bool]]) -> None:
        """Compare cached directories with the disk and report the differences.

        Entries that vanished in one place and appeared in another with the same
        identity are reported as ``moved``. Directories whose mtime is unchanged since
        they were last listed are not listed again: their cached names are stat'ed.
        """
        self._unpend_below(tops)
        diff = _Diff(self)
        missing = []
        for top, recursive in tops:
            if not self._attached(top):
                continue
            if self._verify_top(top):
                diff.walk(top, recursive)
            else:
                missing.append(top)
        diff.settle()
        # A top that is not where the cache has it is settled only now: the diff of
        # its parent (dirty in the same batch) may have found where it went.
        for top in missing:
            if self._attached(top):
                self._top_gone(top)

    def _verify_top(self, top: Node) -> bool:
        """Is ``top`` still the directory the cache says it is?"""
        root = self._root_by_top.get(id(top))
        if root is not None:
            try:
                st: os.stat_result | None = os.stat(top.name)
            except OSError:
                st = None
        else:
            st = lstat(top.path())
        if st is None or not top.same(st):
            return False
        change = top.refresh(st)
        if change == "attrib" and (root is None or root.only is None):
            self._emit(Change.ATTRIB, root.path if root else top.path(), True)
        return True

    def _top_gone(self, top: Node) -> None:
        root = self._root_by_top.get(id(top))
        if root is not None:
            self._check_root(root)
        elif top.parent is not None:
            self._reconcile(top.parent, top.name)

    # ------------------------------------------------------------------ output

    def _emit(
        self,
        kind: Change,
        path: str,
        is_dir: bool,
        *,
        src: str | None = None,
        pid: int | None = None,
    ) -> None:
        if (
            kind in (Change.MODIFIED, Change.ATTRIB, Change.ACCESSED)
            and self.out
            and self.out[-1].kind is kind
            and self.out[-1].path == path
        ):
            return  # a burst of writes to one file is one change
        self.out.append(Event(kind, path, is_dir, src, pid))

    def take(self) -> list[Event]:
        """The events produced since the last call."""
        out, self.out = self.out, []
        return out


class _Diff:
    """One rescan: walk, then settle what appeared and vanished."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.appeared: list[tuple[Node, str, os.stat_result]] = []
        self.vanished: list[Node] = []
        self.collected = 0  # how many of ``vanished`` are in ``gone``
        self.matched: set[int] = set()
        self.region: dict[tuple[int, int, str], Node] = {}
        self.gone: list[Node] = []
        self.where: dict[tuple[int, int, str], tuple[Node, str, os.stat_result]] = {}
        self.busy: set[int] = set()

    def walk(self, top: Node, recursive: bool) -> None:
        e = self.e
        root = e.root_of(top)
        if root is None:
            return
        per_dir = not root.backend.capabilities.recursive
        stack = [(top, top.depth())]
        while stack:
            node, depth = stack.pop()
            if depth >= root.max_depth:
                continue
            unwatched = per_dir and node.handle is None and node is not root.node
            if unwatched and not e._watch_dir(node, root):
                continue
            entries = self._entries(node, root)
            if entries is None:
                continue
            seen = set()
            for name, st in entries:
                seen.add(name)
                cur = node.children.get(name)
                if cur is not None and cur.same(st):
                    self.matched.add(id(cur))
                    self._refresh(cur, st)
                    if cur.is_dir and recursive:
                        stack.append((cur, depth + 1))
                    continue
                self.appeared.append((node, name, st))
                if cur is not None:
                    self.vanished.append(cur)
            for name, child in node.children.items():
                if name not in seen:
                    self.vanished.append(child)

    def _entries(self, node: Node, root: Root) -> list[tuple[str, os.stat_result]] | None:
        e = self.e
        if root.only is not None and node is root.node:
            names: Iterable[str] = sorted(root.only)
        elif node.listed is not None and node.listed == node.mtime:
            names = list(node.children)  # unchanged since listed: just stat what we know
        else:
            listed = e._list(node)
            if listed is None or not e.ignore:
                return listed
            return [(n, s) for n, s in listed if not e._ignored(root, node, n)]
        base = node.path()
        out = []
        for name in names:
            st = lstat(os.path.join(base, name))
            if st is not None:
                out.append((name, st))
        return out

    def _refresh(self, node: Node, st: os.stat_result) -> None:
        change = node.refresh(st)
        if change == "modified":
            self.e._emit(Change.MODIFIED, node.path(), node.is_dir)
        elif change == "attrib":
            self.e._emit(Change.ATTRIB, node.path(), node.is_dir)

    def settle(self) -> None:
        if not self.appeared and not self.vanished:
            return
        self._collect_gone()
        i = 0
        while i < len(self.appeared):  # grows while moved directories are diffed
            parent, name, st = self.appeared[i]
            self.where.setdefault((st.st_dev, st.st_ino, kind_of(st)), (parent, name, st))
            i += 1
        i = 0
        while i < len(self.appeared):
            self._place(*self.appeared[i])
            i += 1
        for node in self.gone:  # parents come before their children here
            if id(node) not in self.matched and self.e._attached(node):
                self.e._remove(node)

    def _collect_gone(self) -> None:
        """Take what vanished since the last call as gone, unless it turns up elsewhere."""
        while self.collected < len(self.vanished):
            for sub in self.vanished[self.collected].walk():
                self.region.setdefault(sub.identity(), sub)
                self.gone.append(sub)
            self.collected += 1

    def _place(self, parent: Node, name: str, st: os.stat_result) -> None:
        e = self.e
        if not e._attached(parent):
            return
        cur = parent.children.get(name)
        if cur is not None and cur.same(st):
            if id(cur) not in self.matched:
                self.matched.add(id(cur))
                self._refresh(cur, st)
            return
        ident = (st.st_dev, st.st_ino, kind_of(st))
        mover = self.region.get(ident)
        if mover is not None and (
            id(mover) in self.matched
            or mover is cur
            or mover.is_ancestor_of(parent)
            or not e._attached(mover)
        ):
            mover = None
        if cur is not None:
            if mover is None and cur.kind != DIR and kind_of(st) != DIR:
                self.matched.add(id(cur))
                cur.refresh(st)  # replaced by another file: new content
                e._emit(Change.MODIFIED, cur.path(), False)
                return
            self._evict(cur)
            again = parent.children.get(name)
            if again is not None:  # cached anew by observations the eviction replayed
                self.matched.add(id(again))
                return
            if mover is not None and not e._attached(mover):
                mover = None  # it was inside what had to be deleted
        if mover is not None:
            self.matched.add(id(mover))
            src = mover.path()
            if mover.parent is not None:
                mover.parent.children.pop(mover.name, None)
            mover.parent, mover.name = parent, name
            parent.children[name] = mover
            e._emit(Change.MOVED, mover.path(), mover.is_dir, src=src)
            # Same inode but new content: moved and written, or a freed inode number
            # reused at once (ext4 does). Either way the consumer must read it again.
            self._refresh(mover, st)
            if mover.is_dir:
                # Its subtree is read now, which the diff's tops did not cover: what
                # moved out of it and waits for a pair is put back first, as for them.
                e._unpend_below([(mover, True)])
                self.walk(mover, True)
                self._collect_gone()  # entries put back that are gone from the disk
                self.where.update(
                    ((s.st_dev, s.st_ino, kind_of(s)), (p, n, s))
                    for p, n, s in self.appeared
                    if (s.st_dev, s.st_ino, kind_of(s)) not in self.where
                )
            return
        if e._tracked(parent, name):
            node = e._create(parent, name, st, fill_now=True)
            if node is not None:  # always, when filled at once
                self.matched.add(id(node))

    def _evict(self, cur: Node) -> None:
        """Make room at ``cur``'s place: move it where the disk has it now, or delete it."""
        target = self.where.get(cur.identity())
        elsewhere = target is not None and (target[0] is not cur.parent or target[1] != cur.name)
        if target is not None and elsewhere and id(cur) not in self.busy:
            self.busy.add(id(cur))
            self._place(*target)
        if self.e._attached(cur):
            self.e._remove(cur)

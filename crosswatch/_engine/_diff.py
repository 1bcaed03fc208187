"""Rescans: a diff of the disk against the cache, pairing what moved by identity.

The same diff serves every loss signal (an overflow, a dirty directory, a polling
tick, a refused watch): there is one to get right, not one per backend.
"""

from __future__ import annotations

import collections
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from .._events import Change
from .._tree import Kind, Node, Stat, kind_of, lstat
from ._moves import restore
from ._roots import Root
from ._scan import Fill
from ._stale import leads_to
from ._work import DiffTops, LookAt, Notice, SettleDiff

if TYPE_CHECKING:
    from . import Engine

_Identity = tuple[int, int, Kind]


class Differ:
    """Runs diffs for the engine: what to look at, and what a diff may not touch."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def rescan(self, tops: Sequence[Node], *, notice: bool) -> None:
        """Diff the subtrees below ``tops`` against the disk; report, then say ``rescan``."""
        e = self.e
        tops = [t for t in tops if e.roots.attached(t)]
        self.diff([(t, True) for t in tops])
        if notice and tops:
            e.work.spawn(Notice(tops))

    def diff_dirty(self, dirty: list[tuple[Node, bool]]) -> None:
        """Diff what ``DirDirty`` observations pointed at (entries: reconciled)."""
        tops: list[tuple[Node, bool]] = []
        for node, recursive in dirty:
            if not node.is_dir:
                if node.parent is not None:
                    self.e.work.spawn(LookAt(node.parent, node.name))
                continue
            if not any(t is node and r >= recursive for t, r in tops):
                tops.append((node, recursive))
        self.diff(tops)

    def diff(self, tops: list[tuple[Node, bool]]) -> None:
        """Diff ``tops`` (each with its subtree if its flag is set), as a task."""
        if tops:
            self.e.work.spawn(DiffTops(tops))

    def refilter(self, top: Node) -> None:
        """Diff ``top``'s subtree with every directory in it listed again: what the
        filters leave out of it changed (a ``.gitignore``, or a path the patterns
        match), not the directories."""
        _unlist(top)
        self.diff([(top, True)])

    def diff_now(self, tops: list[tuple[Node, bool]]) -> None:
        """Compare cached directories with the disk and report the differences.

        Entries that vanished in one place and appeared in another with the same
        identity are reported as ``moved``. Directories whose mtime is unchanged since
        they were last listed are not listed again: their cached names are stat'ed.
        What removals release (observations held behind moves) is replayed after the
        diff: the diff leaves the cache as the disk is, and they are checked against it.
        """
        e = self.e
        diff = Diff(e)
        missing = []
        for top, recursive in tops:
            if not e.roots.attached(top):
                continue
            if self._verify_top(top):
                diff.walk(top, recursive)
            else:
                missing.append(top)
        self.settle(diff, missing)

    def settle(self, diff: Diff, missing: list[Node]) -> None:
        """Report what ``diff`` found, in pieces the consumer's bound allows."""
        if not diff.settle():
            self.e.work.pause(SettleDiff(diff, missing))
            return
        # A top that is not where the cache has it is settled only now: the diff of
        # its parent (dirty in the same batch) may have found where it went.
        for top in missing:
            if self.e.roots.attached(top):
                self._top_gone(top)

    def unpend_below(self, tops: Sequence[tuple[Node, bool]]) -> bool:
        """Put back the pending moves out of what a diff of ``tops`` is to read.

        While a ``moved_from`` waits, its node is out of the cache but still in the
        consumer's view; a diff would take the name for new. Put back, the entry is
        found by the diff (which pairs by identity) or by the ``moved_to`` later.
        Only moves out of directories the diff lists are put back (a top's subtree if
        ``recursive``, else the top alone): nothing else would check them. What they
        held is replayed; True if there were any.
        """
        e = self.e
        moves = e.moves
        below = moves.below(tops) if moves else []
        for key in below:
            pending = moves.pop(key)
            if pending is None:
                continue
            node = pending.node
            if node is not None and pending.name not in pending.parent.children:
                restore([pending])
            elif node is not None:
                e.renames.drop_detached(node, node.path(), None)
            e.renames.replay(pending)
        return bool(below)

    def _verify_top(self, top: Node) -> bool:
        """Is ``top`` still the directory the cache says it is?"""
        e = self.e
        root = e.roots.at_top(top)
        if root is not None and not e.rules.check_links(root):
            return False
        if root is not None:
            try:
                st: Stat | None = os.stat(top.name)
            except OSError:
                st = None
        else:
            st = lstat(top.path())
        if st is None or not top.same(st):
            return False
        change = top.refresh(st)
        if change is Change.ATTRIB and (root is None or root.only is None):
            e.out.emit(Change.ATTRIB, root.path if root else top.path(), True)
        return True

    def _top_gone(self, top: Node) -> None:
        e = self.e
        root = e.roots.at_top(top)
        if root is not None:
            e.rules.check_root(root)
        elif top.parent is not None:
            e.rules.reconcile(top.parent, top.name)


class Diff:
    """One rescan: walk, then settle what appeared and vanished.

    Settling reports without bound (a directory of 200,000 new files is 200,000
    events), so it goes in pieces: once the consumer is full it stops between two
    entries, and goes on from there (see ``Worklist.pause``). The walk reports
    only what it refreshed, kept until settling begins.
    """

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.refreshed: list[tuple[Node, Change]] | None = []
        """What the walk found changed in place, until it is reported (then None)."""
        self.fills: collections.deque[Fill] = collections.deque()
        """New directories whose subtrees are being read in, oldest first."""
        self._reported = 0
        self._started = False
        self._placed = 0
        self._removed = 0
        self.appeared: list[tuple[Node, str, Stat]] = []
        self.vanished: list[Node] = []
        self.collected = 0  # how many of ``vanished`` are in ``gone``
        self.matched: set[int] = set()
        self.region: dict[_Identity, Node] = {}
        self.gone: list[Node] = []
        self.where: dict[_Identity, tuple[Node, str, Stat]] = {}
        self.busy: set[int] = set()
        self._cut: Node | None = None
        """The directory whose reading stopped where its path led elsewhere."""

    def walk(self, top: Node, recursive: bool) -> None:
        e = self.e
        root = e.roots.of(top)
        if root is None:
            return
        per_dir = not root.backend.capabilities.recursive
        stack = [(top, top.depth())]
        while stack:
            node, depth = stack.pop()
            if depth >= root.max_depth:
                continue
            unwatched = per_dir and node.handle is None and node is not root.node
            if unwatched and not e.watches.watch_dir(node, root):
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
            if self._cut is node:  # its path led elsewhere: what is missing is not gone
                self._cut = None
                continue
            for name, child in node.children.items():
                if name not in seen:
                    self.vanished.append(child)

    def _entries(self, node: Node, root: Root) -> Iterable[tuple[str, Stat]] | None:
        """A directory's entries with their stats, as they are read: a rescan of
        200,000 unchanged files never holds them all."""
        e = self.e
        if root.only is not None and node is root.node:
            return self._known(node, sorted(root.only))
        if node.listed is not None and node.listed == node.mtime:
            return self._known(node, list(node.children))  # unchanged: stat what we know
        listed = e.scanner.list_stats(node)
        roots = e.roots
        if listed is None or not roots.filters:
            return listed
        if roots.gitignores is not None:  # its .gitignore first: it speaks for the rest
            listed = iter(entries := list(listed))
            roots.listing(root, node, [n for n, _ in entries])
        left_out = roots.left_out(root, node)
        return ((n, s) for n, s in listed if not left_out(n, _is_dir(s)))

    def _known(self, node: Node, names: list[str]) -> Iterator[tuple[str, Stat]]:
        """The names the cache knows in ``node``, stated by path.

        A name missing may mean the path leads elsewhere now (an ancestor renamed
        while a slow scan went on): then what is missing went with it, and is looked
        for once the path is trusted (``_cut``), not reported deleted.
        """
        base = node.path()
        trusted = False  # the path was checked once a name was missing
        for name in names:
            st = lstat(os.path.join(base, name))
            if st is not None:
                yield name, st
            elif not trusted and not leads_to(node, base):
                self.e.stale.defer(node)
                self._cut = node
                return
            else:
                trusted = True

    def _refresh(self, node: Node, st: Stat) -> None:
        change = node.refresh(st)
        if change is None:
            return
        if self.refreshed is not None:
            self.refreshed.append((node, change))
        else:
            self.e.out.emit(change, node.path(), node.is_dir)

    def settle(self) -> bool:
        """Report and cache what the walk found; False if it stopped for room."""
        e = self.e
        full = e.work.full
        refreshed = self.refreshed
        if refreshed is not None:
            while self._reported < len(refreshed):
                if full():
                    return False
                node, change = refreshed[self._reported]
                self._reported += 1
                e.out.emit(change, node.path(), node.is_dir)
            self.refreshed = None
        if not self._started:
            self._started = True
            self._collect_gone()
            self._index()
        appeared, gone = self.appeared, self.gone
        while self.fills or self._placed < len(appeared):
            if full():
                return False
            if self.fills:
                if not e.scanner.fill_more(self.fills[0]):
                    return False
                self.fills.popleft()
                continue
            self._placed += 1
            self._place(*appeared[self._placed - 1])
        while self._removed < len(gone):  # parents come before their children here
            if full():
                return False
            node = gone[self._removed]
            self._removed += 1
            if id(node) not in self.matched and e.roots.attached(node):
                e.rules.remove(node)
        return True

    def _collect_gone(self) -> None:
        """Take what vanished since the last call as gone, unless it turns up elsewhere."""
        while self.collected < len(self.vanished):
            for sub in self.vanished[self.collected].walk():
                self.region.setdefault(sub.identity(), sub)
                self.gone.append(sub)
            self.collected += 1

    def _place(self, parent: Node, name: str, st: Stat) -> None:
        e = self.e
        attached = e.roots.attached
        if not attached(parent):
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
            or not attached(mover)
        ):
            mover = None
        if cur is not None:
            if mover is None and cur.kind is not Kind.DIR and kind_of(st) is not Kind.DIR:
                self.matched.add(id(cur))
                cur.refresh(st)  # replaced by another file: new content
                e.out.emit(Change.MODIFIED, cur.path(), False, replaced=True)
                return
            self._evict(cur)
            again = parent.children.get(name)
            if again is not None:  # placed here by the evictions that made room
                self.matched.add(id(again))
                return
            if mover is not None and not attached(mover):
                mover = None  # it was inside what had to be deleted
        if mover is not None:
            self._move(mover, parent, name, st)
            return
        if e.roots.tracked(parent, name):
            node = e.rules.create(parent, name, st, rescan=True)
            if node is not None:  # always, for a rescan's entry
                self.matched.add(id(node))
                root = e.roots.of(node) if node.is_dir else None
                if root is not None:
                    self.fills.append(e.scanner.start_fill(node, root, emit=True))

    def _move(self, mover: Node, parent: Node, name: str, st: Stat) -> None:
        e = self.e
        self.matched.add(id(mover))
        src = mover.path()
        if mover.parent is not None:
            mover.parent.children.pop(mover.name)
        mover.parent, mover.name = parent, name
        parent.children[name] = mover
        e.out.emit(Change.MOVED, mover.path(), mover.is_dir, src=src)
        if mover.is_dir and e.roots.by_path:
            _unlist(mover)  # the filters may say otherwise of its subtree at its new path
        # Same inode but new content: moved and written, or a freed inode number
        # reused at once (ext4 does). Either way the consumer must read it again.
        self._refresh(mover, st)
        if mover.is_dir:
            # Its subtree is read now, which the diff's tops did not cover: what
            # moved out of it and waits for a pair is put back first, as for them
            # (what those moves held is replayed after the diff).
            e.differ.unpend_below([(mover, True)])
            self.walk(mover, True)
            self._collect_gone()  # entries put back that are gone from the disk
            self._index()

    def _index(self) -> None:
        """Where each identity that vanished appeared (its first place, if several).

        Only what vanished is ever looked up (see ``_evict``): a rescan that finds
        200,000 new files indexes none of them.
        """
        region, where = self.region, self.where
        for item in self.appeared:
            st = item[2]
            key = (st.st_dev, st.st_ino, kind_of(st))
            if key in region and key not in where:
                where[key] = item

    def _evict(self, cur: Node) -> None:
        """Make room at ``cur``'s place: move it where the disk has it now, or delete it."""
        target = self.where.get(cur.identity())
        elsewhere = target is not None and (target[0] is not cur.parent or target[1] != cur.name)
        if target is not None and elsewhere and id(cur) not in self.busy:
            self.busy.add(id(cur))
            self._place(*target)
        if self.e.roots.attached(cur):
            self.e.rules.remove(cur)


def _is_dir(st: Stat) -> Callable[[], bool]:
    return lambda: stat.S_ISDIR(st.st_mode)


def _unlist(top: Node) -> None:
    """Have a diff list ``top`` and every directory below it, not trust their mtimes."""
    for node in top.walk(dirs_only=True):
        node.listed = None

"""The rules that apply one observation to the cache and report the difference.

Every rule is idempotent: ``created`` for an entry already cached with the same
identity does nothing, ``deleted`` of an unknown entry does nothing. An observation
is a hint, checked against the disk (``lstat``, compared by identity), so stale or
replayed observations cannot make the cache drift.
"""

from __future__ import annotations

import os
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from .._backend import (
    Action,
    Backend,
    EntryChange,
    Gone,
    MountsChanged,
    Observation,
    Renamed,
    SubtreeLost,
)
from .._events import Change
from .._tree import Kind, Node, Stat, kind_of, lstat
from ._mounts import mounted
from ._moves import restore
from ._roots import Root
from ._scan import TICK_NS
from ._spellings import GONE
from ._stale import leads_to
from ._work import LookAt

if TYPE_CHECKING:
    from . import Engine

_ACCESS = {
    Action.OPENED: Change.OPENED,
    Action.ACCESSED: Change.ACCESSED,
    Action.CLOSED_WRITE: Change.CLOSED_WRITE,
    Action.CLOSED_NOWRITE: Change.CLOSED_NOWRITE,
}


class Rules:
    """Applies observations: entries created, changed, deleted; roots and watches ending."""

    def __init__(self, engine: Engine, *, access: bool) -> None:
        self.e = engine
        self.access = access

    def apply_one(self, backend: Backend, obs: Observation) -> None:
        e = self.e
        if e.fates.observed(backend, obs):
            return
        if e.moves and e.renames.hold(backend, obs):
            return
        if isinstance(obs, EntryChange):
            self._entry_change(backend, obs)
        elif isinstance(obs, Renamed):
            e.renames.renamed(backend, obs)
        elif isinstance(obs, SubtreeLost):
            self._subtree_lost(backend, obs)
        elif isinstance(obs, Gone):
            self._gone(backend, obs)
        elif isinstance(obs, MountsChanged):
            self._mounts_changed(backend, obs)

    # ------------------------------------------------------------ entries

    def _entry_change(self, backend: Backend, obs: EntryChange) -> None:
        e = self.e
        split = e.roots.split(backend, obs.handle, obs.name)
        if split is None:
            return
        parent, name = split
        action = obs.action
        if not name:  # the watched directory itself, seen from its own watch
            e.newdirs.touch(parent, name)
            self._self_change(backend, parent, action, obs.pid)
            return
        if self.folds(parent) and name not in parent.children:
            name = self._spelling(parent, name, action)
        e.newdirs.touch(parent, name)
        if action is Action.MOVED_FROM:
            e.renames.moved_from(backend, parent, name, obs.cookie)
        elif action is Action.MOVED_TO:
            e.renames.moved_to(backend, parent, name, obs.cookie, obs.pid)
        elif action in (Action.MODIFIED, Action.ATTRIB):
            node = parent.children.get(name)
            if node is None or not e.roots.tracked(parent, name):
                self.reconcile(parent, name, obs.pid)
            elif action is Action.ATTRIB:
                e.out.emit(Change.ATTRIB, node.path(), node.is_dir, pid=obs.pid)
            elif not node.is_dir:
                # No stat: a write whose event is lost later must still show in a rescan.
                node.reported_modified(time.time_ns() - TICK_NS)
                e.out.emit(Change.MODIFIED, node.path(), False, pid=obs.pid)
        elif action is Action.CREATED or action is Action.DELETED:  # look at what is there now
            self.reconcile(parent, name, obs.pid, created=action is Action.CREATED)
        else:  # access
            node = parent.children.get(name)
            if self.access and node is not None and (
                not e.scanner.own_read(node, False, action) and e.roots.tracked(parent, name)
            ):
                e.out.emit(_ACCESS[action], node.path(), node.is_dir, pid=obs.pid)

    def _self_change(self, backend: Backend, node: Node, action: Action, pid: int | None) -> None:
        """Only a root reports on itself; for any other directory its parent's watch
        does, except that it is deleted: then it is gone, wherever the cache has it.
        (Or unless the backend says that parents never report a directory's own
        changes.)"""
        e = self.e
        root = e.roots.at_top(node)
        if root is None and action is Action.ATTRIB:
            parent = node.parent
            if (
                backend.capabilities.dirs_report_themselves
                and parent is not None
                and e.roots.attached(node)
                and e.roots.tracked(parent, node.name)
            ):
                e.out.emit(Change.ATTRIB, node.path(), True, pid=pid)
            return
        if root is None and action is Action.DELETED and e.roots.attached(node):
            # Its parent's observation may find the cached path stale (an ancestor
            # renamed, not read yet) and only defer a look; this one is certain.
            # Its place is looked at again: a rename the kernel paired with another
            # entry of that name may have put it there, and the disk decides.
            parent, name = node.parent, node.name
            self.remove(node, pid=pid)
            if parent is not None:
                e.work.spawn(LookAt(parent, name))
            return
        if root is None:
            return
        if action in (Action.DELETED, Action.MOVED_FROM):
            self.check_root(root)  # a file root's directory too
        elif root.only is not None:
            return
        elif action is Action.ATTRIB:
            e.out.emit(Change.ATTRIB, root.path, True, pid=pid)
        elif action in _ACCESS and self.access and not e.scanner.own_read(node, True, action):
            e.out.emit(_ACCESS[action], root.path, True, pid=pid)

    def reconcile(
        self, parent: Node, name: str, pid: int | None = None, *, created: bool = False
    ) -> None:
        """Make the cache agree with the disk for one entry, reporting the difference.

        ``created``: an observation says an entry appeared here. If the cached entry
        is gone from the disk, it went after that (an earlier reading already found
        the new entry): its going has an observation of its own, still queued, which
        tells a rename from a deletion.
        """
        e = self.e
        if not e.roots.tracked(parent, name):
            return
        base = parent.path()
        path = os.path.join(base, name)
        st = lstat(path)
        if not leads_to(parent, base):
            e.stale.defer(parent)
            return
        cur = parent.children.get(name)
        if cur is None:
            if st is None:
                return
            if self.folds(parent):
                stored = e.spellings.stored(parent, base, name, fresh=True)
                if stored == GONE:
                    return  # gone since the lstat: its own observation follows
                if stored is not None and stored != name:  # another spelling
                    e.work.spawn(LookAt(parent, stored, pid))
                    return
                old = e.spellings.cached(parent, name)
                respelled = parent.children.get(old) if old is not None else None
                if respelled is not None and respelled.same(st):
                    # The cached entry, respelled by a rename of case only whose
                    # observations did not say so: it moved.
                    del parent.children[respelled.name]
                    e.renames.move(respelled, parent, respelled.name, parent, name, pid)
                    return
                if respelled is not None and stored == name:
                    # Another entry holds its name, spelled otherwise (a rename onto
                    # it): the cached one is gone, and no observation will say so.
                    self.remove(respelled, pid=pid)
            if e.moves:
                if e.renames.wait_for_old(parent, name):
                    return
                key = e.moves.key_of(st.st_dev, st.st_ino)
                found = e.moves.get(key) if key is not None else None
                if found is not None and found.node is not None and found.node.same(st):
                    assert key is not None
                    e.renames.adopt(parent, name, key)  # renamed in before it was watched
                    return
            self.create(parent, name, st, pid, path=path)
        elif st is None:
            if not created:
                self.remove(cur, pid=pid, path=path)
        elif cur.same(st):
            return
        elif cur.kind is not Kind.DIR and kind_of(st) is not Kind.DIR and not (
            self.folds(parent) and self._respelled(parent, base, name)
        ):
            cur.refresh(st)  # replaced by another file (atomic save): new content
            e.out.emit(Change.MODIFIED, path, False, pid=pid, replaced=True)
        else:
            # Removing it may replay observations held behind moves out of it, and
            # those may cache what is here now: look again after them, do not just
            # create. (On a folding file system, what is here now may be spelled
            # otherwise: the listing's spelling is looked at.)
            self.remove(cur, pid=pid)
            folds = self.folds(parent)
            stored = e.spellings.stored(parent, base, name, fresh=True) if folds else None
            again = name if stored is None or stored == GONE else stored
            e.work.spawn(LookAt(parent, again, pid))

    def _spelling(self, parent: Node, name: str, action: Action) -> str:
        """On a file system that folds names, the name the cache knows for the entry
        an observation names otherwise (``A`` for a cached ``a``).

        An entry that left (``deleted``, ``moved_from``) is the cached one its name
        folds to (``unlink("a")`` of a cached ``A``): the disk may have another
        entry under that name by now, or the same one respelled by a rename of case
        only. Otherwise a name the disk has is taken as the directory's listing
        spells it; one it lacks is left as it is.
        """
        e = self.e
        if action in (Action.DELETED, Action.MOVED_FROM):
            cached = e.spellings.cached(parent, name)
            if cached is not None:
                return cached
        stored = e.spellings.stored(parent, parent.path(), name)
        if stored is None or stored == GONE:  # (None: a stale path, for its own rules)
            return name
        return stored

    def _respelled(self, parent: Node, base: str, name: str) -> bool:
        """Is the entry now at ``name`` spelled otherwise in its directory's listing
        (another entry took the place of the cached one, under another spelling)?"""
        stored = self.e.spellings.stored(parent, base, name, fresh=True)
        return stored is not None and stored != GONE and stored != name

    def folds(self, parent: Node) -> bool:
        """Is ``parent`` on a root whose file system folds names (see Root.folds)?"""
        e = self.e
        if not e.roots.any_folds:
            return False
        root = e.roots.of(parent)
        return root is not None and root.folds

    def create(
        self,
        parent: Node,
        name: str,
        st: Stat,
        pid: int | None = None,
        *,
        rescan: bool = False,
        path: str | None = None,
    ) -> Node | None:
        """Cache and report a new entry; a directory's contents follow.

        ``path``: the entry's path, when the caller has it already. None if it was
        put off: a cached directory renamed here by observations not read yet.

        ``rescan``: a rescan's entry; a directory's subtree is the rescan's to read
        in, at once (see Diff). Otherwise a new directory is watched at once, so
        that what is renamed into it from now on comes with its ``moved_to``, and
        listed at once
        (see NewDirs): an entry renamed into it before it was watched (no ``moved_to``
        is ever reported) then meets its ``moved_from``, read later in the same
        batch, and is reported as the move it was. A watch that turns out to be a
        cached directory's may make it no new entry at all (see Stale.park).
        """
        e = self.e
        if path is None:
            path = os.path.join(parent.path(), name)
        is_dir = kind_of(st) is Kind.DIR
        root = e.roots.of(parent) if is_dir else None
        handle: Hashable | None = None
        if not rescan and root is not None and (
            not root.backend.capabilities.recursive and parent.depth() + 1 < root.max_depth
        ):
            handle = e.watches.watch_early(path, root)
            owner = e.roots.node_of(root.backend, handle) if handle is not None else None
            if owner is not None:  # this is that directory, renamed here
                if e.stale.park(owner, parent, name, st):
                    return None
                # The rest of the batch must still reach it through the handle.
                handle = None  # left to the listing (see NewDirs.fill)
        node = Node(name, parent, st)
        parent.children[name] = node
        e.out.emit(Change.CREATED, path, node.is_dir, pid=pid)
        if is_dir and root is not None and not rescan:
            if handle is not None:
                e.roots.bind(node, handle, root.backend)
                e.newdirs.list_early(node, root)
            e.newdirs.add(node)
        return node

    def remove(
        self,
        node: Node,
        *,
        emit: bool = True,
        pid: int | None = None,
        path: str | None = None,
    ) -> None:
        """Drop ``node`` and its subtree from the cache, releasing their watches.

        ``path``: the node's path, when the caller has it already. What moves out of
        the subtree held back is replayed once the subtree is forgotten.
        """
        e = self.e
        root = e.roots.at_top(node)
        if root is not None:
            self.end_root(root)
            return
        below = e.renames.settle_below(node)
        if emit:
            e.out.emit(Change.DELETED, node.path() if path is None else path, node.is_dir, pid=pid)
        parent = node.parent
        if parent is not None and parent.children.get(node.name) is node:
            del parent.children[node.name]
        owner = e.roots.of(node)
        if owner is not None:
            self.forget(node, owner.backend)
        e.renames.replay_settled(below)

    def forget(self, node: Node, backend: Backend) -> None:
        """Release the watches of ``node``'s subtree (only directories hold them)."""
        e = self.e
        for sub in node.walk(dirs_only=True):
            e.watches.forget(sub)
            e.scanner.forget_reads(sub)
            handle = e.roots.unbind(sub, backend)
            if handle is not None:
                try:
                    backend.unwatch(handle)
                except OSError:
                    pass

    # ------------------------------------------------------------ roots and watches

    def end_root(self, root: Root) -> None:
        """The root is gone: report it deleted and forget everything below it."""
        e = self.e
        settled = e.renames.settle_below(root.node)
        if root.only is None:
            e.out.emit(Change.DELETED, root.path, True)
        else:
            for name in sorted(root.only):
                child = root.node.children.get(name)
                if child is not None:
                    e.out.emit(Change.DELETED, child.path(), child.is_dir)
        self.forget(root.node, root.backend)
        e.roots.drop(root)
        e.fates.let_go(root)
        e.renames.replay_settled(settled)

    def check_root(self, root: Root) -> None:
        """A root said it was deleted or moved: end it unless it is still there."""
        if not self.check_links(root):
            return
        try:
            st = os.stat(root.node.name)
        except OSError:
            st = None
        if st is None or not root.node.same(st):
            self.end_root(root)
        elif root.node.handle is None:
            self.e.watches.watch_root(root)
            self.e.differ.rescan([root.node], notice=True)

    def check_links(self, root: Root) -> bool:
        """Let go of each file given through a symbolic link that leads elsewhere now.

        It is reported deleted under the path given; the root ends with the last of
        its files. False if it ended.
        """
        e = self.e
        for path, name, last in e.fates.changed_links(root):
            child = root.node.children.get(name)
            if child is not None:
                e.out.emit(Change.DELETED, path, child.is_dir, exact=True)
            if not last:  # shown under another path given, or as it is
                continue
            assert root.only is not None
            root.only.discard(name)
            root.node.children.pop(name)
            if not root.only:
                self.end_root(root)
                return False
        return True

    def _subtree_lost(self, backend: Backend, obs: SubtreeLost) -> None:
        e = self.e
        # Every detached node goes back and held observations are forgotten: the
        # rescan that follows finds what they would have told.
        restore(e.moves.clear())
        if obs.handle is None:
            tops = [r.node for r in e.roots.all if r.backend is backend]
        else:
            node = e.roots.locate(backend, obs.handle, obs.name)
            tops = [node] if node is not None else []
        e.differ.rescan(tops, notice=True)

    def _mounts_changed(self, backend: Backend, obs: MountsChanged) -> None:
        e = self.e
        inside, tops = mounted(e.roots, backend, obs.points)
        if inside:
            restore(e.moves.clear())  # as for SubtreeLost: the rescan finds what they held
            e.differ.rescan(inside, notice=True)
        e.differ.diff_dirty([(top, False) for top in tops])

    def _gone(self, backend: Backend, obs: Gone) -> None:
        e = self.e
        node = e.roots.release(backend, obs.handle)
        if node is None:
            return
        root = e.roots.at_top(node)
        if root is not None:
            self.check_root(root)
        elif not e.roots.attached(node) or node.parent is None:
            return
        elif leads_to(node):  # still there: unmounted below, or the watch was dropped
            e.differ.rescan([node], notice=True)
        else:
            self.reconcile(node.parent, node.name)

"""The rename rules: pairing halves, holding back what depends on a pending move, moving.

The kernel's pairing of a rename is trusted: observations are in the order things
happened, and what the disk shows when one is read is a later state whose own
observations are still queued. A backend that folds later changes into earlier
events (``Capabilities.merges_later``) breaks the second half: there, both names
of a rename are looked at again once the queue is read.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from operator import attrgetter
from typing import TYPE_CHECKING

from .._backend import Action, Backend, EntryChange, Gone, Observation, Renamed
from .._events import Change
from .._tree import Node, Stat, kind_of, lstat
from ._moves import Key, Pending
from ._spellings import Spellings
from ._stale import Suspect
from ._work import CheckSuspect, LookAgain, LookAt, replay

if TYPE_CHECKING:
    from . import Engine


class Renames:
    """Applies ``moved_from``/``moved_to``/``Renamed`` and settles pending moves."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    # ------------------------------------------------------------ holding back

    def hold(self, backend: Backend, obs: Observation) -> bool:
        """Queue ``obs`` behind a pending ``moved_from`` it depends on; True if queued.

        Only observations about the moved entry's old name or about its subtree wait;
        everything else goes on at once. A move of an entry the cache never had
        holds nothing back: the consumer has nothing of it to keep in order.
        """
        moves = self.e.moves
        targets: list[tuple[Hashable, str]] = []
        partner: Pending | None = None
        if isinstance(obs, EntryChange):
            if obs.action is Action.MOVED_TO:
                behind = moves.held_partner(backend, obs.cookie)
                if behind is not None:  # keep the pair together, in order
                    moves.hold(behind, backend, obs)
                    return True
                partner = moves.partner(backend, obs.cookie)
            targets.append((obs.handle, obs.name))
        elif isinstance(obs, Renamed):
            targets += [(obs.old_handle, obs.old_name), (obs.new_handle, obs.new_name)]
        elif isinstance(obs, Gone):
            targets.append((obs.handle, ""))
        else:
            return False
        places: list[tuple[Node, str]] = []
        for handle, name in targets:
            node = self.e.roots.node_of(backend, handle)
            if node is not None:
                places.append((node, name.split(os.sep, 1)[0] if name else ""))
        found = [p for node, first in places if (p := moves.holding(node, first, partner))]
        if not found:
            return False
        moves.hold(min(found, key=attrgetter("seq")), backend, obs, places)
        return True

    def wait_for_old(self, parent: Node, name: str) -> bool:
        """Hold back reporting a new entry at ``name`` while the old one's move waits.

        The entry that had the name left with a ``moved_from`` whose other half has
        not come: the consumer still has it there, so what took its place (new, or
        moved in) is looked at once that move is settled (moved or deleted); reported
        first, it would be taken for the old entry's move or deletion. True if held back.
        """
        e = self.e
        root = e.roots.of(parent)
        if root is None or parent.handle is None:
            return False
        pending = e.moves.at(parent, name)
        if pending is None:
            return False
        observed = EntryChange(parent.handle, name, Action.CREATED, False)
        e.moves.hold(pending, root.backend, observed, [(parent, name)])
        return True

    def replay(self, pending: Pending) -> None:
        """Apply what ``pending`` held back, once the running rule is done."""
        replay(self.e, pending)

    # ------------------------------------------------------------ the two halves

    def moved_from(self, backend: Backend, parent: Node, name: str, cookie: int | None) -> None:
        e = self.e
        unpaired = e.moves.displaced(backend, cookie)
        if unpaired is not None:
            self.settle_unpaired(unpaired)
        node = parent.children.pop(name) if e.roots.tracked(parent, name) else None
        e.moves.start(backend, cookie, parent, name, node, e.clock() + e.pair_wait)

    def moved_to(
        self, backend: Backend, parent: Node, name: str, cookie: int | None, pid: int | None
    ) -> None:
        e = self.e
        pending = e.moves.claim(backend, cookie)
        if pending is None:
            e.rules.reconcile(parent, name, pid)  # moved in from outside: created + contents
            return
        if pending.node is None:
            e.rules.reconcile(parent, name, pid)
        else:
            self.move(pending.node, pending.parent, pending.name, parent, name, pid)
        self.replay(pending)

    def renamed(self, backend: Backend, obs: Renamed) -> None:
        """A rename the backend paired itself: both ends in one observation."""
        e = self.e
        src_at = e.roots.split_to(backend, obs.old_handle, obs.old_name)
        dst_at = e.roots.split_to(backend, obs.new_handle, obs.new_name)
        src = None if src_at is None else src_at[:2]
        dst = None if dst_at is None else dst_at[:2]
        for end in (src, dst):
            if end is not None:
                e.newdirs.touch(*end)
        # An end below a directory the cache lacks is not the entry: each end is only
        # looked at (the directory is then listed with what came into it).
        whole = src_at is not None and src_at[2] and dst_at is not None and dst_at[2]
        if src is None or dst is None or not src[1] or not dst[1] or not whole:
            for end in (src, dst):
                if end is not None and end[1]:
                    e.work.spawn(LookAt(*end))
            return
        if backend.capabilities.merges_later:
            # A change made to either name after the rename may have been folded into
            # an event before it: nothing later will tell of it.
            e.work.after_read(LookAgain(*src, obs.pid))
            e.work.after_read(LookAgain(*dst, obs.pid))
        node = src[0].children.get(src[1]) if e.roots.tracked(*src) else None
        if node is None:
            e.rules.reconcile(*dst, obs.pid)
            return
        del src[0].children[src[1]]
        self.move(node, src[0], src[1], dst[0], dst[1], obs.pid)

    # ------------------------------------------------------------ moving

    def move(
        self,
        node: Node,
        src_parent: Node,
        src_name: str,
        dst_parent: Node,
        dst_name: str,
        pid: int | None,
    ) -> None:
        """Complete a rename whose source ``node`` is already detached from ``src_parent``."""
        e = self.e
        rules = e.rules
        src_path = os.path.join(src_parent.path(), src_name)
        dst_tracked = e.roots.tracked(dst_parent, dst_name)
        src_root, dst_root = e.roots.of(src_parent), e.roots.of(dst_parent)
        if not dst_tracked or src_root is None or dst_root is None or (
            src_root.backend is not dst_root.backend
        ):
            self.drop_detached(node, src_path, pid)
            if dst_tracked:
                e.work.spawn(LookAt(dst_parent, dst_name, pid))
            return
        dst_path = os.path.join(dst_parent.path(), dst_name)
        if dst_path == src_path:
            if src_name not in src_parent.children:
                src_parent.children[src_name] = node
            return
        st = lstat(dst_path)
        occupant = self._occupant(dst_parent, dst_name)
        # On a file system that folds names, the occupant may be spelled otherwise:
        # its path is not the one the move names, so its going is reported.
        respelled = occupant is not None and occupant.name != dst_name
        if st is None or not node.same(st):
            # The disk has moved on since the rename. If a reading made after it (a
            # listing) already cached what is there now, that reading stands and the
            # moved entry is gone. Otherwise the kernel's word is taken: whatever
            # came since has observations of its own, still queued. The entry is
            # looked at again once they are read (a CheckSuspect task).
            other_kind = st is not None and (node.is_dir or kind_of(st) is not node.kind)
            if st is not None and other_kind and occupant is not None and occupant.same(st):
                self.drop_detached(node, src_path, pid)
                return
            if st is None or other_kind:
                suspect = Suspect(node, dst_parent, dst_name, src_parent, src_name)
                e.work.after_read(CheckSuspect(suspect))
        if occupant is not None and occupant.identity() == node.identity():
            # A reading made after the rename (a listing, or an lstat for an earlier
            # observation) already found this entry at its new place. That reading
            # is newer, so it stays. A file is then reported as moved onto it; a
            # directory's subtree may have been read differently, so its old place
            # is reported deleted instead.
            if node.is_dir:
                self.drop_detached(node, src_path, pid)
            else:  # (under the reading's spelling, if it differs)
                e.out.emit(Change.MOVED, occupant.path(), False, src=src_path, pid=pid)
            return
        if occupant is not None:
            if occupant.is_ancestor_of(src_parent):
                # The entry came out of the directory the cache still has at its
                # destination, so that directory left first (its going not read
                # yet, or its move unpaired): both are gone, the newcomer is new.
                self.drop_detached(node, src_path, pid)
                rules.remove(occupant, pid=pid)
                e.work.spawn(LookAt(dst_parent, dst_name, pid))
                return
            # A rename replaces a file with a file, an (empty) directory with a
            # directory; anything else there had left before, unobserved so far.
            # (What its removal settles is replayed once the move is reported, as
            # all replays are: until then the consumer has the entry at its old
            # name, which a replay may find taken since.)
            rules.remove(occupant, emit=occupant.is_dir != node.is_dir or respelled, pid=pid)
        node.parent, node.name = dst_parent, dst_name
        dst_parent.children[dst_name] = node
        # Whether an occupant of the same kind went without a word (for coalescing).
        held = occupant is not None and occupant.is_dir == node.is_dir and not respelled
        e.out.emit(Change.MOVED, dst_path, node.is_dir, src=src_path, pid=pid, held=held)
        if node.is_dir and e.roots.by_path:
            e.differ.refilter(node)  # the filters may say otherwise of it at its new path

    def _occupant(self, parent: Node, name: str) -> Node | None:
        """The cached entry a rename to ``name`` replaces: on a file system that folds
        names, under any spelling of it."""
        occupant = parent.children.get(name)
        if occupant is None and self.e.rules.folds(parent):
            cached = Spellings.cached(parent, name)
            occupant = parent.children.get(cached) if cached is not None else None
        return occupant

    def adopt(self, parent: Node, name: str, key: Key) -> None:
        """Complete a pending ``moved_from`` whose inode a listing found at ``name``."""
        e = self.e
        pending = e.moves.get(key)
        node = pending.node if pending is not None else None
        st = lstat(os.path.join(parent.path(), name))
        if pending is None or node is None or st is None or not node.same(st) or (
            name in parent.children
        ):
            e.rules.reconcile(parent, name)  # not it (an inode number reused): a new entry
            return
        e.moves.pop(key)
        self.move(node, pending.parent, pending.name, parent, name, None)
        self._verify_back(node, st)
        self.replay(pending)

    def _verify_back(self, node: Node, st: Stat) -> None:
        """An entry found again by its identity alone, not by a pair of observations,
        may be another one that reused a freed inode number (ext4 reuses them at
        once): a file's content is read again, a directory is diffed."""
        e = self.e
        if node.is_dir:
            e.differ.diff([(node, False)])
        elif node.refresh(st) is Change.MODIFIED:
            e.out.emit(Change.MODIFIED, node.path(), False)

    def drop_detached(self, node: Node, path: str, pid: int | None) -> None:
        """Report a detached entry deleted and forget its subtree."""
        e = self.e
        settled = self.settle_below(node)
        e.out.emit(Change.DELETED, path, node.is_dir, pid=pid)
        owner = e.roots.of(node)
        if owner is not None:
            e.rules.forget(node, owner.backend)
        self.replay_settled(settled)

    # ------------------------------------------------------------ settling

    def settle_unpaired(self, pending: Pending) -> None:
        """A ``moved_from`` whose partner never came: deleted, unless it is back."""
        node = pending.node
        if node is not None:
            path = os.path.join(pending.parent.path(), pending.name)
            st = lstat(path)
            if st is not None and node.same(st) and pending.name not in pending.parent.children:
                pending.parent.children[pending.name] = node
                self._verify_back(node, st)
            else:
                self.drop_detached(node, path, None)
        self.replay(pending)

    def settle_below(self, node: Node) -> list[Pending]:
        """Report pending moves out of ``node``'s subtree as deleted, before it goes.

        Returns them, for :meth:`replay_settled` once the subtree is forgotten.
        """
        e = self.e
        settled: list[Pending] = []
        if not e.moves or not node.is_dir:
            return settled
        for key in e.moves.below([(node, True)]):
            pending = e.moves.pop(key)
            if pending is None:
                continue
            settled.append(pending)
            if pending.node is not None:
                path = os.path.join(pending.parent.path(), pending.name)
                self.drop_detached(pending.node, path, None)
        return settled

    def replay_settled(self, settled: list[Pending]) -> None:
        """Apply what moves settled with a subtree held back, now that it is forgotten.

        Observations through the subtree's watches find nothing. A rename out of it
        held with them still has its other half, outside: reported as created there.
        """
        for pending in settled:
            replay(self.e, pending)

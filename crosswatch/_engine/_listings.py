"""New directories: watched at once, listed, and placed once the queue has been read again.

An entry renamed into a new directory before its watch has no ``moved_to``: the
listing is its only witness, and another writer may take it away within a
millisecond, so a directory is listed as soon as it is watched. Its listing is
placed only after the backend's queue has been read once more: a rename the
listing already saw has queued its ``moved_from`` by then, and the entry is
reported as moved, not created. New directories go level by level this way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._backend import Backend
from .._events import Change
from .._tree import Kind, Node
from ._roots import Root
from ._scan import Listed

if TYPE_CHECKING:
    from . import Engine

#: Reads of the backend's queue while new directories are placed, per batch: a storm
#: of new directories must not keep the engine from delivering.
LEVEL_READS = 16


class NewDirs:
    """New directories waiting to be listed or placed, and names touched meanwhile."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._to_fill: list[Node] = []
        # Listed as soon as they were watched, by id: (node, listing).
        self._early: dict[int, tuple[Node, list[Listed]]] = {}
        # Listed but not placed yet: the names observations touched since.
        self._touched: dict[int, set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self._to_fill)

    def add(self, node: Node) -> None:
        """List ``node`` at the end of the batch (it is watched then, if not already)."""
        self._to_fill.append(node)

    def list_early(self, node: Node, root: Root) -> None:
        """List a new directory as soon as it is watched; it is placed with the others."""
        listing = self._list(node, root)
        if listing is not None:
            self._early[id(node)] = (node, listing)

    def touch(self, parent: Node, name: str) -> None:
        """An observation mentioned ``name``: if ``parent``'s listing waits, the disk decides."""
        touched = self._touched.get(id(parent))
        if touched is not None:
            touched.add(name)

    def fillable(self) -> bool:
        """Is a new directory waiting to be listed, other than inside a pending move?"""
        attached = self.e.roots.attached
        return any(attached(node) for node in self._to_fill)

    def _list(self, node: Node, root: Root) -> list[Listed] | None:
        listing = self.e.scanner.list_new(node, root)
        if listing is not None:
            self._touched[id(node)] = set()
        return listing

    def fill(self, backend: Backend | None) -> None:
        """Place the new directories' listings, one level of them at a time.

        A level's listings are placed in the cache only after ``backend``'s queue has
        been read once more. What observations say meanwhile about a listed name,
        the disk decides.
        """
        e = self.e
        waiting: list[Node] = []
        reads = LEVEL_READS
        while self._to_fill:
            level, self._to_fill = self._to_fill, []
            listed = []
            for node in level:
                early = self._early.pop(id(node), None)
                root = e.roots.of(node)
                if root is None or not e.roots.attached(node):
                    self._touched.pop(id(node), None)
                    if root is not None and e.moves.inside(node):
                        waiting.append(node)  # listed again once the move settles
                    continue
                listing = early[1] if early is not None else self._list(node, root)
                if listing is not None:
                    listed.append((node, root, listing))
            if listed and backend is not None and reads > 0 and backend.fileno() is not None:
                reads -= 1
                more = backend.read()
                if more:
                    e.apply_batch(backend, more)
            for node, root, listing in listed:
                self._place(node, root, listing)
        self._to_fill = waiting

    def _place(self, node: Node, root: Root, listing: list[Listed]) -> None:
        """Cache and report a new directory's listing: moves in, then what was created."""
        e = self.e
        touched = self._touched.pop(id(node), set())
        if not e.roots.attached(node):
            if e.moves.inside(node):
                self._to_fill.append(node)  # read again once the move settles
            return
        moves, rules, renames = e.moves, e.rules, e.renames
        children = node.children
        base = node.path()
        for name, ino, kind, st in listing:
            if name in touched:  # observed since it was listed: look again
                if moves and name not in children and moves.at(node, name) is None:
                    # (else it waits behind that move: see Renames.wait_for_old)
                    self._moved_in_before(node, name, ino, kind)
                rules.reconcile(node, name)
            elif name in children or (moves and renames.wait_for_old(node, name)):
                continue
            else:
                key = moves.key_of(node.dev, ino) if moves else None
                if key is None:
                    child = children.put_listed(name, ino, kind, st)
                    if child is not None:
                        self._to_fill.append(child)
                    e.out.emit(Change.CREATED, os.path.join(base, name), kind is Kind.DIR)
                    continue
                renames.adopt(node, name, key)  # renamed in here: a move, not a creation
            # That look may have replayed observations held behind moves, which may
            # have removed or renamed this directory: the rest of the listing follows.
            if not e.roots.attached(node):
                if moves.inside(node):
                    self._to_fill.append(node)  # read again once the move settles
                return
            base = node.path()

    def _moved_in_before(self, node: Node, name: str, ino: int, kind: Kind) -> None:
        """Report a pending move whose entry the listing found at ``name`` as done.

        The name has changed since (that is what observations said), so the disk
        no longer shows what was renamed in before the watch; the listing did, and
        the consumer learns the move before what followed it.
        """
        e = self.e
        key = e.moves.key_of(node.dev, ino)
        pending = e.moves.get(key) if key is not None else None
        if key is None or pending is None or pending.node is None or (
            pending.node.kind is not kind
            or pending.parent is node  # cached here since, then moved out: not before
        ):
            return
        e.moves.pop(key)
        e.renames.move(pending.node, pending.parent, pending.name, node, name, None)
        e.renames.replay(pending)

"""New directories: watched at once, listed, and placed once the queue has been read again.

An entry renamed into a new directory before its watch has no ``moved_to``: the
listing is its only witness, and another writer may take it away within a
millisecond, so a directory is listed as soon as it is watched. Its listing is
placed only after the backend's queue has been read dry: a rename the
listing already saw has queued its ``moved_from`` by then, and the entry is
reported as moved, not created. New directories go level by level this way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._events import Change
from .._tree import Kind, Node
from ._roots import Root
from ._scan import Listed
from ._work import LookAt, Place

if TYPE_CHECKING:
    from . import Engine

class NewDirs:
    """New directories waiting to be listed or placed, and names touched meanwhile."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._to_fill: list[Node] = []
        # Listed as soon as they were watched, by id: (node, listing).
        self._early: dict[int, tuple[Node, list[Listed]]] = {}
        # Listed but not placed yet: the names observations touched since.
        self._touched: dict[int, set[str]] = {}

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

    def list_level(self) -> None:
        """List the new directories waiting (one level of them); each listing is
        placed once the backend's queue has been read dry (a Place task)."""
        e = self.e
        level, self._to_fill = self._to_fill, []
        for node in level:
            early = self._early.pop(id(node), None)
            root = e.roots.of(node)
            if root is None or not e.roots.attached(node):
                self._touched.pop(id(node), None)
                if root is not None and e.moves.inside(node):
                    self._to_fill.append(node)  # listed again once the move settles
                continue
            listing = early[1] if early is not None else self._list(node, root)
            if listing is not None:
                e.work.after_read(Place(node, root, listing))

    def place(self, task: Place) -> None:
        """Cache and report a new directory's listing: moves in, then what was created.

        Looking at a name may replay observations held behind moves, which may
        remove or rename this directory: the rest of the listing is placed after
        them (the task's continuation), and follows the directory. Once the
        consumer is full, the rest waits for room (``Worklist.pause``).
        """
        e = self.e
        node = task.node
        if task.touched is None:
            task.touched = self._touched.pop(id(node), set())
        if not self._still_here(node):
            return
        work, moves, renames = e.work, e.moves, e.renames
        touched = task.touched
        children = node.children
        base = node.path()
        listing = task.listing
        # What the filters leave out may have changed since the listing (its
        # .gitignore rewritten, read again and its directory diffed meanwhile).
        left_out = e.roots.left_out(task.root, node) if e.roots.filters else None
        for i in range(task.start, len(listing)):
            if work.full():
                task.start = i
                work.pause(task)
                return
            name, ino, kind, st = listing[i]
            if name in touched:  # observed since it was listed: look again
                if moves and name not in children and moves.at(node, name) is None:
                    # (else it waits behind that move: see Renames.wait_for_old)
                    self._moved_in_before(node, name, ino, kind)
                if work.spawned():
                    work.spawn(LookAt(node, name))
                else:
                    e.rules.reconcile(node, name)
            elif (
                name in children
                or (moves and renames.wait_for_old(node, name))
                or (left_out is not None and left_out(name, (kind is Kind.DIR).__bool__))
            ):
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
            if work.spawned():
                if i + 1 < len(listing):
                    task.start = i + 1
                    work.spawn(task)
                return
            if not self._still_here(node):
                return
            base = node.path()

    def _still_here(self, node: Node) -> bool:
        """Is ``node`` attached? If only its pending move detached it, it waits for it."""
        if self.e.roots.attached(node):
            return True
        if self.e.moves.inside(node):
            self._to_fill.append(node)  # read again once the move settles
        return False

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

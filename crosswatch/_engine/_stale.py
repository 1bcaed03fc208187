"""Stale paths: what the disk could not confirm when an observation was read, looked at later.

Observations are read after the fact. By then an ancestor may have been renamed
(the rename still queued), so a cached path can lead nowhere or to another entry,
and ``lstat`` through it proves nothing. Such directories and names are kept
here and looked at again once more of the queue has been read (a move the disk
contradicted is a ``CheckSuspect`` task of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._tree import Node, Stat, lstat
from ._work import Unpark

if TYPE_CHECKING:
    from . import Engine


def leads_to(node: Node, path: str | None = None) -> bool:
    """Does ``node``'s cached path (``path``, if the caller has it) still lead to it?"""
    if node.parent is None:
        return True
    st = lstat(node.path() if path is None else path)
    return st is not None and node.same(st)


@dataclass
class Suspect:
    """An entry moved onto a name where the disk showed something else."""

    node: Node
    dst_parent: Node
    dst_name: str
    src_parent: Node
    src_name: str


class Stale:
    """Directories, names and moves to look at again, and when."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._deferred: dict[int, Node] = {}
        # Deferred directories diffed in this round of work: each is diffed once a
        # round, and one whose path still leads elsewhere waits for more input.
        self._looked: set[int] = set()
        # Names put off and not looked at again yet; while one is, none is put off.
        self._parked: set[tuple[int, str]] = set()
        self._unparking = False
        self.due: float | None = None
        """When directories deferred by a batch are looked at for good (see settle)."""

    # ------------------------------------------------------------ directories

    def defer(self, node: Node) -> None:
        """Diff ``node`` once the batch is applied, when its path can be trusted again."""
        self._deferred[id(node)] = node

    def deferred_ids(self) -> set[int]:
        return set(self._deferred)

    def run_deferred(self) -> bool:
        """Diff the deferred directories whose paths lead to them again; True if any.

        Each is diffed once a round of work; one still stale (its ancestor's rename
        not read yet) stays deferred, and one detached only by a pending move waits
        for that move.
        """
        e = self.e
        tops: list[tuple[Node, bool]] = []
        for node in list(self._deferred.values()):
            if id(node) in self._looked:
                continue
            if not node.is_dir:
                del self._deferred[id(node)]
            elif not e.roots.attached(node):
                if not e.moves.inside(node):
                    del self._deferred[id(node)]
            elif leads_to(node):
                del self._deferred[id(node)]
                self._looked.add(id(node))
                tops.append((node, False))
        e.differ.diff(tops)
        return bool(tops)

    def end_round(self) -> None:
        self._looked.clear()

    def settle(self) -> bool:
        """Let the disk decide where deferred directories' cached paths are stale.

        Called once the backends have nothing more to say: no rename still queued
        will explain a path that leads elsewhere, so the parent of the topmost
        directory on it that is not where the cache has it is diffed, which finds
        that directory by identity or reports it gone. True if anything was diffed.
        """
        e = self.e
        tops: dict[int, Node] = {}
        for node in list(self._deferred.values()):
            if not node.is_dir or not e.roots.attached(node) or leads_to(node):
                continue
            top = _stale_top(node)
            if top.parent is not None:
                tops[id(top.parent)] = top.parent
        if not tops:
            return False
        e.differ.diff([(parent, False) for parent in tops.values()])
        return True

    # ------------------------------------------------------------ names

    def park(self, owner: Node, parent: Node, name: str, st: Stat) -> bool:
        """Put off a directory found at ``parent``/``name`` whose watch is ``owner``'s.

        A watch handle names an inode: the directory here is ``owner``. If its cached
        path no longer leads to it, renames put it here whose observations are not
        read yet (the disk shows a rename before its events are queued). Reported
        now, it would be a creation here and, once the renames are read, a deletion
        there; so the name is looked at again once the backend's queue has been
        read further, by when the renames have usually moved ``owner`` here and
        there is nothing left to report. Moving it here at once would be wrong: the
        renames still queued may take it through other names first. True if put
        off; only while such a read may still come, and not while a name put off
        is looked at again (then the disk decides).
        """
        if not self.e.work.reading or self._unparking or not owner.same(st) or not (
            self.e.roots.attached(owner)
        ):
            return False
        if leads_to(owner):
            return False  # one directory at two paths (a bind mount): not a rename
        place = (id(parent), name)
        if place not in self._parked:
            self._parked.add(place)
            self.e.work.after_read(Unpark(parent, name))
        return True

    def unpark(self, parent: Node, name: str) -> None:
        """Look again at a name put off (see :meth:`park`)."""
        self._parked.discard((id(parent), name))
        self._unparking = True
        try:
            self.e.rules.reconcile(parent, name)
        finally:
            self._unparking = False


def _stale_top(node: Node) -> Node:
    """The topmost of ``node`` and its ancestors whose cached path does not lead to it."""
    chain = []
    up = node
    while up.parent is not None:
        chain.append(up)
        up = up.parent
    return next((n for n in reversed(chain) if not leads_to(n)), node)

"""Stale paths: what the disk could not confirm when an observation was read, looked at later.

Observations are read after the fact. By then an ancestor may have been renamed
(the rename still queued), so a cached path can lead nowhere or to another entry,
and ``lstat`` through it proves nothing. Such directories, names and moves are
kept here and looked at again once more of the queue has been read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._tree import Node, lstat

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
        self._suspects: dict[int, Suspect] = {}
        # While a batch is applied: names where a cached directory was found by its
        # watch before its rename was read, looked at again after (see park).
        self._parked: dict[tuple[int, str], tuple[Node, str]] | None = None
        self.due: float | None = None
        """When directories deferred by a batch are looked at for good (see settle)."""

    def waiting_for_input(self) -> bool:
        """Is anything here to be looked at only after the queue is read further?"""
        return bool(self._suspects or self._parked)

    # ------------------------------------------------------------ directories

    def defer(self, node: Node) -> None:
        """Diff ``node`` once the batch is applied, when its path can be trusted again."""
        self._deferred[id(node)] = node

    def deferred_ids(self) -> set[int]:
        return set(self._deferred)

    def run_deferred(self) -> None:
        """Diff the directories whose paths were stale, now that the batch is applied."""
        if not self._deferred:
            return
        e = self.e
        nodes = list(self._deferred.values())
        self._deferred.clear()
        tops: list[tuple[Node, bool]] = []
        for node in nodes:
            if not node.is_dir:
                continue
            if not e.roots.attached(node):
                if e.moves.inside(node):
                    self.defer(node)  # looked at once the move settles
                continue
            if leads_to(node):
                tops.append((node, False))
            else:
                self.defer(node)  # its ancestor's rename has not been read yet
        if tops:
            e.differ.diff(tops)

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

    def begin_batch(self) -> None:
        self._parked = {}

    def end_batch(self) -> list[tuple[Node, str]]:
        """The names parked while the batch was applied, to look at now."""
        parked, self._parked = self._parked, None
        return list(parked.values()) if parked else []

    def park(self, owner: Node, parent: Node, name: str, st: os.stat_result) -> bool:
        """Put off a directory found at ``parent``/``name`` whose watch is ``owner``'s.

        A watch handle names an inode: the directory here is ``owner``. If its cached
        path no longer leads to it, renames put it here whose observations are not
        read yet (the disk shows a rename before its events are queued). Reported
        now, it would be a creation here and, once the renames are read, a deletion
        there; so the name is looked at again once the batch and what the backend
        queued meanwhile are applied, by when the renames have usually moved
        ``owner`` here and there is nothing left to report. Moving it here at once
        would be wrong: the renames still queued may take it through other names
        first. True if put off; only while a batch is applied.
        """
        if self._parked is None or not owner.same(st) or not self.e.roots.attached(owner):
            return False
        if leads_to(owner):
            return False  # one directory at two paths (a bind mount): not a rename
        self._parked[(id(parent), name)] = (parent, name)
        return True

    # ------------------------------------------------------------ moves

    def suspect(self, suspect: Suspect) -> None:
        self._suspects[id(suspect.node)] = suspect

    def check_suspects(self) -> None:
        """Look again at entries still where a move put them though the disk disagreed.

        What the queue said since has been applied; what it did not explain is
        reconciled: the destination, and the source if the entry is back there.
        """
        e = self.e
        suspects = list(self._suspects.values())
        self._suspects.clear()
        for s in suspects:
            if not e.roots.attached(s.dst_parent):
                continue
            # Even when the entry moved on or went since: it may have been the
            # wrong one (a listing newer than the queue cached another entry of the
            # name), and what the disk has at the destination was never reported.
            here = s.dst_parent.children.get(s.dst_name) is s.node
            e.rules.reconcile(s.dst_parent, s.dst_name)
            if not here or s.src_name in s.src_parent.children or not e.roots.attached(
                s.src_parent
            ):
                continue
            back = lstat(os.path.join(s.src_parent.path(), s.src_name))
            if back is not None and s.node.same(back):
                e.rules.reconcile(s.src_parent, s.src_name)


def _stale_top(node: Node) -> Node:
    """The topmost of ``node`` and its ancestors whose cached path does not lead to it."""
    chain = []
    up = node
    while up.parent is not None:
        chain.append(up)
        up = up.parent
    return next((n for n in reversed(chain) if not leads_to(n)), node)

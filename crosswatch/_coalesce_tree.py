"""What coalescing knows of the entries a batch names: a tree of them, by current path.

A node stands for one entry as the batch has told of it so far, or for a name known
to be free. Moving a directory relinks its node, so what was said about the entries
below it follows them to their new paths. Nodes are made only for the paths a batch
names (and the directories above them), so the tree is as small as the batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

#: The batch has said nothing about the entry: it is whatever the tree held before.
UNKNOWN = 0
#: An entry is there.
PRESENT = 1
#: Nothing is there.
ABSENT = 2


class Node:
    """One name under its parent, and what the batch said about the entry there.

    Event positions (``created``, ``mod`` …) are indices into the coalesced list;
    ``stamp`` and ``last`` are indices too, for the checks that an event may be
    rewritten at an earlier position.
    """

    __slots__ = (
        "arrived", "arrived_known", "attr", "children", "complete", "created", "inside",
        "is_dir", "last", "mod", "name", "new", "parent", "pid", "pinned", "prev_arrived",
        "pure", "removed_by", "stamp", "state",
    )

    def __init__(self, name: str, parent: Node | None, state: int = UNKNOWN) -> None:
        self.name = name
        self.parent = parent
        self.children: dict[str, Node] = {}
        self.state = state
        self.is_dir = True  # a name the batch only passes through is a directory
        self.complete = False
        """Every entry below is known: a name not in ``children`` is free."""
        self.stamp = -1
        """The position of the last change of what this path names."""
        self.last = -1
        """The position of the last event below this entry, or changing it."""
        self.new = False
        """Created in this batch: what is below it is all known."""
        self.pid: int | None = None
        self.created: int | None = None
        """The position of this entry's ``created`` event."""
        self.mod: int | None = None
        self.attr: int | None = None
        self.arrived: int | None = None
        """The position of the ``moved`` event that brought the entry here."""
        self.arrived_known = False
        """That move's destination was known to be free."""
        self.prev_arrived: tuple[int | None, bool] = (None, False)
        self.pinned = False
        """A new entry whose events must stay: something left it, or it moved onto
        a path that may have held an entry."""
        self.pure = True
        """A new directory into which nothing was moved from outside."""
        self.inside: list[tuple[int, bool]] = []
        """For a new entry: the positions of the events about it and below it, each
        with whether it moved an entry in from outside."""
        self.removed_by: int | None = None
        """For a free name: the position of the ``deleted`` event of the file that
        was there."""

    def path(self) -> str:
        names: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return os.sep.join(reversed(names))

    def ancestors(self) -> Iterator[Node]:
        """The directories above, nearest first (the tree's top excluded)."""
        node = self.parent
        while node is not None and node.parent is not None:
            yield node
            node = node.parent

    def is_below(self, other: Node) -> bool:
        return any(a is other for a in self.ancestors())

    def live_below(self) -> Iterator[Node]:
        """The entries below that are there, parents before children."""
        stack = [c for c in reversed(self.children.values()) if c.state != ABSENT]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(c for c in reversed(node.children.values()) if c.state != ABSENT)


class Tree:
    """The nodes of one batch, from the top of the file system down."""

    def __init__(self) -> None:
        self.top = Node("", None, PRESENT)

    def node(self, path: str) -> Node:
        """The node of ``path``, made (with the ones above it) if the batch had none."""
        node = self.top
        for name in path.split(os.sep):
            child = node.children.get(name)
            if child is None:
                child = Node(name, node, ABSENT if node.complete else UNKNOWN)
                if node.complete:
                    child.stamp = node.stamp
                node.children[name] = child
            node = child
        return node

    @staticmethod
    def replace(old: Node, state: int, stamp: int) -> Node:
        """A fresh node in ``old``'s place (``old`` and what is below it are dropped)."""
        parent = old.parent
        assert parent is not None
        fresh = Node(old.name, parent, state)
        fresh.stamp = stamp
        parent.children[old.name] = fresh
        return fresh

    @staticmethod
    def relink(node: Node, onto: Node) -> None:
        """Move ``node`` (and what is below it) into ``onto``'s place."""
        parent = onto.parent
        assert parent is not None
        node.parent, node.name = parent, onto.name
        parent.children[onto.name] = node

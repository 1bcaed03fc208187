"""The tree cache: one node per entry, paths computed from parents.

A rename relinks one node; nothing below it is rewritten. A node's identity is
``(st_dev, st_ino)`` plus its kind; ``size``/``mtime`` tell content changes and
``meta`` (mode, uid, gid) attribute changes apart when the engine has to compare.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Hashable, Iterator

DIR, FILE, LINK, OTHER = "d", "f", "l", "o"


def kind_of(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISLNK(mode):
        return LINK
    return OTHER


def lstat(path: str) -> os.stat_result | None:
    """``os.lstat``, or ``None`` when nothing (reachable) is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return None


class Node:
    """One entry of a watched tree."""

    __slots__ = (
        "children",
        "dev",
        "handle",
        "ino",
        "kind",
        "listed",
        "meta",
        "mtime",
        "name",
        "parent",
        "size",
    )

    def __init__(self, name: str, parent: Node | None, st: os.stat_result) -> None:
        self.name = name
        self.parent = parent
        self.kind = kind_of(st)
        self.children: dict[str, Node] = {}
        self.handle: Hashable | None = None
        self.listed: int | None = None
        """Directory mtime (ns) when ``children`` was last read in full; None: read again."""
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.size = st.st_size
        self.mtime = st.st_mtime_ns
        self.meta = (st.st_mode, st.st_uid, st.st_gid)

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR

    def same(self, st: os.stat_result) -> bool:
        """Is ``st`` this very entry (same identity and kind)?"""
        return self.ino == st.st_ino and self.dev == st.st_dev and self.kind == kind_of(st)

    def identity(self) -> tuple[int, int, str]:
        return (self.dev, self.ino, self.kind)

    def refresh(self, st: os.stat_result) -> str | None:
        """Take ``st`` as the new state; return ``"modified"``/``"attrib"`` if it differs."""
        change = None
        if self.kind == DIR:
            pass
        elif self.size < 0:  # reported modified at time ``mtime``: only later writes count
            change = "modified" if st.st_mtime_ns > self.mtime else None
        elif st.st_size != self.size or st.st_mtime_ns != self.mtime:
            change = "modified"
        if change is None and (st.st_mode, st.st_uid, st.st_gid) != self.meta:
            change = "attrib"
        self.dev, self.ino = st.st_dev, st.st_ino
        self.size, self.mtime = st.st_size, st.st_mtime_ns
        self.meta = (st.st_mode, st.st_uid, st.st_gid)
        return change

    def reported_modified(self, now_ns: int) -> None:
        """A write was reported without a stat: later rescans count writes after ``now_ns``."""
        self.size = -1
        self.mtime = now_ns

    def path(self) -> str:
        parts = []
        node: Node | None = self
        while node is not None:
            parts.append(node.name)
            node = node.parent
        return os.path.join(*reversed(parts))

    def attached_to_parent(self) -> bool:
        return self.parent is not None and self.parent.children.get(self.name) is self

    def top(self) -> Node:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def depth(self) -> int:
        depth, node = 0, self
        while node.parent is not None:
            depth, node = depth + 1, node.parent
        return depth

    def is_ancestor_of(self, other: Node) -> bool:
        node: Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def walk(self) -> Iterator[Node]:
        """This node and every node below it, parents before children (no recursion)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def __repr__(self) -> str:
        return f"<Node {self.kind} {self.path()!r}>"

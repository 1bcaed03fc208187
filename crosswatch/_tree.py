"""The tree cache: one node per entry, paths computed from parents.

A rename relinks one node; nothing below it is rewritten. A node's identity is
``(st_dev, st_ino)`` plus its kind; ``size``/``mtime`` tell content changes and
``meta`` (mode, uid, gid) attribute changes apart when the engine has to compare.
"""

from __future__ import annotations

import os
import stat
from array import array
from collections.abc import Hashable, Iterator, KeysView

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


_CODE_KIND = {1: FILE, 2: LINK, 3: OTHER}
_KIND_CODE = {FILE: 1, LINK: 2, OTHER: 3}


def pack(ino: int, kind: str) -> int:
    """A listed non-directory as an int: a regular file is its bare inode number.

    Bare numbers let a directory's files be stored in bulk, ``dict(zip(names,
    inodes))``, with no Python code per entry; the rarer symlinks and others are
    ``-(inode << 2 | code)``.
    """
    return ino if kind == FILE else -(ino << 2 | _KIND_CODE[kind])


class Children(dict[str, "Node"]):
    """A directory's entries by name.

    A file listed when the directory was first read is stored as an int (see
    :func:`pack`: from ``d_ino``/``d_type``, no stat) until something touches it,
    and only then becomes a :class:`Node` whose content counts as known up to
    ``as_of`` (a later rescan reports it modified only if written after that).
    Reading a large tree so costs a dict entry per file, not an object and a stat.
    ``in``, ``len``, names and writes are plain dict operations.

    A first listing can be kept whole instead (:meth:`keep_listing`), as one string
    of its names and one array of its inode numbers, and turned into entries the
    first time the directory is used: most directories of a large tree never are,
    and kept this way a file costs the bytes of its name and eight more.
    """

    __slots__ = ("_listing", "as_of", "owner")

    def __init__(self, owner: Node | None) -> None:
        super().__init__()
        self.owner = owner
        self.as_of = 0
        self._listing: tuple[str, array[int]] | None = None

    def keep_listing(self, names: str, inodes: array[int]) -> None:
        """Hold a listing whose entries not stored yet are all regular files.

        ``names`` are joined by NUL, the one character no file name can hold, in the
        order of ``inodes``. Entries already stored (directories, symlinks) win over
        the listing's.
        """
        if inodes:
            self._listing = (names, inodes)
            self.__class__ = _Listed

    def _unpack(self) -> None:
        """Turn a kept listing into entries (see :meth:`keep_listing`); else nothing."""
        if self._listing is None:
            return
        names, inodes = self._listing
        self._listing = None
        raw: dict[str, object] = self  # type: ignore[assignment]
        entries: dict[str, object] = dict(zip(names.split("\0"), inodes, strict=True))
        entries.update(dict.items(raw))  # what is stored already wins
        dict.clear(raw)
        dict.update(raw, entries)
        self.__class__ = Children

    def _node(self, name: str, value: object, *, keep: bool = True) -> Node:
        """``value`` as a Node, made from its packed form if need be (and kept)."""
        if not isinstance(value, int):
            return value  # type: ignore[return-value]
        owner = self.owner
        assert owner is not None
        node = Node.__new__(Node)
        if value >= 0:
            node.kind, node.ino = FILE, value
        else:
            node.kind, node.ino = _CODE_KIND[-value & 3], -value >> 2
        node.name, node.parent, node.dev = name, owner, owner.dev
        node.children, node.handle, node.listed = NO_CHILDREN, None, None
        node.size, node.mtime, node.meta = -1, self.as_of, None
        if keep:
            dict.__setitem__(self, name, node)
        return node

    def get(self, name: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        value = dict.get(self, name)
        return default if value is None else self._node(name, value)

    def __getitem__(self, name: str) -> Node:
        return self._node(name, dict.__getitem__(self, name))

    def pop(self, name: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        value = dict.pop(self, name, None)
        return default if value is None else self._node(name, value, keep=False)

    def values(self) -> list[Node]:  # type: ignore[override]
        return [self._node(n, v) for n, v in dict.items(self)]

    def items(self) -> list[tuple[str, Node]]:  # type: ignore[override]
        return [(n, self._node(n, v)) for n, v in dict.items(self)]

    def dirs(self) -> list[Node]:
        """The directory nodes among the entries (never materializes a file)."""
        raw: dict[str, object] = self  # type: ignore[assignment]
        return [v for v in dict.values(raw) if isinstance(v, Node) and v.kind == DIR]


class _Listed(Children):
    """Children whose first listing is still held packed (see :meth:`keep_listing`).

    Any use but :meth:`dirs` unpacks the listing and turns the object back into a
    plain :class:`Children`, so only the first use pays for this indirection.
    """

    __slots__ = ()

    def __contains__(self, name: object) -> bool:
        self._unpack()
        return dict.__contains__(self, name)

    def __len__(self) -> int:
        self._unpack()
        return dict.__len__(self)

    def __iter__(self) -> Iterator[str]:
        self._unpack()
        return dict.__iter__(self)

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        self._unpack()
        return dict.keys(self)

    def __getitem__(self, name: str) -> Node:
        self._unpack()
        return Children.__getitem__(self, name)

    def __setitem__(self, name: str, node: Node) -> None:
        self._unpack()
        dict.__setitem__(self, name, node)

    def __delitem__(self, name: str) -> None:
        self._unpack()
        dict.__delitem__(self, name)

    def get(self, name: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        self._unpack()
        return Children.get(self, name, default)

    def pop(self, name: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        self._unpack()
        return Children.pop(self, name, default)

    def values(self) -> list[Node]:  # type: ignore[override]
        self._unpack()
        return Children.values(self)

    def items(self) -> list[tuple[str, Node]]:  # type: ignore[override]
        self._unpack()
        return Children.items(self)


class _NoChildren(Children):
    """The entries of anything that is not a directory: always empty."""

    __slots__ = ()

    def __setitem__(self, name: str, node: Node) -> None:
        raise TypeError(f"{name!r} cannot be added under something that is not a directory")


NO_CHILDREN: Children = _NoChildren(None)


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
        self.children: Children = Children(self) if self.kind == DIR else NO_CHILDREN
        self.handle: Hashable | None = None
        self.listed: int | None = None
        """Directory mtime (ns) when ``children`` was last read in full; None: read again."""
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.size = st.st_size
        self.mtime = st.st_mtime_ns
        self.meta: tuple[int, int, int] | None = (st.st_mode, st.st_uid, st.st_gid)

    @classmethod
    def listed_dir(cls, name: str, parent: Node, ino: int) -> Node:
        """A directory as its parent's listing shows it; :meth:`take` its stat before use."""
        node = cls.__new__(cls)
        node.name, node.parent, node.kind = name, parent, DIR
        node.children, node.handle, node.listed = Children(node), None, None
        node.dev, node.ino = parent.dev, ino
        node.size, node.mtime, node.meta = 0, 0, None
        return node

    def take(self, st: os.stat_result) -> None:
        """Take ``st`` as this entry's state, reporting nothing."""
        self.dev, self.ino = st.st_dev, st.st_ino
        self.size, self.mtime = st.st_size, st.st_mtime_ns
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
        meta = (st.st_mode, st.st_uid, st.st_gid)
        if change is None and self.meta is not None and meta != self.meta:
            change = "attrib"
        self.dev, self.ino = st.st_dev, st.st_ino
        self.size, self.mtime = st.st_size, st.st_mtime_ns
        self.meta = meta
        return change

    def reported_modified(self, now_ns: int) -> None:
        """A write was reported without a stat: later rescans count writes after ``now_ns``."""
        self.size = -1
        self.mtime = now_ns

    def path(self) -> str:
        parts = []
        node = self
        while node.parent is not None:
            parts.append(node.name)
            node = node.parent
        if not parts:
            return node.name
        parts.reverse()
        # Names hold no separator; only the top's (an absolute path) may end in one.
        top = node.name
        return (top if top.endswith(os.sep) else top + os.sep) + os.sep.join(parts)

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

    def walk(self, *, dirs_only: bool = False) -> Iterator[Node]:
        """This node and every node (or directory) below it, parents first, no recursion.

        ``dirs_only`` skips files without materializing them (see :class:`Children`).
        """
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.dirs() if dirs_only else node.children.values())

    def __repr__(self) -> str:
        return f"<Node {self.kind} {self.path()!r}>"

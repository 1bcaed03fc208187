"""The tree cache: one node per entry, paths computed from parents.

A rename relinks one node; nothing below it is rewritten. A node's identity is
``(st_dev, st_ino)`` plus its kind; ``size``/``mtime`` tell content changes and
``meta`` (mode, uid, gid) attribute changes apart when the engine has to compare.

How entries are stored is this module's business alone: a file listed when its
directory was first read costs a dict slot holding an int (no object, no stat) until
something touches it, and a whole first listing can be held as one ``bytes`` until the
directory is used. Callers only ever see :class:`Node` objects.
"""

from __future__ import annotations

import enum
import errno
import itertools
import os
import stat
import struct
from array import array
from collections.abc import Hashable, Iterator, Mapping, Sequence
from itertools import filterfalse
from operator import attrgetter
from typing import Final, Literal, NamedTuple, Protocol

from . import _longpath as longpath
from ._events import Change


class Kind(enum.Enum):
    """What an entry is; a rename or a replacement never changes a node's kind."""

    DIR = "d"
    FILE = "f"
    LINK = "l"
    OTHER = "o"


class Stat(Protocol):
    """What the cache reads of an ``lstat``: an ``os.stat_result``, or a :class:`Slim`."""

    @property
    def st_dev(self) -> int: ...
    @property
    def st_ino(self) -> int: ...
    @property
    def st_mode(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_uid(self) -> int: ...
    @property
    def st_gid(self) -> int: ...


class Slim(NamedTuple):
    """The fields of an ``lstat`` the cache reads, in a third of the memory: a rescan
    holds one for every entry it found new until it has reported them all."""

    st_dev: int
    st_ino: int
    st_mode: int
    st_size: int
    st_mtime_ns: int
    st_uid: int
    st_gid: int


_SLIM_FIELDS = attrgetter(*Slim._fields)
_new_tuple = tuple.__new__


def slim(st: os.stat_result) -> Slim:
    # Built as a plain tuple of its fields: no Python-level __new__ per entry.
    return _new_tuple(Slim, _SLIM_FIELDS(st))


def kind_of(st: Stat) -> Kind:
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return Kind.DIR
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISLNK(mode):
        return Kind.LINK
    return Kind.OTHER


def entry_kind(entry: os.DirEntry[str]) -> Kind:
    """A listed entry's kind from its ``d_type``; OSError if it must be stated and is gone."""
    if entry.is_dir(follow_symlinks=False):
        return Kind.DIR
    if entry.is_symlink():
        return Kind.LINK
    return Kind.FILE if entry.is_file(follow_symlinks=False) else Kind.OTHER


# A listed non-directory is stored as an int: a regular file as its bare inode number,
# so that a directory's files can be stored in bulk (dict(zip(names, inodes))) with no
# Python code per entry; the rarer symlinks and others as -(inode << 2 | code).
_CODE_KIND = {1: Kind.FILE, 2: Kind.LINK, 3: Kind.OTHER}
_KIND_CODE = {Kind.FILE: 1, Kind.LINK: 2, Kind.OTHER: 3}
_NAME = attrgetter("name")
_INODE = os.DirEntry.inode
_IS_FILE = os.DirEntry.is_file  # follows symlinks: see Children.take_first_listing
_IS_LINK = os.DirEntry.is_symlink


def _pack(ino: int, kind: Kind) -> int:
    return ino if kind is Kind.FILE else -(ino << 2 | _KIND_CODE[kind])


def unpack(value: int) -> tuple[Kind, int]:
    """The kind and inode number of an entry stored as an int (see :meth:`Children.stored`)."""
    if value >= 0:
        return Kind.FILE, value
    return _CODE_KIND[-value & 3], -value >> 2


# A first listing held whole is one bytes object: the count of entries (4 bytes; its
# top bit set when the inode numbers take 8 bytes each, not 4) and when they were
# listed (Children.as_of, 8 bytes), their inode numbers (native order), then their
# names joined by NUL (the one character no name holds) in UTF-8. "surrogatepass"
# gives back any str exactly: the escapes of undecodable bytes on POSIX, the unpaired
# surrogates NTFS allows.
_HEADER = struct.Struct("=Iq")
_WIDE = 1 << 31
_NAMES_CODEC = ("utf-8", "surrogatepass")


def _inode_array(entries: list[os.DirEntry[str]]) -> array[int]:
    """The entries' inode numbers, 4 bytes each where they all fit (ext4's always do).

    OverflowError past 64 bits (128-bit file ids on ReFS).
    """
    try:
        return array("I", map(_INODE, entries))
    except OverflowError:
        return array("Q", map(_INODE, entries))


def _pack_listing(names: list[str], inodes: array[int], as_of: int) -> bytes:
    joined = "\0".join(names).encode(*_NAMES_CODEC)
    count = len(names) | (_WIDE if inodes.itemsize == 8 else 0)
    return b"".join((_HEADER.pack(count, as_of), inodes.tobytes(), joined))


def _names_at(listing: bytes) -> tuple[int, int, Literal["I", "Q"]]:
    """(count, where the names start, the inodes' type code) of a packed listing."""
    count, _ = _HEADER.unpack_from(listing)
    code: Literal["I", "Q"] = "Q" if count & _WIDE else "I"
    count &= ~_WIDE
    return count, _HEADER.size + array(code).itemsize * count, code


def _unpack_listing(listing: bytes) -> tuple[list[str], Sequence[int]]:
    count, end, code = _names_at(listing)
    if not count:
        return [], ()
    inodes = memoryview(listing)[_HEADER.size : end].cast(code)
    return listing[end:].decode(*_NAMES_CODEC).split("\0"), inodes


def _listing_names(listing: bytes, most: int) -> list[str]:
    """Up to ``most`` names of a packed listing, the rest left undecoded."""
    count, end, _ = _names_at(listing)
    names = listing[end:].split(b"\0", most)[:most] if count else []
    return [name.decode(*_NAMES_CODEC) for name in names]


# The entries of a directory holding no nodes nor packed ints yet (most leaves, whose
# files are all in their first listing): one dict shared by all, never written (see
# Children._all).
_NO_ENTRIES: Final[dict[str, Node | int]] = {}


class Children:
    """A directory's entries by name.

    ``as_of`` is when the entries were listed (ns): a file stored from the listing
    counts as unchanged up to then, so a later rescan reports it modified only if it
    was written after. Iteration yields names.
    """

    __slots__ = ("_entries", "_listing", "as_of", "owner")

    def __init__(self, owner: Node | None) -> None:
        self.owner = owner
        self.as_of = 0
        self._entries = _NO_ENTRIES
        # A first listing's regular files, held whole until used (see _pack_listing).
        self._listing: bytes | None = None

    @classmethod
    def of_listing(cls, owner: Node, listing: bytes) -> Children:
        """The entries of a directory held as its packed first listing alone (see
        :attr:`Node.children`)."""
        children = cls(owner)
        count, children.as_of = _HEADER.unpack_from(listing)
        children._listing = listing if count & ~_WIDE else None
        return children

    # ------------------------------------------------------------ reading

    def packed(self) -> bool:
        """Is a first listing still held whole (never used since it was read)?"""
        return self._listing is not None

    def _all(self) -> dict[str, Node | int]:
        """The entries as one dict of this directory's own, a first listing unpacked."""
        if self._listing is not None:
            names, inodes = _unpack_listing(self._listing)
            self._listing = None
            entries: dict[str, Node | int] = dict(zip(names, inodes, strict=True))
            entries.update(self._entries)  # what is stored already wins
            self._entries = entries
        elif self._entries is _NO_ENTRIES:
            self._entries = {}
        return self._entries

    def _node(self, name: str, value: Node | int, *, keep: bool = True) -> Node:
        """``value`` as a Node, made from its packed form if need be (and kept)."""
        if isinstance(value, Node):
            return value
        owner = self.owner
        assert owner is not None
        kind, ino = unpack(value)
        node = Node.listed_entry(name, owner, kind, ino, self.as_of)
        if keep:
            self._entries[name] = node
        return node

    def get(self, name: str) -> Node | None:
        value = self._all().get(name)
        return None if value is None else self._node(name, value)

    def __getitem__(self, name: str) -> Node:
        return self._node(name, self._all()[name])

    def __contains__(self, name: str) -> bool:
        return name in self._all()

    def __len__(self) -> int:
        return len(self._all())

    def __bool__(self) -> bool:
        return self._listing is not None or bool(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._all()))

    def some_names(self, count: int) -> list[str]:
        """Up to ``count`` names, without unpacking a first listing held whole."""
        names = list(itertools.islice(self._entries, count))
        if self._listing is not None and len(names) < count:
            listed = _listing_names(self._listing, count + len(self._entries))
            names += [n for n in listed if n not in self._entries][: count - len(names)]
        return names

    def values(self) -> list[Node]:
        return [self._node(n, v) for n, v in list(self._all().items())]

    def items(self) -> list[tuple[str, Node]]:
        return [(n, self._node(n, v)) for n, v in list(self._all().items())]

    def stored(self) -> Stored:
        """The entries as they are stored, none made a Node (see :class:`Stored`)."""
        listing = None if self._listing is None else _unpack_listing(self._listing)
        return Stored(self._entries, listing, self.as_of)

    def dirs(self) -> list[Node]:
        """The directory nodes among the entries (never materializes a file)."""
        return [v for v in self._entries.values() if isinstance(v, Node) and v.kind is Kind.DIR]

    # ------------------------------------------------------------ writing

    def __setitem__(self, name: str, node: Node) -> None:
        if self.owner is None:
            raise TypeError(f"{name!r} cannot be added under something that is not a directory")
        self._all()[name] = node

    def __delitem__(self, name: str) -> None:
        del self._all()[name]

    def take_nodes(self, nodes: dict[str, Node | int]) -> None:
        """Store an empty directory's entries at once (a tree read back from a snapshot);
        ``nodes`` is the caller's no more."""
        assert self.owner is not None
        assert not self
        self._entries = nodes or {}

    def pop(self, name: str) -> Node | None:
        value = self._all().pop(name, None)
        return None if value is None else self._node(name, value, keep=False)

    def put_listed(self, name: str, ino: int, kind: Kind, st: Stat | None) -> Node | None:
        """Store an entry as a listing shows it; the new node if it is a directory.

        A file listed without a stat costs no object until something touches it.
        """
        assert self.owner is not None
        if kind is Kind.DIR:
            child = Node.listed_dir(name, self.owner, ino)
            self._all()[name] = child
            return child
        self._all()[name] = Node(name, self.owner, st) if st is not None else _pack(ino, kind)
        return None

    def take_first_listing(self, entries: list[os.DirEntry[str]]) -> list[Node] | None:
        """Store a directory's first listing in bulk; its subdirectories, or None.

        The hot path of startup: names and inode numbers are kept as they were
        listed, in C-level passes, and only the entries that are not regular files
        (usually a few subdirectories) cost Python code each. None (nothing stored)
        when an entry cannot be classified that way (removed since the listing, a
        symlink loop): the caller stores the listing entry by entry instead. A
        listing of regular files only is handed to the owner whole (see
        :attr:`Node.children`): set :attr:`as_of` first, and use ``node.children``
        afresh after.
        """
        assert self.owner is not None
        assert not self
        stored: dict[str, Node | int] = {}
        subdirs = []
        try:
            for entry in filterfalse(_IS_FILE, entries):  # directories, symlinks, others
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    child = Node.listed_dir(name, self.owner, entry.inode())
                    stored[name] = child
                    subdirs.append(child)
                else:
                    stored[name] = _pack(entry.inode(), entry_kind(entry))
            for entry in filter(_IS_LINK, entries):  # a symlink to a file passed as one
                stored[entry.name] = _pack(entry.inode(), Kind.LINK)
            # The listing holds the files only: the names of the rest are the keys of
            # ``stored`` already, and unpacked there they would be held twice.
            files = list(filter(_IS_FILE, entries)) if stored else entries
        except OSError:
            return None
        if files:
            try:
                inodes = _inode_array(files)
            except OverflowError:  # 128-bit file ids (ReFS): stored entry by entry
                return None
            try:
                packed = _pack_listing(list(map(_NAME, files)), inodes, self.as_of)
            except UnicodeEncodeError:  # not a str that came from a listing
                return None
        else:
            packed = _pack_listing([], _NO_INODES, self.as_of)
        owner = self.owner
        if not stored and owner._kids is self:
            owner._kids = packed  # no object of its own until used (see Node.children)
        else:
            self._listing = packed if files else None
            self._entries = stored or _NO_ENTRIES
        return subdirs


_NO_INODES: Final[array[int]] = array("I")


class Stored(NamedTuple):
    """A directory's entries as they are stored, none made a Node: for a reader of a
    whole tree that must not grow it (a snapshot)."""

    entries: Mapping[str, Node | int]
    """By name; an int is a listed entry known as of ``as_of`` (see :func:`unpack`)."""
    listing: tuple[list[str], Sequence[int]] | None
    """The names and inode numbers of a first listing held whole (regular files; a
    name in ``entries`` too is ``entries``'s)."""
    as_of: int


class _NoChildren(Children):
    """The entries of anything that is not a directory: always empty."""

    __slots__ = ()


NO_CHILDREN: Children = _NoChildren(None)


def lstat(path: str) -> os.stat_result | None:
    """``os.lstat`` at any depth, or ``None`` when nothing (reachable) is there."""
    try:
        return os.lstat(path)  # the hot path of every diff: the plain call, nothing more
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            return None
    try:
        return longpath.lstat(path)
    except OSError:
        return None


class Node:
    """One entry of a watched tree."""

    __slots__ = (
        "_kids",
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
    dev: int
    ino: int
    size: int
    mtime: int
    meta: tuple[int, int, int] | None

    def __init__(self, name: str, parent: Node | None, st: Stat) -> None:
        self.name = name
        self.parent = parent
        self.kind = kind_of(st)
        self._kids: Children | bytes = Children(self) if self.kind is Kind.DIR else NO_CHILDREN
        self.handle: Hashable | None = None
        self.listed: int | None = None
        """Directory mtime (ns) when ``children`` was last read in full; None: read again."""
        self.meta = None
        self.take(st)

    @classmethod
    def listed_dir(cls, name: str, parent: Node, ino: int) -> Node:
        """A directory as its parent's listing shows it; :meth:`take` its stat before use."""
        node = cls.__new__(cls)
        node.name, node.parent, node.kind = name, parent, Kind.DIR
        node._kids, node.handle, node.listed = Children(node), None, None
        node.dev, node.ino = parent.dev, ino
        node.size, node.mtime, node.meta = 0, 0, None
        return node

    @classmethod
    def listed_entry(cls, name: str, parent: Node, kind: Kind, ino: int, as_of: int) -> Node:
        """A non-directory as a listing showed it, its content known up to ``as_of``."""
        node = cls.__new__(cls)
        node.name, node.parent, node.kind = name, parent, kind
        node._kids, node.handle, node.listed = NO_CHILDREN, None, None
        node.dev, node.ino = parent.dev, ino
        node.size, node.mtime, node.meta = -1, as_of, None
        return node

    def take(self, st: Stat) -> None:
        """Take ``st`` as this entry's state, reporting nothing."""
        self.ino, self.mtime = st.st_ino, st.st_mtime_ns
        # A device, a size (a directory's, on many file systems: one block) and a
        # (mode, uid, gid) equal to the parent's are kept as the parent's objects: one
        # of each for most directories of a tree, not one per directory.
        dev: int = st.st_dev
        size: int = st.st_size
        meta: tuple[int, int, int] | None = (st.st_mode, st.st_uid, st.st_gid)
        parent = self.parent
        if parent is not None:
            dev = parent.dev if dev == parent.dev else dev
            size = parent.size if size == parent.size else size
            meta = parent.meta if meta == parent.meta else meta
        self.dev, self.size, self.meta = dev, size, meta

    @property
    def children(self) -> Children:
        """The entries, by name.

        A directory whose first listing found regular files only (most leaves of a
        tree) holds that packed listing alone, with no object of its own for its
        entries, until something uses them.
        """
        kids = self._kids
        if isinstance(kids, bytes):
            kids = self._kids = Children.of_listing(self, kids)
        return kids

    def stored(self) -> Stored:
        """:meth:`Children.stored`, a packed listing left as it is."""
        kids = self._kids
        if isinstance(kids, bytes):
            count, as_of = _HEADER.unpack_from(kids)
            return Stored(_NO_ENTRIES, _unpack_listing(kids) if count & ~_WIDE else None, as_of)
        return kids.stored()

    def subdirs(self) -> list[Node]:
        """The directory nodes among the entries (never materializes a file)."""
        kids = self._kids
        return [] if isinstance(kids, bytes) else kids.dirs()

    @property
    def is_dir(self) -> bool:
        return self.kind is Kind.DIR

    def same(self, st: Stat) -> bool:
        """Is ``st`` this very entry (same identity and kind)?"""
        return self.ino == st.st_ino and self.dev == st.st_dev and self.kind is kind_of(st)

    def identity(self) -> tuple[int, int, Kind]:
        return (self.dev, self.ino, self.kind)

    def refresh(self, st: Stat) -> Change | None:
        """Take ``st`` as the new state; say what changed (modified or attrib), if anything."""
        change = None
        if self.kind is Kind.DIR:
            pass
        elif self.size < 0:  # known only as of time ``mtime``: only later writes count
            change = Change.MODIFIED if st.st_mtime_ns > self.mtime else None
        elif st.st_size != self.size or st.st_mtime_ns != self.mtime:
            change = Change.MODIFIED
        meta = (st.st_mode, st.st_uid, st.st_gid)
        if change is None and self.meta is not None and meta != self.meta:
            change = Change.ATTRIB
        self.take(st)
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

        ``dirs_only`` skips files without materializing them.
        """
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.subdirs() if dirs_only else node.children.values())

    def __repr__(self) -> str:
        return f"<Node {self.kind.value} {self.path()!r}>"

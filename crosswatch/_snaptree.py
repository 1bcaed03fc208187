"""A tree cache to snapshot blocks and back, and the filters a snapshot records.

Capturing reads the engine's cache as the consumer knows it: an entry whose move
waits for its other half is still at its old place, and an entry known only from
a listing is written as such (its content known as of that listing), so that
comparing with the snapshot later errs on the side of reporting a change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import _config
from ._errors import SnapshotError, SnapshotMismatchError
from ._events import Change, Event
from ._snapfile import Block, Header, RootInfo, corrupt, encode
from ._tree import Kind, Node, Slim, unpack

if TYPE_CHECKING:
    from ._engine import Engine, Root

#: The settings that choose what a tree holds, as a snapshot records them.
FILTERS = ("ignore", "default_ignore", "hidden", "include", "gitignore")

_CODE = {kind: kind.value for kind in Kind}
_KIND = {ord(kind.value): kind for kind in Kind}
_DIR = ord(Kind.DIR.value)

Pending = dict[int, list[tuple[str, Node]]]


# ---------------------------------------------------------------- filters


def record_filters(settings: _config.Settings) -> dict[str, Any]:
    """The filters of ``settings`` as a snapshot keeps them: the default ignore list
    spelled out, so that a later crosswatch with another list compares the same tree."""
    defaults = settings.default_ignore is not False
    return {
        "ignore": list(settings.ignore),
        "default_ignore": list(_config.DEFAULT_IGNORE) if defaults else [],
        "hidden": settings.hidden is not False,
        "include": list(getattr(settings, "include", ())),
        "gitignore": getattr(settings, "gitignore", None) is True,
    }


def settings_of(filters: dict[str, Any], file: str) -> _config.Settings:
    """Settings that leave out what the snapshot's filters did."""
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise SnapshotMismatchError(
            f"{file!r} was taken with filters this crosswatch does not know "
            f"({', '.join(unknown)}); compare it with the crosswatch that wrote it"
        )
    try:
        return _config.Settings(
            ignore=(*filters["ignore"], *filters["default_ignore"]),
            default_ignore=False,
            hidden=bool(filters["hidden"]),
            include=tuple(filters["include"]),
            gitignore=bool(filters["gitignore"]),
        )
    except (KeyError, TypeError) as exc:
        raise corrupt(file, f"its filters cannot be read: {exc}") from None


# ---------------------------------------------------------------- capturing


def capture(engine: Engine, filters: dict[str, Any]) -> tuple[Header, list[bytes]]:
    """The header and blocks of every root's tree as the consumer knows it now."""
    from . import __version__  # the package is loaded by the time this runs

    pending = _pending(engine)
    roots: list[RootInfo] = []
    blocks: list[bytes] = []
    for root in engine.watched:
        info, encoded = _capture_root(root, pending)
        roots.append(info)
        blocks += encoded
    total = sum(r.entries for r in roots)
    header = Header(roots, filters, time.time_ns(), f"crosswatch {__version__}", entries=total)
    return header, blocks


def _pending(engine: Engine) -> Pending:
    """Entries whose move waits for its other half, by the directory they left: the
    consumer has not been told they went."""
    out: Pending = {}
    for move in engine.moves.values():
        if move.node is not None:
            out.setdefault(id(move.parent), []).append((move.name, move.node))
    return out


def _capture_root(root: Root, pending: Pending) -> tuple[RootInfo, list[bytes]]:
    if root.only is not None:
        raise SnapshotError(
            f"cannot snapshot {root.path!r}: it is a file; snapshots are of directories"
        )
    top = root.node
    blocks: list[bytes] = []
    entries = 0
    stack = [top]
    while stack:
        node = stack.pop()
        block, subdirs = _block(node, pending.get(id(node), ()))
        blocks.append(encode(block))
        entries += len(block.names)
        stack += reversed(subdirs)
    mode, uid, gid = top.meta or (0, 0, 0)
    info = RootInfo(
        root.path, root.recursive, top.dev, top.ino, mode, uid, gid, len(blocks), entries
    )
    return info, blocks


def _block(node: Node, moved_away: Iterable[tuple[str, Node]]) -> tuple[Block, list[Node]]:
    """A directory's block, and its subdirectories in the order the block lists them."""
    stored, listing, as_of = node.stored()
    names: list[str] = []
    kinds: list[str] = []
    cols: tuple[list[int], ...] = ([], [], [], [], [], [], [])
    ino, dev, size, mtime, mode, uid, gid = cols
    subdirs: list[Node] = []
    if listing is not None:  # a first listing, never used since: all files as of then
        listed, inodes = listing
        if stored:
            keep = [name not in stored for name in listed]
            listed = [n for n, k in zip(listed, keep, strict=True) if k]
            ino += [i for i, k in zip(inodes, keep, strict=True) if k]
        else:
            ino += inodes
        count = len(listed)
        names += listed
        kinds += ["f"] * count
        dev += [0] * count
        size += [-1] * count
        mtime += [as_of] * count
        mode += [0] * count
        uid += [0] * count
        gid += [0] * count
    parent_dev = node.dev
    for name, value in [*stored.items(), *((n, v) for n, v in moved_away if n not in stored)]:
        if isinstance(value, int):
            kind, number = unpack(value)
            row = (number, 0, -1, as_of, 0, 0, 0)
        else:
            kind = value.kind
            if kind is Kind.DIR:
                subdirs.append(value)
            meta = value.meta or (0, 0, 0)
            same_dev = value.dev == parent_dev
            row = (value.ino, 0 if same_dev else value.dev + 1, value.size, value.mtime, *meta)
        names.append(name)
        kinds.append(_CODE[kind])
        for col, item in zip(cols, row, strict=True):
            col.append(item)
    block = Block(names, "".join(kinds).encode("ascii"), *cols)
    return block, subdirs


# ---------------------------------------------------------------- reading back


def filler(info: RootInfo, blocks: Iterator[Block], file: str) -> Callable[[Node], None]:
    """What fills a root's node with the tree its blocks hold (see Engine.add_root)."""

    def fill(top: Node) -> None:
        if info.mode:  # its own mode, owner and group as they were: a change is attrib
            top.meta = (info.mode, info.uid, info.gid)
        stack = [top]
        while stack:
            node = stack.pop()
            block = _next(blocks, file)
            try:
                nodes, subdirs = _nodes(node, block)
            except (KeyError, ValueError) as exc:
                raise corrupt(file, f"an entry cannot be read: {exc}") from None
            node.children.take_nodes(nodes)
            stack += reversed(subdirs)

    return fill


def created(blocks: Iterator[Block], file: str, top: str) -> Iterator[Event]:
    """A root's tree from its blocks, as a ``CREATED`` event per entry under path
    ``top``, each directory before its entries (for a follower's baseline)."""
    stack = [top]
    while stack:
        directory = stack.pop()
        block = _next(blocks, file)
        subdirs = []
        for name, code in zip(block.names, block.kinds, strict=True):
            path = os.path.join(directory, name)
            yield Event(Change.CREATED, path, code == _DIR)
            if code == _DIR:
                subdirs.append(path)
        stack += reversed(subdirs)


def skip(blocks: Iterator[Block], file: str) -> None:
    """Pass over one root's blocks."""
    left = 1
    while left:
        left += _next(blocks, file).kinds.count(_DIR) - 1


def _next(blocks: Iterator[Block], file: str) -> Block:
    block = next(blocks, None)
    if block is None:
        raise corrupt(file, "a directory's entries are missing")
    return block


def _nodes(parent: Node, block: Block) -> tuple[dict[str, Node | int], list[Node]]:
    nodes: dict[str, Node | int] = {}
    subdirs: list[Node] = []
    parent_dev = parent.dev
    for name, code, ino, dev, size, mtime, mode, uid, gid in zip(*block, strict=True):
        on = parent_dev if dev == 0 else dev - 1
        if size >= 0 and mode:
            node = Node(name, parent, Slim(on, ino, mode, size, mtime, uid, gid))
        else:
            kind = _KIND[code]
            if kind is Kind.DIR:
                node = Node.listed_dir(name, parent, ino)
            else:
                node = Node.listed_entry(name, parent, kind, ino, mtime)
            node.dev = on
            if mode:
                node.meta = (mode, uid, gid)
        nodes[name] = node
        if node.kind is Kind.DIR:
            subdirs.append(node)
    return nodes, subdirs

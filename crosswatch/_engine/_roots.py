"""Roots and handles: what is watched, and which cached directory a backend's handle names."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass

from .._backend import Backend
from .._tree import Kind, Node, Stat
from ._gitignore import NAME as GITIGNORE
from ._gitignore import GitIgnores
from ._ignore import Ignore


@dataclass(eq=False)
class Root:
    """A watched root: a directory, or a file (its parent's node holds ``only``)."""

    path: str
    node: Node
    backend: Backend
    recursive: bool
    only: set[str] | None = None
    folds: bool = False
    """Its file system finds one entry under names that differ in case or Unicode
    form: a name the cache lacks is then learned from a listing, in its spelling."""

    @property
    def max_depth(self) -> float:
        """Directories at this depth below ``node`` or deeper are neither listed nor watched."""
        return math.inf if self.recursive and self.only is None else 1


class Roots:
    """The watched roots, the cached tree under each, and the handle index.

    A node is *attached* when every link from it up to a root's top is in place; a
    node taken out (deleted, or detached while its rename waits for its pair) is not.
    """

    def __init__(self, ignore: Ignore, gitignores: GitIgnores | None = None) -> None:
        self.ignore = ignore
        self.gitignores = gitignores
        self.filters = bool(ignore) or gitignores is not None
        """Can anything be left out (one check for the common case)?"""
        self.by_path = bool(ignore.paths or ignore.include) or gitignores is not None
        """Can what is left out below a directory change when it moves (patterns
        matched against paths, or ``.gitignore`` files above it)?"""
        self.all: list[Root] = []
        self._by_top: dict[int, Root] = {}
        self._handles: dict[Backend, dict[Hashable, Node]] = {}
        self._folding = 0  # roots whose file system folds names

    # ------------------------------------------------------------ roots

    @property
    def any_folds(self) -> bool:
        """Does any root's file system fold names (one check for the common case)?"""
        return self._folding > 0

    def add(self, root: Root) -> None:
        self.all.append(root)
        self._folding += root.folds
        self._by_top[id(root.node)] = root
        self._handles.setdefault(root.backend, {})

    def set_folds(self, root: Root, folds: bool) -> None:
        """Say whether ``root``'s file system folds names (found once it is read)."""
        if root in self.all:
            self._folding += folds - root.folds
        root.folds = folds

    def drop(self, root: Root) -> None:
        if self.gitignores is not None:
            self.gitignores.forget_root(root)
        self.all.remove(root)
        self._folding -= root.folds
        del self._by_top[id(root.node)]

    def watching(self, root: Root) -> bool:
        """Is ``root`` still watched?"""
        return self._by_top.get(id(root.node)) is root

    def file_root_at(self, directory: Stat) -> Root | None:
        """The file root of the directory ``directory`` is the stat of: several files
        share its watch, whichever way its path was spelled."""
        return next((r for r in self.all if r.only is not None and r.node.same(directory)), None)

    def at_top(self, node: Node) -> Root | None:
        """The root whose top node is ``node`` itself."""
        return self._by_top.get(id(node))

    def of(self, node: Node) -> Root | None:
        """The root ``node`` is cached under (attached or not)."""
        return self._by_top.get(id(node.top()))

    def backends(self) -> list[Backend]:
        return list(self._handles)

    def find(self, path: str) -> Node | None:
        """The cached directory at ``path`` (as events spell it), if any."""
        for root in self.all:
            top = root.node.path()
            if path == top or path.startswith(top.rstrip(os.sep) + os.sep):
                node: Node | None = root.node
                for part in path[len(top):].split(os.sep):
                    if part and node is not None:
                        node = node.children.get(part)
                if node is not None and node.is_dir:
                    return node
        return None

    # ------------------------------------------------------------ handles

    def bind(self, node: Node, handle: Hashable, backend: Backend) -> None:
        """``handle`` now names ``node``; a node it named before loses it."""
        handles = self._handles[backend]
        old = handles.get(handle)
        if old is not None and old is not node:
            old.handle = None
        node.handle = handle
        handles[handle] = node

    def node_of(self, backend: Backend, handle: Hashable) -> Node | None:
        return self._handles.get(backend, {}).get(handle)

    def release(self, backend: Backend, handle: Hashable) -> Node | None:
        """Forget a handle the backend says is dead; the node it named, if any."""
        node = self._handles.get(backend, {}).pop(handle, None)
        if node is not None:
            node.handle = None
        return node

    def unbind(self, node: Node, backend: Backend) -> Hashable | None:
        """Take ``node``'s handle away; the handle, for the caller to unwatch, if it was bound."""
        handle, node.handle = node.handle, None
        handles = self._handles.get(backend, {})
        if handle is not None and handles.get(handle) is node:
            del handles[handle]
            return handle
        return None

    def locate(self, backend: Backend, handle: Hashable, name: str) -> Node | None:
        """The cached entry an observation names, or its nearest cached ancestor."""
        node = self.node_of(backend, handle)
        if node is None:
            return None
        for part in name.split(os.sep) if name else ():
            child = node.children.get(part)
            if child is None:
                break
            node = child
        return node

    def split(self, backend: Backend, handle: Hashable, name: str) -> tuple[Node, str] | None:
        """(cached parent directory, entry name) for an observation, or None if unknown.

        For a recursive backend's relative path whose middle is not cached yet, the
        deepest cached directory and the first missing name are returned: reconciling
        that one entry reports everything below it.
        """
        found = self.split_to(backend, handle, name)
        return None if found is None else (found[0], found[1])

    def split_to(
        self, backend: Backend, handle: Hashable, name: str
    ) -> tuple[Node, str, bool] | None:
        """:meth:`split`, and whether it reached the entry itself (False: it stopped
        at a directory above it that the cache lacks, or has as a file)."""
        node = self.node_of(backend, handle)
        if node is None:
            return None
        if not name:  # about the watched directory itself
            return node, "", True
        parts = name.split(os.sep)
        for part in parts[:-1]:
            child = node.children.get(part)
            if child is None or child.kind is not Kind.DIR:
                return node, part, False
            node = child
        return node, parts[-1], True

    # ------------------------------------------------------------ membership

    def anchor(self, node: Node) -> tuple[Root, int] | None:
        """(root, depth below it) of an attached node; None if it is detached."""
        depth = 0
        while node.parent is not None:
            if node.parent.children.get(node.name) is not node:
                return None
            node = node.parent
            depth += 1
        root = self._by_top.get(id(node))
        return None if root is None else (root, depth)

    def attached(self, node: Node) -> bool:
        return self.anchor(node) is not None

    def tracked(self, parent: Node, name: str) -> bool:
        """Does ``name`` in ``parent`` belong in the cache (depth, file roots, ignore)?"""
        found = self.anchor(parent)
        if found is None:
            return False
        root, depth = found
        if root.only is not None:
            return parent is root.node and name in root.only
        if depth >= root.max_depth:
            return False
        if name == GITIGNORE and self.gitignores is not None:
            self.gitignores.touched(parent, False)  # read again, even if it is left out
        return not (self.filters and self.left_out(root, parent)(name, _lstat_is_dir(parent, name)))

    def left_out(self, root: Root, node: Node) -> Callable[[str, Callable[[], bool]], bool]:
        """Is a name in ``node`` left out (``is_dir()`` asked only if it matters)?
        What the ``.gitignore`` files say is found once, for a whole listing."""
        test = None if self.gitignores is None else self.gitignores.tester(root, node)
        ignore = self.ignore if self.ignore else None

        def left_out(name: str, is_dir: Callable[[], bool]) -> bool:
            if ignore is not None and ignore.match(
                name, lambda: self._rel(root, node, name), is_dir
            ):
                return True
            return test is not None and test(name, is_dir)

        return left_out

    def listing(self, root: Root, node: Node, names: Collection[str]) -> None:
        """A listing of ``node`` shows ``names``: its ``.gitignore`` is read if it has
        one, or had; if what that says changed while entries below are cached, the
        subtree is diffed again with it (``touched``)."""
        gitignores = self.gitignores
        if gitignores is None or root.only is not None:
            return
        if (GITIGNORE in names or gitignores.has(node)) and gitignores.refresh(node) and (
            node.children
        ):
            gitignores.touched(node, True)

    @staticmethod
    def _rel(root: Root, parent: Node, name: str) -> str:
        parts = [name]
        node = parent
        while node is not root.node and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts))


def _lstat_is_dir(parent: Node, name: str) -> Callable[[], bool]:
    def is_dir() -> bool:
        try:
            return stat.S_ISDIR(os.lstat(os.path.join(parent.path(), name)).st_mode)
        except OSError:
            return False
    return is_dir

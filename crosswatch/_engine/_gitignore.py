"""What ``.gitignore`` files leave out, found the way git finds them, and kept up to date.

Each directory's ``.gitignore`` speaks for the entries below it; a deeper file's
patterns are weighed after an outer one's, and the last pattern that matches
decides, so a deeper ``!`` takes back what an outer file left out (but nothing
below a directory left out: it is never read, as in git). Above a root, the
files from the top of its git work tree down, and ``.git/info/exclude``, are
read once at start. A file that changes while watched is read again and its
directory's subtree diffed: what it now leaves out is reported deleted, what it
takes back is read in and reported created.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._tree import Node
from ._gitpatterns import Pattern, compile_lines, verdict

if TYPE_CHECKING:
    from . import Engine
    from ._roots import Root

NAME = ".gitignore"

#: One file's patterns, compiled.
Spec = tuple[Pattern, ...]


@dataclass(slots=True)
class _File:
    node: Node
    text: bytes
    spec: Spec


class GitIgnores:
    """The ``.gitignore`` files read so far: which directory's, and what they say."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        try:
            import pathspec  # noqa: F401
        except ImportError:
            raise ConfigError(
                "obeying .gitignore files needs the pathspec package: pip install pathspec"
            ) from None
        self._warn = warn
        self._files: dict[int, _File] = {}  # id(directory node) -> its file
        self._outer: dict[int, list[tuple[Spec, str]]] = {}  # id(root) -> (spec, prefix)
        self.touched: Callable[[Node, bool], None] = lambda node, read: None
        """Told of a directory whose ``.gitignore`` an event named (``read`` False:
        to be read again), or that a listing found changed (``read`` True: its
        subtree to be diffed again). Set by the engine."""

    # ------------------------------------------------------------ reading

    def _read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None  # none there (or its directory just became a file)
        except OSError as exc:
            self._warn(f"cannot read {path} ({exc.strerror}); its patterns are not applied "
                       "until it can be read")
            return None

    def _compile(self, text: bytes, path: str) -> Spec:
        return compile_lines(text.decode("utf-8", "surrogateescape").splitlines(), path,
                             self._warn)

    def refresh(self, node: Node) -> bool:
        """Read ``node``'s ``.gitignore`` again; True if what it says changed."""
        text = self._read(os.path.join(node.path(), NAME))
        old = self._files.get(id(node))
        if old is not None and old.node is not node:  # an id reused: that node is gone
            old = None
        if text is None:
            return self._files.pop(id(node), None) is not None
        if old is not None and old.text == text:
            return False
        self._files[id(node)] = _File(node, text, self._compile(text, os.path.join(
            node.path(), NAME)))
        return True

    def has(self, node: Node) -> bool:
        found = self._files.get(id(node))
        return found is not None and found.node is node

    def read_outer(self, root: Root) -> None:
        """Read the files above ``root``, from its git work tree's top down, once."""
        top = _work_tree_top(root.node.path())
        if top is None:
            return
        outer: list[tuple[Spec, str]] = []
        here = root.node.path()
        info = os.path.join(top, ".git", "info", "exclude")
        for directory, path in [(top, info), *_ancestors(top, here)]:
            text = self._read(path)
            if text:
                prefix = os.path.relpath(here, directory).replace(os.sep, "/")
                outer.append((self._compile(text, path), "" if prefix == "." else prefix + "/"))
        if outer:
            self._outer[id(root)] = outer

    def forget_root(self, root: Root) -> None:
        self._outer.pop(id(root), None)

    # ------------------------------------------------------------ matching

    def tester(self, root: Root, parent: Node) -> Callable[[str, Callable[[], bool]], bool] | None:
        """What the files say of names in ``parent``: a test of ``(name, is_dir)``,
        found once for a whole listing; None if no file speaks for them."""
        checks = self._applying(root, parent)
        if not checks:
            return None

        def test(name: str, is_dir: Callable[[], bool]) -> bool:
            as_file = verdict(checks, name, False)
            as_dir = verdict(checks, name, True)
            return as_file if as_file == as_dir else (as_dir if is_dir() else as_file)

        return test

    def _applying(self, root: Root, parent: Node) -> list[tuple[Spec, str]]:
        """(file, path of ``parent`` relative to that file's directory, with a trailing
        ``/`` unless empty), outermost first."""
        files = self._files
        parts: list[str] = []
        found: list[tuple[Spec, str]] = []
        node: Node | None = parent
        while node is not None:
            f = files.get(id(node))
            if f is not None and f.node is node:
                found.append((f.spec, _prefix(parts)))
            if node is root.node:
                break
            parts.append(node.name)
            node = node.parent
        rel = _prefix(parts)
        found += [(spec, prefix + rel) for spec, prefix in reversed(self._outer.get(id(root), []))]
        found.reverse()
        return found


def _prefix(reversed_parts: list[str]) -> str:
    return "".join(p + "/" for p in reversed(reversed_parts))


def _work_tree_top(path: str) -> str | None:
    """The nearest directory at or above ``path`` that holds ``.git``."""
    here = path
    while True:
        if os.path.exists(os.path.join(here, ".git")):
            return here
        up = os.path.dirname(here)
        if up == here:
            return None
        here = up


def _ancestors(top: str, path: str) -> list[tuple[str, str]]:
    """(directory, its .gitignore) from ``top`` down to ``path``'s parent."""
    out: list[tuple[str, str]] = []
    here = os.path.dirname(path)
    while len(here) >= len(top) and here != path:
        out.append((here, os.path.join(here, NAME)))
        if here == top:
            break
        here = os.path.dirname(here)
    return list(reversed(out))


@dataclass(frozen=True, slots=True)
class Reread:
    """A directory's ``.gitignore`` may have changed (or, if ``read``, did): read it
    again and, if what it says changed, diff the directory's subtree with every
    directory listed again."""

    node: Node
    read: bool = False

    def run(self, e: Engine) -> None:
        gitignores = e.roots.gitignores
        if gitignores is None or not e.roots.attached(self.node):
            return
        if self.read or gitignores.refresh(self.node):
            e.differ.refilter(self.node)

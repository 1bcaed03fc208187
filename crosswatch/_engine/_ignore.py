"""What the cache leaves out: entries matched by the ignore patterns, hidden ones, and
files that no include pattern takes in.

An entry left out is neither watched, listed, nor reported, and neither is
anything below it: ignoring a directory saves its kernel watches and its scans.
(What ``.gitignore`` files leave out is ``_gitignore``'s business.)
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

_GLOB = re.compile(r"[*?\[]")


def _patterns(patterns: Iterable[str]) -> list[str]:
    return [p.strip("/") for p in patterns if p.strip("/")]


class Include:
    """Files are kept only where a pattern matches their name, their root-relative
    path, or one of their directories' (so ``src`` takes in everything below it).

    Directories stay, as the files they hold may match, except those no pattern can
    match anything in: a path pattern's leading literal parts prune the others.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        pats = _patterns(patterns)
        self.names = [p for p in pats if "/" not in p]
        self.paths = [p.split("/") for p in pats if "/" in p]

    def __bool__(self) -> bool:
        return bool(self.names or self.paths)

    def _matches(self, parts: list[str]) -> bool:
        """Does the entry at ``parts`` match a pattern, or an ancestor of it?"""
        names = self.names
        for depth, part in enumerate(parts, 1):
            if any(fnmatch.fnmatchcase(part, p) for p in names):
                return True
            rel = "/".join(parts[:depth])
            if any(fnmatch.fnmatchcase(rel, "/".join(p)) for p in self.paths):
                return True
        return False

    def _may_hold(self, parts: list[str]) -> bool:
        """Could a match lie at or below the directory at ``parts``?"""
        if self.names:
            return True
        return any(self._prefix_fits(p, parts) for p in self.paths)

    @staticmethod
    def _prefix_fits(pattern: list[str], parts: list[str]) -> bool:
        for want, part in zip(pattern, parts, strict=False):
            if "*" in want:  # fnmatch's ``*`` crosses ``/``: anything may follow
                return True
            if not fnmatch.fnmatchcase(part, want):
                return False
        return True

    def leaves_out(self, rel: str, is_dir: Callable[[], bool]) -> bool:
        parts = rel.split("/")
        if self._matches(parts):
            return False
        return not (is_dir() and self._may_hold(parts))


class Ignore:
    """Names or root-relative paths (with ``/``) matched by glob patterns are left
    out; so are names that start with ``.`` unless ``hidden``, and files that the
    ``include`` patterns, if any, do not take in (see :class:`Include`)."""

    def __init__(
        self, patterns: Iterable[str] = (), *, hidden: bool = True, include: Iterable[str] = ()
    ) -> None:
        pats = _patterns(patterns)
        names = [p for p in pats if "/" not in p]
        # Plain names are a set: the default list must cost a lookup, not a match.
        self.exact = frozenset(p for p in names if not _GLOB.search(p))
        self.globs = [p for p in names if _GLOB.search(p)]
        self.paths = [p for p in pats if "/" in p]
        self.hidden = hidden
        self.include = Include(include)

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs or self.paths or not self.hidden or self.include)

    def match(
        self, name: str, rel: Callable[[], str], is_dir: Callable[[], bool] = lambda: False
    ) -> bool:
        """Is the entry called ``name``, at root-relative path ``rel()``, left out?
        (``is_dir()`` is asked only where the answer depends on it.)"""
        if name in self.exact or (not self.hidden and name.startswith(".")):
            return True
        if any(fnmatch.fnmatchcase(name, p) for p in self.globs):
            return True
        if self.paths and any(fnmatch.fnmatchcase(rel(), p) for p in self.paths):
            return True
        return bool(self.include) and self.include.leaves_out(rel(), is_dir)

    def may_match(self, names: Iterable[str]) -> bool:
        """Could any of ``names`` be left out? (False costs one pass in C.)"""
        if self.globs or self.paths or not self.hidden or self.include:
            return True
        return not self.exact.isdisjoint(names)

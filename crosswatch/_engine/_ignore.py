"""What the cache leaves out: entries matched by the ignore patterns, and hidden ones.

An entry left out is neither watched, listed, nor reported, and neither is
anything below it: ignoring a directory saves its kernel watches and its scans.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

_GLOB = re.compile(r"[*?\[]")


class Ignore:
    """Names or root-relative paths (with ``/``) matched by glob patterns are left
    out; so are names that start with ``.`` unless ``hidden``."""

    def __init__(self, patterns: Iterable[str] = (), *, hidden: bool = True) -> None:
        pats = [p.strip("/") for p in patterns if p.strip("/")]
        names = [p for p in pats if "/" not in p]
        # Plain names are a set: the default list must cost a lookup, not a match.
        self.exact = frozenset(p for p in names if not _GLOB.search(p))
        self.globs = [p for p in names if _GLOB.search(p)]
        self.paths = [p for p in pats if "/" in p]
        self.hidden = hidden

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs or self.paths or not self.hidden)

    def match(self, name: str, rel: Callable[[], str]) -> bool:
        """Is the entry called ``name``, at root-relative path ``rel()``, left out?"""
        if name in self.exact or (not self.hidden and name.startswith(".")):
            return True
        if any(fnmatch.fnmatchcase(name, p) for p in self.globs):
            return True
        return bool(self.paths) and any(fnmatch.fnmatchcase(rel(), p) for p in self.paths)

    def may_match(self, names: Iterable[str]) -> bool:
        """Could any of ``names`` be left out? (False costs one pass in C.)"""
        return bool(self.globs or self.paths or not self.hidden) or not self.exact.isdisjoint(
            names
        )

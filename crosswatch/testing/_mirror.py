"""A consumer that rebuilds a tree's structure from events, checking the guarantees."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .._events import Change, Event
from .._longpath import open_dir
from .._os import DIR_FLAGS

_BY_FD = os.scandir in os.supports_fd


class GuaranteeError(AssertionError):
    """An event stream broke one of crosswatch's guarantees."""


def snapshot(*roots: str) -> dict[str, bool]:
    """Every entry below ``roots`` (not the roots themselves): path -> is_dir.

    Symlinks are entries, never followed. A root that is a file maps to itself.
    Directories are read at any depth, also past ``PATH_MAX`` where ``scandir`` takes
    a descriptor.
    """
    out: dict[str, bool] = {}
    for root in roots:
        if not os.path.isdir(root):
            if os.path.lexists(root):
                out[root] = False
            continue
        stack = [root]
        while stack:
            path = stack.pop()
            try:  # by descriptor where the OS can (past PATH_MAX), forced fallbacks or not
                fd = open_dir(path, DIR_FLAGS) if _BY_FD else -1
            except OSError:
                continue
            try:
                with os.scandir(path if fd < 0 else fd) as it:
                    for entry in it:
                        is_dir = entry.is_dir(follow_symlinks=False)
                        entry_path = os.path.join(path, entry.name)
                        out[entry_path] = is_dir
                        if is_dir:
                            stack.append(entry_path)
            except OSError:
                if fd >= 0:
                    raise
                continue  # not opened by path: as where the open above fails
            finally:
                if fd >= 0:
                    os.close(fd)
    return out


class Mirror:
    """Applies events to a copy of the tree; ``strict`` raises on any broken guarantee.

    Strict mode checks order (a parent is known before its children), no duplicate
    ``created``, and that ``deleted``/``moved``/``modified`` name a known entry.
    """

    def __init__(self, roots: Iterable[str], entries: dict[str, bool], *, strict: bool = True):
        self.roots = [os.path.abspath(r) for r in roots]
        self.entries = dict(entries)
        self.strict = strict
        self.rescans = 0

    @classmethod
    def of(cls, *roots: str, strict: bool = True) -> Mirror:
        """A mirror of what is on disk now under ``roots``."""
        return cls(roots, snapshot(*roots), strict=strict)

    def _fail(self, message: str, event: Event) -> None:
        if self.strict:
            raise GuaranteeError(f"{message}: {event!r}")

    def _parent_known(self, path: str) -> bool:
        parent = os.path.dirname(path)
        if parent in self.roots or any(path == r for r in self.roots):
            return True
        return self.entries.get(parent) is True

    def _below(self, path: str) -> list[str]:
        prefix = path + os.sep
        return [p for p in self.entries if p.startswith(prefix)]

    def apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply_one(event)

    def apply_one(self, e: Event) -> None:
        kind, path = e.kind, e.path
        if kind is Change.CREATED:
            if path in self.entries:
                self._fail("created for an entry already known", e)
            if not self._parent_known(path):
                self._fail("created before its directory", e)
            self.entries[path] = e.is_dir
        elif kind is Change.DELETED:
            if path in self.roots:
                for p in self._below(path):
                    del self.entries[p]
                self.entries.pop(path, None)
                return
            if path not in self.entries:
                self._fail("deleted an unknown entry", e)
            for p in self._below(path):
                del self.entries[p]
            self.entries.pop(path, None)
        elif kind is Change.MOVED:
            self._move(e)
        elif kind in (Change.MODIFIED, Change.ATTRIB):
            if path not in self.entries and path not in self.roots:
                self._fail(f"{kind.value} for an unknown entry", e)
        elif kind is Change.RESCAN:
            self.rescans += 1
        elif kind is Change.RESYNC:  # start over: what follows rebuilds the root
            for p in self._below(path):
                del self.entries[p]

    def _move(self, e: Event) -> None:
        src, dst = e.src_path, e.path
        assert src is not None
        if src not in self.entries:
            self._fail("moved an unknown entry", e)
            self.entries[dst] = e.is_dir
            return
        if not self._parent_known(dst):
            self._fail("moved into an unknown directory", e)
        if src == dst:
            self._fail("moved onto itself", e)
            return
        for p in self._below(dst):  # a move onto a path replaces it
            del self.entries[p]
        moving = [(p, self.entries.pop(p)) for p in [src, *self._below(src)]]
        for p, is_dir in moving:
            self.entries[dst + p[len(src) :]] = is_dir

    def diff(self, other: dict[str, bool]) -> str:
        """What differs from ``other`` (usually a fresh :func:`snapshot`), for messages."""
        missing = sorted(set(other) - set(self.entries))
        extra = sorted(set(self.entries) - set(other))
        wrong = sorted(p for p in set(other) & set(self.entries) if other[p] != self.entries[p])
        lines = [f"missing {p}" for p in missing[:20]] + [f"extra {p}" for p in extra[:20]]
        lines += [f"kind differs {p}" for p in wrong[:20]]
        return "\n".join(lines) or "no difference"

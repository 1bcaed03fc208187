"""watchdog's events, as hints: the directories they name, to be diffed.

Its event types are guesses (an observer coalesces, or takes a rename for a
deletion and a creation), so nothing but where it happened is taken from them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from crosswatch.backend import Action, DirDirty, EntryChange, Observation


@dataclass(eq=False)
class Watch:
    """One handle: a scheduled watchdog watch, and what its events mean."""

    handle: int
    path: str
    key: Any  # watchdog's ObservedWatch
    handler: Handler
    target: str | None = None
    """For a watch of an entry's own fate: that entry (the watch is on its parent)."""


class Handler:
    """Receives one watch's events in watchdog's dispatcher thread."""

    def __init__(
        self, post: Callable[[Sequence[Observation]], None], handle: int, path: str,
        target: str | None,
    ) -> None:
        self._post = post
        self._handle = handle
        self._path = path
        self._target = target

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        src = os.fsdecode(event.src_path)
        dst = os.fsdecode(event.dest_path) if event.dest_path else ""
        if self._target is not None:
            obs = self._fate(kind, src, dst)
        else:
            obs = self._hints(kind, src, dst, bool(event.is_directory))
        if obs:
            self._post(obs)

    def _fate(self, kind: str, src: str, dst: str) -> list[Observation]:
        h, target = self._handle, self._target
        if kind == "deleted" and src == target:
            return [EntryChange(h, "", Action.DELETED)]
        if kind == "moved" and target in (src, dst):  # renamed away, or replaced
            return [EntryChange(h, "", Action.MOVED_FROM)]
        return []

    def _rel(self, path: str) -> str | None:
        """``path`` relative to the watched directory; None if outside it."""
        if path == self._path:
            return ""
        prefix = self._path.rstrip(os.sep) + os.sep
        return path[len(prefix):] if path.startswith(prefix) else None

    def _hints(self, kind: str, src: str, dst: str, is_dir: bool) -> list[Observation]:
        h = self._handle
        out: list[Observation] = []
        if kind in ("opened", "closed_no_write"):
            return out  # no change of content or entries
        if kind in ("modified", "attrib") and is_dir:
            rel = self._rel(src)
            return [] if rel is None else [DirDirty(h, rel)]
        # The directories that hold the entry (before and after a move): their diff
        # compares each entry's stat, so it finds writes and attribute changes too.
        for path in (src, dst) if kind == "moved" else (src,):
            rel = self._rel(path)
            if rel is None:
                continue
            out.append(DirDirty(h, os.path.dirname(rel) if rel else ""))
            if is_dir and rel and kind in ("created", "moved") and path == (dst or src):
                out.append(DirDirty(h, rel, recursive=True))
        return out

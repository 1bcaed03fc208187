"""The events the engine produces, in order, until the watcher takes them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from .._events import Change, Event, event_size

#: Kinds of which a run for one path is one change: a burst of writes is one event.
_MERGED = frozenset({Change.MODIFIED, Change.ATTRIB, Change.ACCESSED})


class Shown:
    """The paths file roots are reported under where that is not their cached path.

    A file given through a symbolic link, or through another spelling of its
    directory, is cached under its directory's node; its events carry each path
    it was given as.
    """

    def __init__(self) -> None:
        self._paths: dict[str, list[str]] = {}  # cached path -> the paths given

    def __bool__(self) -> bool:
        return bool(self._paths)

    def __contains__(self, path: object) -> bool:
        return path in self._paths

    def of(self, path: str) -> list[str]:
        """The paths an event about ``path`` is reported under."""
        return self._paths.get(path, [path])

    def add(self, key: str, path: str, *, also_key: bool) -> None:
        """Report the file cached as ``key`` under ``path`` too.

        ``also_key``: it was given as ``key`` before, and stays reported so.
        """
        if path == key and key not in self._paths:
            return
        shown = self._paths.setdefault(key, [key] if also_key else [])
        if path not in shown:
            shown.append(path)

    def remove(self, key: str, path: str) -> bool:
        """Stop reporting ``key`` under ``path``; True if no path given is left."""
        shown = self._paths.get(key, [])
        if path in shown:
            shown.remove(path)
        if shown == [key]:  # given as it is too: reported so from now on
            del self._paths[key]
        if shown:
            return False
        self._paths.pop(key, None)
        return True

    def forget(self, key: str) -> None:
        self._paths.pop(key, None)


class Output:
    """The engine's events since the watcher last took them."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self.ignored_pids: frozenset[int] = frozenset()
        """Changes made by these processes are applied to the cache, never reported."""
        self.nbytes = 0
        """The memory the events not taken yet are estimated to hold."""
        self.shown = Shown()
        self.watched_name: str | None = None
        """Events about entries of this name are told to ``on_watched_name``."""
        self.on_watched_name: Callable[[str], None] = lambda path: None
        self._onto: tuple[set[int], set[int]] = (set(), set())
        self.taken_onto: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
        """The ``id()`` of each ``moved`` event of the last :meth:`take` whose
        destination held no entry, and of each that replaced one without a
        ``deleted`` (for coalescing; of other moves nothing is known)."""

    def __len__(self) -> int:
        return len(self._events)

    def emit(
        self,
        kind: Change,
        path: str,
        is_dir: bool,
        *,
        src: str | None = None,
        pid: int | None = None,
        exact: bool = False,
        held: bool | None = None,
        replaced: bool = False,
    ) -> None:
        """Add an event, under each path it is shown as (unless ``exact``).

        ``held``: whether a move's destination held an entry (see ``taken_onto``);
        ``replaced``: see :attr:`Event.replaced`.
        """
        if held is not None:
            start = len(self._events)
            self.emit(kind, path, is_dir, src=src, pid=pid, exact=exact, replaced=replaced)
            self._onto[held].update(id(event) for event in self._events[start:])
            return
        if self.watched_name is not None:
            self._watch_name(path, src)
        shown = self.shown
        if shown and not exact and (path in shown or src in shown):
            sources: list[str | None] = [None] if src is None else list(shown.of(src))
            for dst in shown.of(path):
                for source in sources:
                    self._append(kind, dst, is_dir, source, pid, replaced)
            return
        self._append(kind, path, is_dir, src, pid, replaced)

    def _watch_name(self, path: str, src: str | None) -> None:
        name = self.watched_name
        for p in (path, src):
            if p is not None and os.path.basename(p) == name:
                self.on_watched_name(p)

    def _append(
        self, kind: Change, path: str, is_dir: bool, src: str | None, pid: int | None,
        replaced: bool = False,
    ) -> None:
        if pid is not None and pid in self.ignored_pids:
            return
        events = self._events
        if kind in _MERGED and events and events[-1].kind is kind and events[-1].path == path:
            if replaced and not events[-1].replaced:  # the run says the entry changed
                events[-1] = dataclasses.replace(events[-1], replaced=True)
            return
        events.append(Event(kind, path, is_dir, src, pid, replaced))
        self.nbytes += event_size(path, src)

    def take(self) -> list[Event]:
        """The events produced since the last call."""
        out, self._events = self._events, []
        self.nbytes = 0
        free, held = self._onto
        self.taken_onto, self._onto = (frozenset(free), frozenset(held)), (set(), set())
        return out

"""The events the engine produces, in order, until the watcher takes them."""

from __future__ import annotations

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
        self.nbytes = 0
        """The memory the events not taken yet are estimated to hold."""
        self.shown = Shown()

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
    ) -> None:
        """Add an event, under each path it is shown as (unless ``exact``)."""
        shown = self.shown
        if shown and not exact and (path in shown or src in shown):
            sources: list[str | None] = [None] if src is None else list(shown.of(src))
            for dst in shown.of(path):
                for source in sources:
                    self._append(kind, dst, is_dir, source, pid)
            return
        self._append(kind, path, is_dir, src, pid)

    def _append(
        self, kind: Change, path: str, is_dir: bool, src: str | None, pid: int | None
    ) -> None:
        events = self._events
        if kind in _MERGED and events and events[-1].kind is kind and events[-1].path == path:
            return
        events.append(Event(kind, path, is_dir, src, pid))
        self.nbytes += event_size(path, src)

    def take(self) -> list[Event]:
        """The events produced since the last call."""
        out, self._events = self._events, []
        self.nbytes = 0
        return out

"""The events the engine produces, in order, until the watcher takes them."""

from __future__ import annotations

from .._events import Change, Event, event_size

#: Kinds of which a run for one path is one change: a burst of writes is one event.
_MERGED = frozenset({Change.MODIFIED, Change.ATTRIB, Change.ACCESSED})


class Output:
    """The engine's events since the watcher last took them."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self.nbytes = 0
        """The memory the events not taken yet are estimated to hold."""

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

"""crosswatch's events as the events watchdog's inotify observer emits.

watchdog names more than what changed: the parent directory's
``DirModifiedEvent`` after an entry appears, goes or is closed after writing,
and every entry inside a directory that moved or was removed. One crosswatch
event therefore becomes a few watchdog events, in the order watchdog emits them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from ..._events import Change, Event
from ._mirror import Mirror

WatchPath = str | bytes

#: (directory's class, file's class) for the kinds that name one entry.
_SINGLE: dict[Change, tuple[type[FileSystemEvent], type[FileSystemEvent]]] = {
    Change.CREATED: (DirCreatedEvent, FileCreatedEvent),
    Change.DELETED: (DirDeletedEvent, FileDeletedEvent),
    Change.MODIFIED: (DirModifiedEvent, FileModifiedEvent),
    Change.ATTRIB: (DirAttribEvent, FileAttribEvent),
}

#: What watchdog reports of a file's opens and closes (none for directories).
_ACCESS: dict[Change, type[FileSystemEvent]] = {
    Change.OPENED: FileOpenedEvent,
    Change.CLOSED_WRITE: FileClosedEvent,
    Change.CLOSED_NOWRITE: FileClosedNoWriteEvent,
}


class Translator:
    """Turns the events of one watch's root into watchdog events.

    ``root`` is the root as crosswatch names it (absolute); events leave with
    the path the watch was given, as ``str`` or ``bytes`` like it. ``mirror`` is
    kept for a recursive watch only: a flat one reports nothing below its
    entries, as watchdog does.
    """

    def __init__(self, root: str, watch_path: WatchPath, mirror: Mirror | None) -> None:
        self._root = root
        self._mirror = mirror
        self._out: Callable[[str], WatchPath] = (
            self._as_bytes if isinstance(watch_path, bytes) else self._as_str
        )
        self._watch_path = watch_path
        self.ended = False  #: the root itself was deleted: nothing more will come

    def _relative(self, path: str) -> str:
        return path[len(self._root) :].lstrip(os.sep)

    def _as_str(self, path: str) -> WatchPath:
        rel = self._relative(path)
        return os.path.join(os.fsdecode(self._watch_path), rel) if rel else self._watch_path

    def _as_bytes(self, path: str) -> WatchPath:
        rel = self._relative(path)
        return (
            os.path.join(os.fsencode(self._watch_path), os.fsencode(rel))
            if rel
            else self._watch_path
        )

    def translate(self, event: Event) -> list[FileSystemEvent]:
        """The watchdog events for ``event``, in watchdog's order."""
        kind = event.kind
        if kind is Change.MOVED:
            return self._moved(event)
        if kind is Change.DELETED:
            return self._deleted(event.path, event.is_dir)
        if kind in _ACCESS:
            return [] if event.is_dir else self._access(kind, event.path)
        if kind not in _SINGLE:
            return []  # accessed and rescan: watchdog has no such event
        if kind is Change.CREATED and self._mirror is not None:
            self._mirror.created(event.path, event.is_dir)
        out = [self._single(kind, event.path, event.is_dir)]
        if kind is Change.CREATED:
            out.append(self._parent_modified(event.path))
        return out

    def _single(
        self, kind: Change, path: str, is_dir: bool, synthetic: bool = False
    ) -> FileSystemEvent:
        dir_cls, file_cls = _SINGLE[kind]
        return (dir_cls if is_dir else file_cls)(self._out(path), is_synthetic=synthetic)

    def _parent_modified(self, path: str) -> FileSystemEvent:
        return DirModifiedEvent(os.path.dirname(self._out(path)))

    def _access(self, kind: Change, path: str) -> list[FileSystemEvent]:
        out = [_ACCESS[kind](self._out(path))]
        if kind is Change.CLOSED_WRITE:
            out.append(self._parent_modified(path))
        return out

    def _deleted(self, path: str, is_dir: bool) -> list[FileSystemEvent]:
        below = self._mirror.deleted(path) if self._mirror is not None else []
        out: list[FileSystemEvent] = []
        for entry, entry_is_dir in below:  # what went with it, as rmtree removes it
            out += [
                self._single(Change.DELETED, entry, entry_is_dir, True),
                self._parent_modified(entry),
            ]
        if path == self._root:
            self.ended = True
            return [*out, DirDeletedEvent(self._watch_path)]
        return [*out, self._single(Change.DELETED, path, is_dir), self._parent_modified(path)]

    def _moved(self, event: Event) -> list[FileSystemEvent]:
        src, dst = event.src_path, event.path
        assert src is not None  # a move always names its source
        cls = DirMovedEvent if event.is_dir else FileMovedEvent
        out = [
            cls(self._out(src), self._out(dst)),
            self._parent_modified(src),
            self._parent_modified(dst),
        ]
        if self._mirror is not None:
            for entry, is_dir in self._mirror.moved(src, dst, event.is_dir):
                old = src + entry[len(dst) :]
                sub = DirMovedEvent if is_dir else FileMovedEvent
                out.append(sub(self._out(old), self._out(entry), is_synthetic=True))
        return out

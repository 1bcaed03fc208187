"""The event model: what crosswatch tells consumers."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Change(enum.StrEnum):
    """What happened to an entry.

    ``RESYNC`` comes only from a follower of a published stream (see
    :func:`crosswatch.follow`): it lost its place, so what a consumer holds of that
    root is void, and the ``CREATED`` events after it rebuild the root.

    The access kinds (``OPENED`` … ``CLOSED_NOWRITE``) are only delivered when the
    watcher was asked for them, and only by backends that can see them.
    """

    CREATED = "created"
    MODIFIED = "modified"
    ATTRIB = "attrib"
    DELETED = "deleted"
    MOVED = "moved"
    RESCAN = "rescan"
    RESYNC = "resync"
    OPENED = "opened"
    ACCESSED = "accessed"
    CLOSED_WRITE = "closed_write"
    CLOSED_NOWRITE = "closed_nowrite"


#: Kinds delivered only on request (``access=True``).
ACCESS_KINDS: frozenset[Change] = frozenset(
    {Change.OPENED, Change.ACCESSED, Change.CLOSED_WRITE, Change.CLOSED_NOWRITE}
)


@dataclass(frozen=True, slots=True)
class Event:
    """One change under a watched root.

    ``path`` is absolute. For ``MOVED`` it is the destination and ``src_path`` the
    source; a move onto an existing path replaces what was there. For ``RESCAN``
    ``path`` is the root of the subtree that was re-read after events were lost:
    the catch-up events before it stand for everything that happened while blind.
    Names that are not valid UTF-8 are carried as surrogate escapes, so
    ``os.fsencode(event.path)`` gives back the exact bytes.

    ``replaced`` is set on a ``MODIFIED`` file whose path now holds another entry
    (another identity): an atomic save, or a file deleted and another created there
    in one merged batch. What a consumer keeps of the old file (an inode number, an
    open descriptor, a hard link) no longer speaks for the path.
    """

    kind: Change
    path: str
    is_dir: bool = False
    src_path: str | None = None
    pid: int | None = None
    replaced: bool = False

    def __repr__(self) -> str:
        src = f"{self.src_path!r} -> " if self.src_path is not None else ""
        tail = "/" if self.is_dir else ""
        pid = f" pid={self.pid}" if self.pid is not None else ""
        replaced = " replaced" if self.replaced else ""
        return f"<Event {self.kind.value} {src}{self.path!r}{tail}{pid}{replaced}>"


#: Bytes an event is estimated to hold besides its path's characters: the
#: :class:`Event` object, the string's header and the queue's slot for it (CPython,
#: 64-bit, measured). A move's source path adds its length and ``SRC_OVERHEAD``.
EVENT_OVERHEAD = 160
SRC_OVERHEAD = 64


def event_size(path: str, src_path: str | None) -> int:
    """The memory one event is estimated to hold (see ``max_queue_bytes``)."""
    size = EVENT_OVERHEAD + len(path)
    return size if src_path is None else size + SRC_OVERHEAD + len(src_path)


def event_bytes(events: Iterable[Event]) -> int:
    """The memory ``events`` are estimated to hold."""
    return sum(event_size(e.path, e.src_path) for e in events)

"""The event model: what crosswatch tells consumers."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Change(enum.StrEnum):
    """What happened to an entry.

    The access kinds (``OPENED`` … ``CLOSED_NOWRITE``) are only delivered when the
    watcher was asked for them, and only by backends that can see them.
    """

    CREATED = "created"
    MODIFIED = "modified"
    ATTRIB = "attrib"
    DELETED = "deleted"
    MOVED = "moved"
    RESCAN = "rescan"
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
    """

    kind: Change
    path: str
    is_dir: bool = False
    src_path: str | None = None
    pid: int | None = None

    def __repr__(self) -> str:
        src = f"{self.src_path!r} -> " if self.src_path is not None else ""
        tail = "/" if self.is_dir else ""
        pid = f" pid={self.pid}" if self.pid is not None else ""
        return f"<Event {self.kind.value} {src}{self.path!r}{tail}{pid}>"

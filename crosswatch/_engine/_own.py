"""The engine's own listings, which a backend with access events reports like anyone's."""

from __future__ import annotations

from dataclasses import dataclass

from .._backend import Action
from .._tree import Node


class OwnReads:
    """Counts the engine's listings of each directory, to take their access events out.

    Listing a watched directory makes the backend report it opened, accessed and
    closed_nowrite, on the directory's own watch and on its parent's (see
    :mod:`crosswatch._backend`). Reported, they would tell of a read nobody else
    made, and a consumer that reads the tree on access would make the watcher list
    it again, for ever. Each listing is counted when the directory is opened, before
    the backend's queue is read again; through each of the two watches, the next
    ``opened`` of that directory is then taken for the engine's, and so are the
    ``accessed`` and the one ``closed_nowrite`` that follow it. Another process's
    read of the directory at the same moment may be taken in its place: how many
    are reported stays right, which is all the events can tell apart.
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[int, bool], _Count] = {}

    def opened(self, node: Node, own: bool) -> None:
        """The engine opened ``node``; ``own``: seen through the directory's own watch."""
        key = (id(node), own)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = _Count(node)
        count.expected += 1

    def take(self, node: Node, own: bool, action: Action) -> bool:
        """Is this access event the engine's own? Counts it as seen if so."""
        key = (id(node), own)
        count = self._counts.get(key)
        if count is None:
            return False
        if action is Action.OPENED:
            if not count.expected:
                return False
            count.expected -= 1
            count.inside += 1
            return True
        if action is Action.ACCESSED:
            return count.inside > 0
        if action is Action.CLOSED_NOWRITE and count.inside:
            count.inside -= 1
            if not count.expected and not count.inside:
                del self._counts[key]
            return True
        return False

    def forget(self, node: Node) -> None:
        """``node`` left the cache: what it still has to come is never reported."""
        self._counts.pop((id(node), True), None)
        self._counts.pop((id(node), False), None)


@dataclass(slots=True)
class _Count:
    node: Node  # held, so that its id is not reused while it is counted
    expected: int = 0  # opens still to be seen
    inside: int = 0  # opens seen whose close is still to be seen

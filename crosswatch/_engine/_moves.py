"""Rename pairing: ``moved_from`` halves waiting for their ``moved_to``, and what they hold back.

While a move waits, its node is out of the cache (detached) but still in the
consumer's view. Every observation asks whether a pending move holds it back, and
every listing whether an entry it found is a pending move's; the indexes here
answer both in time independent of the number of moves pending.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TypeVar

from .._backend import Action, Backend, EntryChange, Observation
from .._tree import Node

#: A pending move's key: (id of its backend, its cookie).
Key = tuple[int, Hashable]
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


@dataclass(eq=False)
class Pending:
    """A ``moved_from`` waiting for its ``moved_to``; its node is detached meanwhile."""

    parent: Node
    name: str
    node: Node | None
    deadline: float
    held: list[tuple[Backend, Observation]] = field(default_factory=list)
    #: When it began among the pending moves: the oldest holds first.
    seq: int = 0
    #: (id(directory), name) of each place an observation held here is about.
    places: list[tuple[int, str]] = field(default_factory=list)


class PendingMoves:
    """The pending moves, by key, by old place, by moved node and by identity."""

    def __init__(self) -> None:
        self._by_key: dict[Key, Pending] = {}
        self._at: dict[tuple[int, str], list[Pending]] = {}  # (id(parent), name)
        self._nodes: dict[int, Pending] = {}  # id(moved node)
        self._identity: dict[tuple[int, int], list[Key]] = {}  # (dev, ino) of the moved node
        self._identity_of: dict[Key, tuple[int, int]] = {}
        self._held_from: dict[Key, list[Pending]] = {}  # key of a moved_from held -> holders
        self._held_at: dict[tuple[int, str], list[Pending]] = {}  # a held observation's place
        self._adjacent: dict[Backend, Key] = {}  # the last cookie-less moved_from, per backend
        self._count = 0

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def values(self) -> list[Pending]:
        return list(self._by_key.values())

    def items(self) -> list[tuple[Key, Pending]]:
        return list(self._by_key.items())

    def get(self, key: Key) -> Pending | None:
        return self._by_key.get(key)

    # ------------------------------------------------------------ pairing

    def start(
        self, backend: Backend, cookie: Hashable, parent: Node, name: str, node: Node | None,
        deadline: float,
    ) -> None:
        """A ``moved_from``: ``node`` (detached already, or None if uncached) waits.

        Without a cookie, take out the backend's previous one first (:meth:`displaced`).
        """
        key: Key = (id(backend), cookie)
        if cookie is None:
            self._adjacent[backend] = key
        self._add(key, Pending(parent, name, node, deadline))

    def displaced(self, backend: Backend, cookie: Hashable) -> Pending | None:
        """The move that a ``moved_from`` with ``cookie`` leaves without a partner, taken out.

        Halves without a cookie pair only when adjacent, so the backend's previous
        cookie-less ``moved_from`` is unpaired once another one comes.
        """
        if cookie is not None:
            return None
        key = self._adjacent.pop(backend, None)
        return self.pop(key) if key is not None else None

    def claim(self, backend: Backend, cookie: Hashable) -> Pending | None:
        """The pending move a ``moved_to`` completes, taken out; None if none waits."""
        key: Key = (id(backend), cookie)
        if cookie is None:
            key = self._adjacent.pop(backend, key)
        return self.pop(key)

    def partner(self, backend: Backend, cookie: Hashable) -> Pending | None:
        """The pending move a ``moved_to`` would complete, left in place."""
        key = self._adjacent.get(backend) if cookie is None else (id(backend), cookie)
        return self._by_key.get(key) if key is not None else None

    def key_of(self, dev: int, ino: int) -> Key | None:
        """The pending move of the entry with this identity, if any (oldest first)."""
        keys = self._identity.get((dev, ino))
        return keys[0] if keys else None

    # ------------------------------------------------------------ holding back

    def hold(
        self, pending: Pending, backend: Backend, obs: Observation,
        places: Iterable[tuple[Node, str]] = (),
    ) -> None:
        """Queue ``obs`` behind ``pending``; a held ``moved_from`` takes its ``moved_to`` along.

        ``places`` are the (directory, name) ``obs`` is about: until ``pending`` is
        settled, later observations about them wait behind it too (see :meth:`holding`).
        """
        pending.held.append((backend, obs))
        if isinstance(obs, EntryChange) and obs.action is Action.MOVED_FROM:
            self._held_from.setdefault((id(backend), obs.cookie), []).append(pending)
        for node, name in places:
            place = (id(node), name)
            holders = self._held_at.setdefault(place, [])
            if pending not in holders:
                holders.append(pending)
                pending.places.append(place)

    def held_partner(self, backend: Backend, cookie: Hashable) -> Pending | None:
        """The pending move behind which this ``moved_to``'s ``moved_from`` was held.

        Without a cookie, only a ``moved_from`` held just before counts.
        """
        for pending in self._held_from.get((id(backend), cookie), ()):
            if cookie is not None:
                return pending
            source, last = pending.held[-1]
            if source is backend and isinstance(last, EntryChange) and (
                last.action is Action.MOVED_FROM
            ):
                return pending
        return None

    def at(self, parent: Node, name: str) -> Pending | None:
        """The first pending move of a cached entry out of ``parent``/``name``."""
        others = self._at.get((id(parent), name))
        return others[0] if others else None

    def holding(self, node: Node, name: str, skip: Pending | None) -> Pending | None:
        """The oldest pending move that ``name`` in ``node`` must wait behind: a move of
        it, or of ``node`` or an ancestor; or one holding an observation about it or
        about an ancestor (a rename held there names its source too, which must not
        be looked at before the rename is applied: the name may belong to a newer
        entry by then)."""
        found = [p for p in self._at.get((id(node), name), ()) if p is not skip]
        held_at = self._held_at
        if held_at:
            found += [p for p in held_at.get((id(node), name), ()) if p is not skip]
        up: Node | None = node
        while up is not None:
            moved = self._nodes.get(id(up))
            if moved is not None and moved is not skip:
                found.append(moved)
            if held_at and up.parent is not None:
                found += [p for p in held_at.get((id(up.parent), up.name), ()) if p is not skip]
            up = up.parent
        return min(found, key=attrgetter("seq"), default=None)

    def inside(self, node: Node) -> bool:
        """Is ``node`` a pending move's node, or below one?"""
        up: Node | None = node
        while up is not None:
            if id(up) in self._nodes:
                return True
            up = up.parent
        return False

    def below(self, tops: Iterable[tuple[Node, bool]]) -> list[Key]:
        """The pending moves out of any of ``tops`` (a top's subtree if its flag is set)."""
        tops = list(tops)
        return [
            key
            for key, p in self._by_key.items()
            if any(
                top.is_ancestor_of(p.parent) if recursive else p.parent is top
                for top, recursive in tops
            )
        ]

    def due(self) -> float | None:
        return min((p.deadline for p in self._by_key.values()), default=None)

    # ------------------------------------------------------------ bookkeeping

    def _add(self, key: Key, pending: Pending) -> None:
        self.pop(key)
        self._by_key[key] = pending
        self._count += 1
        pending.seq = self._count
        node = pending.node
        if node is not None:
            self._at.setdefault((id(pending.parent), pending.name), []).append(pending)
            self._nodes[id(node)] = pending
            self._identity_of[key] = (node.dev, node.ino)
            self._identity.setdefault((node.dev, node.ino), []).append(key)

    def pop(self, key: Key) -> Pending | None:
        pending = self._by_key.pop(key, None)
        if pending is None:
            return None
        node = pending.node
        if node is not None:
            _unlist(self._at, (id(pending.parent), pending.name), pending)
            if self._nodes.get(id(node)) is pending:
                del self._nodes[id(node)]
            _unlist(self._identity, self._identity_of.pop(key), key)
        for backend, obs in pending.held:
            if isinstance(obs, EntryChange) and obs.action is Action.MOVED_FROM:
                _unlist(self._held_from, (id(backend), obs.cookie), pending)
        for place in pending.places:
            _unlist(self._held_at, place, pending)
        pending.places.clear()
        return pending

    def clear(self) -> list[Pending]:
        """Forget every pending move and every adjacency; the moves, for the caller."""
        pendings = [p for key in list(self._by_key) if (p := self.pop(key)) is not None]
        self._adjacent.clear()
        return pendings


def _unlist(index: dict[_K, list[_V]], key: _K, item: _V) -> None:
    """Remove ``item`` from the list at ``key`` (pending moves compare by identity)."""
    items = index.get(key)
    if items is None:
        return
    try:
        items.remove(item)
    except ValueError:
        return
    if not items:
        del index[key]


def restore(pendings: Iterable[Pending]) -> None:
    """Put detached nodes back where they were, unless their names were taken since."""
    for p in pendings:
        if p.node is not None and p.name not in p.parent.children:
            p.parent.children[p.name] = p.node

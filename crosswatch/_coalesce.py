"""Coalescing: the events of one batch merged, per entry, into fewer that say the same.

:func:`coalesce` is a pure function of a list of events. Its rules are in
``docs/coalescing.md``; what they keep is the event model's contract: a mirror that
applies the merged list ends where one that applies the list as given does, and
every guarantee about order and duplicates holds for the merged list too.

An event is merged with an earlier one about the same entry (the tree in
:mod:`._coalesce_tree` follows entries through moves), and only where the batch
itself shows that this is sound. What the batch does not show (whether a path held
an entry before the batch named it) is assumed unknown, and the events that depend
on it are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from ._coalesce_tree import ABSENT, PRESENT, UNKNOWN, Node, Tree
from ._events import ACCESS_KINDS, Change, Event

#: Kinds nothing is merged across: a ``rescan`` notice vouches for the events before
#: it, and access kinds report reads of entries at the paths they had then.
_BARRIERS = frozenset({Change.RESCAN, *ACCESS_KINDS})


def _unknown(event: Event) -> bool:
    return False


def coalesce(
    events: Iterable[Event],
    *,
    onto_free: Callable[[Event], bool] = _unknown,
    onto_entry: Callable[[Event], bool] = _unknown,
) -> list[Event]:
    """``events`` (one batch, in order) merged by the rules of coalescing.

    ``onto_free(event)`` says of a ``moved`` event that its destination held no
    entry, ``onto_entry(event)`` that it replaced an entry of the same kind without
    a ``deleted`` for it. Of other moves nothing is assumed beyond what the batch
    itself shows: a move may replace an entry without a word.
    """
    known = (onto_free, onto_entry)
    out: list[Event] = []
    segment: list[Event] = []
    for event in events:
        if event.kind in _BARRIERS:
            out += _Coalescer(*known).run(segment)
            out.append(event)
            segment = []
        else:
            segment.append(event)
    out += _Coalescer(*known).run(segment)
    return out


class _Unfit(Exception):
    """An event that does not fit what the batch said before (which a stream from
    the engine never has): merging stops there and starts again after it."""


class _Coalescer:
    """One run over a segment of a batch between barriers."""

    def __init__(
        self, onto_free: Callable[[Event], bool], onto_entry: Callable[[Event], bool]
    ) -> None:
        self.out: list[Event | None] = []
        self.tree = Tree()
        self._onto_free = onto_free
        self._onto_entry = onto_entry

    def run(self, events: list[Event]) -> list[Event]:
        done: list[Event] = []
        for event in events:
            try:
                self._one(event)
            except _Unfit:
                done += self._result()
                done.append(event)
                self.out, self.tree = [], Tree()
        return done + self._result()

    def _result(self) -> list[Event]:
        return [e for e in self.out if e is not None]

    def _one(self, e: Event) -> None:
        if e.kind is Change.CREATED:
            self._created(e.path, e.is_dir, e.pid)
        elif e.kind is Change.DELETED:
            self._deleted(e)
        elif e.kind is Change.MOVED:
            self._moved(e)
        else:
            self._changed(e)

    # ------------------------------------------------------------ bookkeeping

    def _emit(self, event: Event) -> int:
        self.out.append(event)
        return len(self.out) - 1

    def _live(self, slot: int | None) -> bool:
        return slot is not None and self.out[slot] is not None

    def _touch(self, node: Node, slot: int, *, structural: bool, outside: Node | None = None,
               ) -> None:
        """Record the event at ``slot`` on ``node`` and the directories above it.

        ``outside``: for a move, the entry's old place; a new directory above the
        new place that is not above the old one had the entry moved into it.
        """
        if structural:
            node.last = max(node.last, slot)
        if node.new:
            node.inside.append((slot, False))
        above_src = set() if outside is None else {id(a) for a in outside.ancestors()}
        for a in node.ancestors():
            a.last = max(a.last, slot)
            if a.new:
                moved_in = outside is not None and id(a) not in above_src
                a.inside.append((slot, moved_in))
                if moved_in:
                    a.pure = False

    def _present(self, e: Event, path: str) -> Node:
        """The entry ``e`` is about, which must be there."""
        node = self.tree.node(path)
        if node.state == ABSENT:
            raise _Unfit
        if node.state == UNKNOWN:  # the event tells what it is
            node.state, node.is_dir = PRESENT, e.is_dir
        return node

    # ------------------------------------------------------------ the kinds

    def _changed(self, e: Event) -> None:
        """``modified`` and ``attrib``: one of each per entry, none after ``created``."""
        node = self._present(e, e.path)
        if self._live(node.created):
            return
        attr = e.kind is Change.ATTRIB
        if self._live(node.attr if attr else node.mod):
            if e.replaced and not attr:
                self._now_replaced(node.mod)
            return
        slot = self._emit(e)
        if attr:
            node.attr = slot
        else:
            node.mod = slot
        self._touch(node, slot, structural=False)

    def _now_replaced(self, slot: int | None) -> None:
        """The ``modified`` kept at ``slot`` is about another file now."""
        if slot is not None and (earlier := self.out[slot]) is not None:
            self.out[slot] = dataclasses.replace(earlier, replaced=True)

    def _created(self, path: str, is_dir: bool, pid: int | None) -> None:
        old = self.tree.node(path)
        if old.state == PRESENT:
            raise _Unfit
        gone = old.removed_by
        if not is_dir and gone is not None and self._gone_file(gone):
            # A file deleted and a file created at its path: the path holds new content.
            self.out[gone] = None
            slot = self._emit(Event(Change.MODIFIED, path, False, pid=pid, replaced=True))
            node = self.tree.replace(old, PRESENT, slot)
            node.is_dir, node.mod = False, slot
            self._touch(node, slot, structural=True)
            return
        slot = self._emit(Event(Change.CREATED, path, is_dir, pid=pid))
        node = self.tree.replace(old, PRESENT, slot)
        node.is_dir, node.new, node.complete, node.created, node.pid = is_dir, True, True, slot, pid
        node.removed_by = gone  # restored if the entry goes again without a trace
        self._touch(node, slot, structural=True)

    def _gone_file(self, slot: int) -> bool:
        event = self.out[slot]
        return event is not None and event.kind is Change.DELETED and not event.is_dir

    def _deleted(self, e: Event) -> None:
        node = self._present(e, e.path)
        self._drop_below(node)
        if node.new and not node.pinned:
            # Created and deleted in the batch: nothing of it is told.
            self._annihilate(node)
            free = self.tree.replace(node, ABSENT, len(self.out))
            if node.arrived is None:
                free.removed_by = node.removed_by
            return
        slot = self._emit(Event(Change.DELETED, e.path, node.is_dir, pid=e.pid))
        free = self.tree.replace(node, ABSENT, slot)
        if not node.is_dir:
            free.removed_by = slot
        self._touch(free, slot, structural=True)

    def _drop_below(self, node: Node) -> None:
        """What a deletion of ``node`` makes needless: changes of content and metadata,
        and new entries below it that nothing outside depends on."""
        stack = [node]
        while stack:
            n = stack.pop()
            for slot in (n.mod, n.attr):
                if slot is not None:
                    self.out[slot] = None
            n.mod = n.attr = None
            if n is not node and n.new and not n.pinned:
                self._annihilate(n)
                continue
            stack.extend(c for c in n.children.values() if c.state != ABSENT)

    def _annihilate(self, node: Node) -> None:
        """Take back every event about a new entry and below it. An entry moved in
        from outside is reported deleted at its old path instead."""
        out = self.out
        for slot, moved_in in node.inside:
            event = out[slot]
            if event is None:
                continue
            if not moved_in:
                out[slot] = None
            elif event.kind is Change.MOVED and event.src_path is not None:
                # (Once said so, it stays: an outer directory's turn keeps it.)
                out[slot] = Event(Change.DELETED, event.src_path, event.is_dir, pid=event.pid)
        node.inside = []

    def _moved(self, e: Event) -> None:
        assert e.src_path is not None
        entry = self._present(e, e.src_path)
        dst = self.tree.node(e.path)
        if dst is entry or dst.is_below(entry) or entry.is_below(dst):
            raise _Unfit
        if dst.state == UNKNOWN and self._onto_entry(e):
            dst.state, dst.is_dir = PRESENT, e.is_dir  # an entry the batch did not name
        fresh = entry.new and entry.arrived is None and not entry.pinned and entry.pure
        if dst.state == PRESENT:
            if fresh:
                # The entry replaced is said to go first (a deletion may come first
                # anyway), so that the new one can be told as created.
                self._deleted(Event(Change.DELETED, e.path, dst.is_dir, pid=e.pid))
                dst = self.tree.node(e.path)
            else:
                self._drop_below(dst)  # replaced: as good as deleted
                if not (dst.new and not dst.pinned):
                    self._plain_move(entry, dst, e, known=False)  # the move says it went
                    return
                self._annihilate(dst)
                dst = self.tree.replace(dst, ABSENT, len(self.out))
        known = dst.state == ABSENT or (dst.state == UNKNOWN and self._onto_free(e))
        if known and fresh:
            self._recreate(entry, e.path)
        elif known and self._can_collapse(entry, dst):
            self._collapse(entry, dst, e.path)
        else:
            self._plain_move(entry, dst, e, known=known)

    def _plain_move(self, entry: Node, dst: Node, e: Event, *, known: bool) -> None:
        slot = self._emit(e)
        for a in entry.ancestors():  # new directories it left must stay told
            if a.new and not dst.is_below(a):
                a.pinned = True
        if entry.new and not known:
            entry.pinned = True  # it may have replaced an entry: its move must stay
        self.tree.replace(entry, ABSENT, slot)
        self.tree.relink(entry, dst)
        entry.stamp = slot
        entry.prev_arrived = (entry.arrived, entry.arrived_known)
        entry.arrived, entry.arrived_known = slot, known
        vacated = self.tree.node(e.src_path or "")
        self._touch(vacated, slot, structural=True)
        self._touch(entry, slot, structural=True, outside=vacated)

    def _recreate(self, entry: Node, path: str) -> None:
        """A new entry moved to a free path: told as created there, with all below it."""
        below = [(n.path()[len(entry.path()):], n.is_dir, n.pid) for n in entry.live_below()]
        for slot, _ in entry.inside:
            self.out[slot] = None
        self.tree.replace(entry, ABSENT, len(self.out))
        self._created(path, entry.is_dir, entry.pid)
        for rel, is_dir, pid in below:
            self._created(path + rel, is_dir, pid)

    def _can_collapse(self, entry: Node, dst: Node) -> bool:
        """Whether the move that brought ``entry`` here can go to ``dst`` instead, at
        its own position: its destination was free, nothing happened below the entry
        since, and ``dst`` and the directories above it were as they are now."""
        m = entry.arrived
        if m is None or not entry.arrived_known or entry.last > m:
            return False
        first = self.out[m]
        if first is None or first.kind is not Change.MOVED:
            return False
        if dst.stamp > m or any(a.stamp > m or a.new for a in dst.ancestors()):
            return False
        return not any(a.new for a in entry.ancestors())

    def _collapse(self, entry: Node, dst: Node, path: str) -> None:
        """A chain of moves told as one (or none, when it ends where it began)."""
        m = entry.arrived
        assert m is not None
        first = self.out[m]
        assert first is not None
        assert first.src_path is not None
        back = first.src_path == path
        self.out[m] = None if back else Event(
            Change.MOVED, path, entry.is_dir, src_path=first.src_path, pid=first.pid
        )
        for slot in (entry.mod, entry.attr):  # told after the move: at its new path
            if slot is None or slot < m:
                continue
            event = self.out[slot]
            if event is not None:
                self.out[slot] = Event(event.kind, path, event.is_dir, pid=event.pid)
        self.tree.replace(entry, ABSENT, m)
        self.tree.relink(entry, dst)
        entry.stamp = m
        if back:
            entry.arrived, entry.arrived_known = entry.prev_arrived
        for a in entry.ancestors():
            a.last = max(a.last, m)


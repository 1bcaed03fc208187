"""Deferred work: one worklist of typed tasks.

Applying an observation may release other work: observations held behind a move
that has now settled, a name to look at again once a removal is reported, a
listing to place. None of it is done by calling into the rules again from the
middle of a rule. It is a task, spawned onto the worklist:

- tasks spawned while a task runs go first, in the order spawned, before what
  was already waiting: the result is the order a recursion would give, but every
  rule runs to its end before the next one starts, so none of them can find its
  own node removed under its feet by a replay;
- a task that has more to do after what it spawned spawns its own continuation
  last;
- a task that reports without bound (a rescan, a listing, a big read) stops once
  the consumer is full and pauses: its rest runs first when there is room, and
  what it spawned waits until it is done (see ``Worklist.pause``);
- *after-read* tasks wait until the backend's queue has been read dry: what the
  disk showed before the kernel queued its events (a rename seen before its
  ``moved_from`` is read, a listing that saw an entry renamed in) is looked at
  once the queue has caught up. The watcher's loop does the reading: the engine
  never calls a backend.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .._backend import Backend, DirDirty, Observation
from .._events import Change
from .._tree import Node, lstat

if TYPE_CHECKING:  # the parts import their tasks from here: no cycle at run time
    from . import Engine
    from ._diff import Diff
    from ._moves import Key, Pending
    from ._roots import Root
    from ._scan import Listed
    from ._stale import Suspect


class Task(Protocol):
    def run(self, e: Engine) -> None: ...


class Worklist:
    """The tasks waiting, now and after the next read of the backend's queue."""

    def __init__(self) -> None:
        self._now: deque[Task] = deque()
        self._spawned: list[Task] | None = None
        self._after_read: list[tuple[int, Task]] = []
        self._reads = 0
        self.reading = False
        """A read of the backend may still come before this round of work ends."""
        self._full: Callable[[], bool] | None = None
        self._paused: Task | None = None

    def __bool__(self) -> bool:
        return bool(self._now or self._after_read)

    def spawn(self, task: Task) -> None:
        """Run ``task`` after the running one, before what was waiting already."""
        if self._spawned is not None:
            self._spawned.append(task)
        else:
            self._now.append(task)

    def spawned(self) -> int:
        """How many tasks the running one has spawned so far."""
        return len(self._spawned) if self._spawned is not None else 0

    def after_read(self, task: Task) -> None:
        """Run ``task`` once the backend's queue has been read dry."""
        self._after_read.append((self._reads, task))

    def read(self, *, dry: bool) -> None:
        """The backend's queue has just been read; ``dry``: it had nothing more.

        What waited for the queue to catch up may run once a read comes back dry:
        then everything the kernel queued before has been applied.
        """
        if dry:
            self._reads += 1

    def waiting(self) -> bool:
        """Are after-read tasks waiting?"""
        return bool(self._after_read)

    def running_late(self) -> bool:
        """Are tasks left to run now (a drain was stopped between two of them)?"""
        return bool(self._now)

    def wants_input(self) -> bool:
        """Is every after-read task still waiting for a read?"""
        after = self._after_read
        return bool(after) and all(gen >= self._reads for gen, _ in after)

    def take_after_read(self) -> list[Task]:
        """The after-read tasks that may run: those a read has come after, else all."""
        ready = [t for gen, t in self._after_read if gen < self._reads]
        if ready:
            self._after_read = [(g, t) for g, t in self._after_read if g >= self._reads]
        else:
            ready = [t for _, t in self._after_read]
            self._after_read = []
        return ready

    def full(self) -> bool:
        """Has the consumer all it can take? Asked by a long task between two pieces.

        A task that reports without bound (a rescan, a new directory's listing)
        stops at its next piece once this is true, and :meth:`pause`-s.
        """
        return self._full is not None and self._full()

    def pause(self, rest: Task) -> None:
        """The running task stopped for room; ``rest`` does what it has left.

        ``rest`` runs before anything else once there is room, and what the task
        spawned waits until the whole of it is done: the cache goes through the
        same states as if it had run at once, only the consumer had a pause.
        """
        self._paused = rest

    def drain(self, e: Engine, full: Callable[[], bool] | None = None) -> None:
        """Run tasks until none is left to run now, or ``full()`` between two of them."""
        now = self._now
        self._full = full
        try:
            while now and (full is None or not full()):
                task = now.popleft()
                held: list[Task] = []
                if isinstance(task, _Paused):
                    held = task.held
                    task = task.rest
                self._spawned = []
                try:
                    task.run(e)
                finally:
                    spawned, self._spawned = held + self._spawned, None
                    paused, self._paused = self._paused, None
                if paused is not None:
                    now.appendleft(_Paused(paused, spawned))
                else:
                    now.extendleft(reversed(spawned))
        finally:
            self._full = None


@dataclass(frozen=True, slots=True)
class _Paused:
    """A paused task's rest, and what it spawned before (run once it is done)."""

    rest: Task
    held: list[Task]

    def run(self, e: Engine) -> None:  # run by drain, never directly
        raise AssertionError("a paused task runs through Worklist.drain")


# ---------------------------------------------------------------- the tasks


@dataclass(frozen=True, slots=True)
class Apply:
    """Observations read from ``backend``, applied in order from ``start``.

    A run of ``DirDirty`` is diffed as one. After an observation that spawned work,
    the rest waits behind that work; once the consumer is full, it waits for room.
    """

    backend: Backend
    observations: Sequence[Observation]
    start: int = 0

    def run(self, e: Engine) -> None:
        work, rules = e.work, e.rules
        observations, backend = self.observations, self.backend
        i, end = self.start, len(observations)
        while i < end:
            obs = observations[i]
            if isinstance(obs, DirDirty):
                j = i
                dirty: list[tuple[Node, bool]] = []
                while j < end and isinstance(observations[j], DirDirty):
                    d = observations[j]
                    assert isinstance(d, DirDirty)
                    located = e.roots.locate(backend, d.handle, d.name)
                    if located is not None:
                        dirty.append((located, d.recursive))
                    j += 1
                e.differ.diff_dirty(dirty)
                i = j
            else:
                rules.apply_one(backend, obs)
                i += 1
            if i < end and work.spawned():
                work.spawn(Apply(backend, observations, i))
                return
            if i < end and work.full():
                work.pause(Apply(backend, observations, i))
                return


@dataclass(frozen=True, slots=True)
class Replay:
    """What a settled move held back, applied in order from ``start``."""

    held: Sequence[tuple[Backend, Observation]]
    start: int = 0

    def run(self, e: Engine) -> None:
        work, held = e.work, self.held
        for i in range(self.start, len(held)):
            backend, obs = held[i]
            e.rules.apply_one(backend, obs)
            if work.spawned() and i + 1 < len(held):
                work.spawn(Replay(held, i + 1))
                return


def replay(e: Engine, pending: Pending) -> None:
    if pending.held:
        e.work.spawn(Replay(pending.held))


@dataclass(frozen=True, slots=True)
class LookAt:
    """Make the cache agree with the disk for one name."""

    parent: Node
    name: str
    pid: int | None = None

    def run(self, e: Engine) -> None:
        e.rules.reconcile(self.parent, self.name, self.pid)


@dataclass(frozen=True, slots=True)
class LookAgain:
    """Make the cache agree with the disk for one name, a file's content included:
    what an observation said of it may be older than it seemed (see
    ``Capabilities.merges_later``). ``pid`` made the rename: the kernel folds only
    a process's own events together, so what turns up here is that process's."""

    parent: Node
    name: str
    pid: int | None = None

    def run(self, e: Engine) -> None:
        if not e.roots.attached(self.parent):
            return
        e.rules.reconcile(self.parent, self.name, self.pid)
        node = self.parent.children.get(self.name)
        if node is None or node.is_dir or not e.roots.tracked(self.parent, self.name):
            return
        st = lstat(os.path.join(self.parent.path(), self.name))
        if st is None or not node.same(st) or not _written_since_renamed(node, st):
            return
        change = node.refresh(st)
        if change is not None:
            e.out.emit(change, node.path(), False, pid=self.pid)


def _written_since_renamed(node: Node, st: os.stat_result) -> bool:
    """Can the file have been written after its rename?

    A content known only as of a time (a listing, a reported write) may have been
    written within a timestamp tick of it, before or after. The rename set the
    inode's ctime, and a later write sets mtime and ctime alike: a last write older
    than the last ctime came before the rename (a metadata change after a write
    after the rename is the one sequence this cannot tell).
    """
    return node.size >= 0 or st.st_mtime_ns >= st.st_ctime_ns


@dataclass(frozen=True, slots=True)
class Unpark:
    """Look again at a name where a cached directory turned up before its rename."""

    parent: Node
    name: str

    def run(self, e: Engine) -> None:
        e.stale.unpark(self.parent, self.name)


@dataclass(frozen=True, slots=True)
class Adopt:
    """Complete the pending move whose entry a listing found at ``name``."""

    parent: Node
    name: str
    key: Key

    def run(self, e: Engine) -> None:
        e.renames.adopt(self.parent, self.name, self.key)


@dataclass(frozen=True, slots=True)
class CheckSuspect:
    """Look again at an entry a move put where the disk showed something else."""

    suspect: Suspect

    def run(self, e: Engine) -> None:
        s = self.suspect
        if not e.roots.attached(s.dst_parent):
            return
        # Even when the entry moved on or went since: it may have been the wrong
        # one (a listing newer than the queue cached another entry of the name),
        # and what the disk has at the destination was never reported.
        here = s.dst_parent.children.get(s.dst_name) is s.node
        e.rules.reconcile(s.dst_parent, s.dst_name)
        if here:
            e.work.spawn(_SuspectSource(s))


@dataclass(frozen=True, slots=True)
class _SuspectSource:
    """The source of a suspect move, if the entry is back there."""

    suspect: Suspect

    def run(self, e: Engine) -> None:
        s = self.suspect
        if s.src_name in s.src_parent.children or not e.roots.attached(s.src_parent):
            return
        back = lstat(os.path.join(s.src_parent.path(), s.src_name))
        if back is not None and s.node.same(back):
            e.rules.reconcile(s.src_parent, s.src_name)


@dataclass(frozen=True, slots=True)
class CheckPath:
    """An entry on ``root``'s path was renamed or removed: does the path still lead to it?"""

    root: Root

    def run(self, e: Engine) -> None:
        e.fates.check(self.root)


@dataclass(frozen=True, slots=True)
class DiffTops:
    """Diff ``tops`` against the disk, once no move out of them waits.

    Moves pending out of what the diff reads are put back first and what they held
    is replayed; the diff then runs after those replays (its continuation), as
    they may start moves of their own that are put back in turn.
    """

    tops: Sequence[tuple[Node, bool]]

    def run(self, e: Engine) -> None:
        if e.differ.unpend_below(self.tops):
            e.work.spawn(self)
        else:
            e.differ.diff_now(list(self.tops))


@dataclass(frozen=True, slots=True)
class SettleDiff:
    """The rest of a rescan stopped for room: report what it has left."""

    diff: Diff
    missing: list[Node]

    def run(self, e: Engine) -> None:
        e.differ.settle(self.diff, self.missing)


@dataclass(frozen=True, slots=True)
class Notice:
    """Say ``rescan`` for the tops of a finished rescan that are still there."""

    tops: Sequence[Node]

    def run(self, e: Engine) -> None:
        for top in self.tops:
            if e.roots.attached(top):
                root = e.roots.at_top(top)
                e.out.emit(Change.RESCAN, root.path if root else top.path(), True)


@dataclass(frozen=True, slots=True)
class ListLevel:
    """List the new directories waiting; each listing is placed after the next read."""

    def run(self, e: Engine) -> None:
        e.newdirs.list_level()


@dataclass(slots=True)
class Place:
    """Cache and report a new directory's listing, from entry ``start`` on."""

    node: Node
    root: Root
    listing: list[Listed]
    touched: set[str] | None = None
    start: int = 0

    def run(self, e: Engine) -> None:
        e.newdirs.place(self)


@dataclass(frozen=True, slots=True)
class Settle:
    """A ``moved_from`` whose partner did not come in time (if it still waits)."""

    key: Key
    now: float

    def run(self, e: Engine) -> None:
        pending = e.moves.get(self.key)  # replaying held observations may pair others
        if pending is not None and pending.deadline <= self.now:
            e.moves.pop(self.key)
            e.renames.settle_unpaired(pending)

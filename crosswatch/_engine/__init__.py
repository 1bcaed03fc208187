"""The engine: turns backend observations into events a consumer can trust.

It keeps a cache of every watched tree and treats each observation as a hint to
verify against the disk; a rescan (a diff of disk against cache) repairs whatever
was lost. Its parts, one concern and one piece of state each:

- ``_roots``: the roots, their cached trees and the backends' handles;
- ``_moves``: rename pairing state, the pending moves and what they hold back;
- ``_renames``: the rename rules; ``_rules``: every other observation;
- ``_scan``: opening, listing and reading directories in;
- ``_watches``: placing watches, and polling where the OS refused one;
- ``_listings``: new directories, listed at once and placed after a further read;
- ``_stale``: what could not be verified when it was read, looked at later;
- ``_diff``: rescans; ``_output``: the events, in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from .._backend import Backend, DirDirty, Observation
from .._events import Event
from .._tree import Kind, Node, kind_of
from ._diff import Differ
from ._listings import NewDirs
from ._moves import PendingMoves
from ._output import Output
from ._renames import Renames
from ._roots import Ignore, Root, Roots
from ._rules import Rules
from ._scan import Scanner
from ._stale import Stale
from ._watches import Watches

__all__ = ["Engine", "Ignore", "Root"]

#: Reads of the backend's queue after a batch, before new directories are listed.
DRAIN_READS = 4
#: Rounds of listing new directories and diffing deferred ones at the end of a batch.
FINISH_ROUNDS = 4


class Engine:
    """Applies observations to the tree cache; :meth:`take` hands out the events.

    Not thread-safe: one thread drives it (the watcher's loop).
    """

    def __init__(
        self,
        *,
        access: bool = False,
        ignore: Ignore | None = None,
        pair_wait: float = 0.02,
        fallback_interval: float = 1.0,
        warn: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.warn = warn
        self.clock = clock
        self._warned: set[str] = set()
        self.out = Output()
        self.roots = Roots(ignore or Ignore())
        self.moves = PendingMoves()
        self.rules = Rules(self, access=access)
        self.renames = Renames(self, pair_wait)
        self.scanner = Scanner(self)
        self.watches = Watches(self, fallback_interval)
        self.newdirs = NewDirs(self)
        self.stale = Stale(self)
        self.differ = Differ(self)
        self.pair_wait = pair_wait

    # ------------------------------------------------------------ roots

    def add_root(self, path: str, backend: Backend, *, recursive: bool = True) -> Root:
        """Start watching ``path`` (absolute) with ``backend``; scan it without events.

        Raises :class:`FileNotFoundError` and friends for a path that cannot be watched.
        """
        st = os.stat(path)
        if kind_of(st) is Kind.DIR:
            node = Node(path, None, st)
            root = Root(path, node, backend, recursive)
        else:
            parent, name = os.path.split(path)
            shared = self.roots.file_root_in(parent)
            if shared is not None:  # several files of one directory share its watch
                assert shared.only is not None
                shared.only.add(name)
                self.scanner.fill_only(shared, name)
                return shared
            node = Node(parent, None, os.stat(parent))
            root = Root(path, node, backend, False, {name})
        self.roots.add(root)
        self.watches.watch_root(root)
        self.scanner.fill(node, root, emit=False)
        return root

    @property
    def watched(self) -> list[Root]:
        """The roots still watched."""
        return self.roots.all

    def root_of(self, node: Node) -> Root | None:
        return self.roots.of(node)

    def backends(self) -> list[Backend]:
        return self.roots.backends()

    def rescan(self, tops: Sequence[Node], *, notice: bool) -> None:
        """Diff the subtrees below ``tops`` against the disk; report, then say ``rescan``."""
        self.differ.rescan(tops, notice=notice)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    # ------------------------------------------------------------ observations

    def apply(self, backend: Backend, observations: Sequence[Observation]) -> None:
        """Apply a backend's observations in order; dirty directories are diffed together.

        New directories are listed at the end. Before that, what the backend has
        queued meanwhile is read and applied too (a few reads at most): an entry
        renamed into a new directory before it was watched has no ``moved_to``, and
        its ``moved_from`` must be pending when the listing finds it, to be reported
        as the move it was. Moves whose destination the disk contradicted, and names
        where a directory was found before its rename was read, are looked at after
        those reads (see Renames.move, Stale.park).
        """
        self.stale.begin_batch()
        try:
            self.apply_batch(backend, observations)
            for _ in range(DRAIN_READS):
                if not (self.newdirs or self.stale.waiting_for_input()) or (
                    backend.fileno() is None
                ):
                    break
                more = backend.read()
                if not more:
                    break
                self.apply_batch(backend, more)
        finally:
            parked = self.stale.end_batch()
        for parent, name in parked:
            self.rules.reconcile(parent, name)
        self.stale.check_suspects()
        self._finish(backend)
        if self.stale.deferred_ids() and self.stale.due is None:
            self.stale.due = self.clock() + self.pair_wait  # see Stale.settle

    def apply_batch(self, backend: Backend, observations: Sequence[Observation]) -> None:
        """Apply observations in order; runs of ``DirDirty`` are diffed together."""
        dirty: list[tuple[Node, bool]] = []
        for obs in observations:
            if isinstance(obs, DirDirty):
                located = self.roots.locate(backend, obs.handle, obs.name)
                if located is not None:
                    dirty.append((located, obs.recursive))
                continue
            if dirty:
                self.differ.diff_dirty(dirty)
                dirty = []
            self.rules.apply_one(backend, obs)
        if dirty:
            self.differ.diff_dirty(dirty)

    def _finish(self, backend: Backend | None) -> None:
        """List new directories and look at deferred ones, until neither leaves work.

        A deferred directory's diff may replay held observations that make new
        directories, and a listing may defer one: both are done now, since nothing
        else may wake the watcher for them (what is left makes it wake at once).
        """
        for _ in range(FINISH_ROUNDS):
            self.newdirs.fill(backend)
            self.stale.run_deferred()
            if not self.newdirs.fillable():
                return

    # ------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has work: an unpaired ``moved_from``, a fallback poll,
        directories a batch deferred, or (now) a new directory left to list."""
        if self.newdirs.fillable():
            return self.clock()
        dues = [d for d in (self.moves.due(), self.stale.due, self.watches.due) if d is not None]
        return min(dues, default=None)

    def expire(self, now: float | None = None) -> None:
        """Settle each ``moved_from`` whose partner did not come in time: deleted."""
        now = self.clock() if now is None else now
        known = self.stale.deferred_ids()
        for key in [key for key, _ in self.moves.items()]:
            pending = self.moves.get(key)  # replaying held observations may pair others
            if pending is not None and pending.deadline <= now:
                self.moves.pop(key)
                self.renames.settle_unpaired(pending)
        self.stale.check_suspects()
        self._finish(None)
        stale = self.stale
        if stale.due is not None and stale.due <= now:
            stale.due = None
            if stale.settle():
                self._finish(None)
        if self.watches.due is not None and self.watches.due <= now:
            self.watches.poll(now)
        if stale.due is None and not stale.deferred_ids() <= known:
            # Deferred here (a settled move replayed what waited behind it): no batch
            # may come to schedule the look. Only new deferrals count, so one that can
            # never resolve (one inode at two paths) does not wake the watcher again.
            stale.due = self.clock() + self.pair_wait

    def take(self) -> list[Event]:
        """The events produced since the last call."""
        return self.out.take()

"""The engine: turns backend observations into events a consumer can trust.

It keeps a cache of every watched tree and treats each observation as a hint to
verify against the disk; a rescan (a diff of disk against cache) repairs whatever
was lost. Its parts, one concern and one piece of state each:

- ``_roots``: the roots, their cached trees and the backends' handles (``_ignore``
  and ``_gitignore``: what the trees leave out);
- ``_fates``: what must stay in place on the roots' paths, and files given as links;
- ``_moves``: rename pairing state, the pending moves and what they hold back;
- ``_renames``: the rename rules; ``_rules``: every other observation;
- ``_scan``: opening, listing and reading directories in (``_own``: counting
  those listings, which access events report like anyone's);
- ``_watches``: placing watches, and polling where the OS refused one;
- ``_listings``: new directories, listed at once and placed after a further read;
- ``_stale``: what could not be verified when it was read, looked at later;
- ``_diff``: rescans; ``_output``: the events, in order, under the paths given;
- ``_work``: the worklist, and the tasks any of them may leave for later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from .. import _os
from .._backend import Backend, Observation
from .._events import Event
from .._fate import followed
from .._tree import Kind, Node, kind_of
from ._diff import Differ
from ._fates import Fates
from ._gitignore import NAME as GITIGNORE
from ._gitignore import GitIgnores, Reread
from ._ignore import Ignore
from ._listings import NewDirs
from ._moves import PendingMoves
from ._output import Output
from ._renames import Renames
from ._roots import Root, Roots
from ._rules import Rules
from ._scan import Scanner, Stopped
from ._spellings import Spellings
from ._stale import Stale
from ._watches import Watches
from ._work import Apply, ListLevel, Settle, Worklist

__all__ = ["Engine", "Full", "Ignore", "Root", "Stopped"]

#: Says, between two pieces of work, that the consumer has all it can take for now.
Full = Callable[[], bool]


class Engine:
    """Applies observations to the tree cache; :meth:`take` hands out the events.

    Not thread-safe: one thread drives it (the watcher's loop).
    """

    def __init__(
        self,
        *,
        access: bool = False,
        ignore_pids: frozenset[int] = frozenset(),
        ignore: Ignore | None = None,
        gitignore: bool = False,
        pair_wait: float = 0.02,
        fallback_interval: float = 1.0,
        warn: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
        stopped: Callable[[], bool] = lambda: False,
        listed: Callable[[int], None] = lambda entries: None,
    ) -> None:
        self.warn = warn
        self.stopped = stopped
        """Asked between two directories of a tree being read: true raises Stopped."""
        self.listed = listed
        """Told the number of entries of each directory a tree's reading lists."""
        self.clock = clock
        self.pair_wait = pair_wait
        """How long a moved_from waits for its pair, and a stale path for its rename."""
        self._warned: set[str] = set()
        self.out = Output()
        self.out.ignored_pids = ignore_pids
        self.work = Worklist()
        self.roots = Roots(ignore or Ignore(), GitIgnores(warn) if gitignore else None)
        if self.roots.gitignores is not None:
            self.roots.gitignores.touched = self._gitignore_touched
            self.out.watched_name = GITIGNORE
            self.out.on_watched_name = self._gitignore_reported
        self.moves = PendingMoves()
        self.fates = Fates(self)
        self.rules = Rules(self, access=access)
        self.renames = Renames(self)
        self.scanner = Scanner(self, access=access)
        self.spellings = Spellings(self.scanner.names)
        self.watches = Watches(self, fallback_interval)
        self.newdirs = NewDirs(self)
        self.stale = Stale(self)
        self.differ = Differ(self)
        self._busy = False

    # ------------------------------------------------------------ roots

    def add_root(
        self, path: str, backend: Backend, *, recursive: bool = True,
        cached: Callable[[Node], None] | None = None,
    ) -> Root:
        """Start watching ``path`` (absolute) with ``backend``; scan it without events.

        Raises :class:`FileNotFoundError` and friends for a path that cannot be watched.
        A symbolic link is followed (see Watches.watch_root and :meth:`_file_root`).
        ``cached`` fills a directory root's node from a tree read before (a
        snapshot) instead of the disk: a diff then reports what changed since.
        """
        st = os.stat(path)
        if kind_of(st) is Kind.DIR:
            node = Node(path, None, st)
            root = Root(path, node, backend, recursive)
        else:
            root = self._file_root(path, backend)
            if self.roots.watching(root):  # several files of one directory share its watch
                self.fates.watch(root, path)
                return root
            node = root.node
        self.roots.add(root)
        if self.roots.gitignores is not None and root.only is None:
            self.roots.gitignores.read_outer(root)
        self.watches.watch_root(root)
        self.fates.watch(root, path)
        if cached is not None and root.only is None:
            cached(node)
        else:
            self.scanner.fill(node, root, emit=False)
        # From the names just listed: a listing of its own would be reported (with
        # access events on) as anyone's.
        folds = _os.folds_names(node.path(), node.children.some_names(16))
        self.roots.set_folds(root, folds)
        return root

    def _file_root(self, path: str, backend: Backend) -> Root:
        """The root of file ``path``: the one watching its directory already, or a new one.

        A symbolic link is followed: its target's directory is watched, and events
        about the target carry ``path`` (see Shown).
        """
        real = followed(path)
        parent, name = os.path.split(real)
        st = os.stat(parent)
        root = self.roots.file_root_at(st)
        if root is None:
            root = Root(path, Node(parent, None, st), backend, False, set())
        assert root.only is not None
        had = name in root.only
        root.only.add(name)
        if self.roots.watching(root):
            self.scanner.fill_only(root, name)
        if real != path:
            self.fates.link(root, path, real)
        self.out.shown.add(os.path.join(root.node.name, name), path, also_key=had)
        return root

    @property
    def watched(self) -> list[Root]:
        """The roots still watched."""
        return self.roots.all

    def backends(self) -> list[Backend]:
        return self.roots.backends()

    def _gitignore_touched(self, directory: Node, read: bool) -> None:
        self.work.spawn(Reread(directory, read))

    def _gitignore_reported(self, path: str) -> None:
        """An event named a ``.gitignore`` (the polling backend's diff finds a change
        to one no observation named): its directory's is read again."""
        directory = self.roots.find(os.path.dirname(path))
        if directory is not None:
            self._gitignore_touched(directory, False)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(message)

    # ------------------------------------------------------------ observations

    def apply(
        self, backend: Backend, observations: Sequence[Observation], full: Full | None = None
    ) -> None:
        """Apply what one read of ``backend`` returned (possibly nothing), in order.

        A read that returns nothing still counts: it says the queue was read, and
        work waiting for that read may now run (see :meth:`advance`). ``full()`` is
        asked between two tasks, as in :meth:`advance`: work left from before goes
        first, and what does not run waits, in order, for a later call.
        """
        work = self.work
        self.spellings.forget()
        work.read(dry=not observations)
        work.reading = True
        self._busy = True
        if observations:
            work.spawn(Apply(backend, observations))
        work.drain(self, full)

    def wants_input(self) -> bool:
        """Is the work left waiting for the backend's queue to be read dry?

        New directories' listings and names the disk showed before the kernel
        queued their events are looked at only then (see ``_work``). The caller
        reads and :meth:`apply`-s, or, if it cannot read any more, calls
        :meth:`advance`, which then does that work without the read.
        """
        return self.work.wants_input()

    def advance(self, full: Full | None = None) -> bool:
        """Do the next piece of the work left by the observations; False once none is left.

        In order: what waited for a read; the new directories to list; the
        directories whose stale paths may be trusted again. ``full()`` is asked
        between two tasks: once true, the rest waits for the next call.
        """
        work = self.work
        if work.running_late():
            pass  # a drain stopped by ``full`` goes on first
        elif work.waiting():
            for task in work.take_after_read():
                work.spawn(task)
        elif self.newdirs.fillable():
            work.spawn(ListLevel())
        elif not self.stale.run_deferred():
            self._end_round()
            return False
        work.drain(self, full)
        return True

    def busy(self) -> bool:
        """Is a round of work still open (see :meth:`advance`, :meth:`expire`)?"""
        return self._busy

    def _end_round(self) -> None:
        self._busy = False
        stale = self.stale
        if self.work.reading and stale.deferred_ids() and stale.due is None:
            stale.due = self.clock() + self.pair_wait  # see Stale.settle
        self.work.reading = False
        stale.end_round()

    def _finish(self, full: Full | None) -> bool:
        """Advance until nothing is left, or ``full()``; True if nothing is left."""
        while full is None or not full():
            if not self.advance(full):
                return True
        self._busy = True  # (a round ended on the way, and another one is open now)
        return False

    # ------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When :meth:`expire` has work: an unpaired ``moved_from``, a fallback poll,
        directories a batch deferred, or (now) work left undone."""
        if self._busy or self.work or self.newdirs.fillable():
            return self.clock()
        dues = [d for d in (self.moves.due(), self.stale.due, self.watches.due) if d is not None]
        return min(dues, default=None)

    def expire(self, now: float | None = None, *, full: Full | None = None) -> None:
        """Do what is due: unpaired moves settled (deleted), stale paths settled, polls.

        Nothing here waits for a read: the backends had nothing more to say. A round
        of work left open earlier (``full()`` said the consumer had enough) goes on
        first; ``full`` may stop it, or what is due, again: the rest then waits for
        the next call.
        """
        now = self.clock() if now is None else now
        if not self._finish(full):
            return
        stale = self.stale
        known = stale.deferred_ids()
        self.work.reading = False
        self._busy = True
        try:
            for key, _ in self.moves.items():
                self.work.spawn(Settle(key, now))
            if not self._finish(full):
                return
            if stale.due is not None and stale.due <= now:
                stale.due = None
                stale.settle()
                if not self._finish(full):
                    return
            if self.watches.due is not None and self.watches.due <= now:
                self.watches.poll(now)
                self._finish(full)
        finally:
            if stale.due is None and not stale.deferred_ids() <= known:
                # Deferred here (a settled move replayed what waited behind it): no
                # batch may come to schedule the look. Only new deferrals count, so
                # one that can never resolve (one inode at two paths) does not wake
                # the watcher again.
                stale.due = self.clock() + self.pair_wait

    def take(self) -> list[Event]:
        """The events produced since the last call."""
        return self.out.take()

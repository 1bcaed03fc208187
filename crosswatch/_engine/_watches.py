"""Watch placement, one table of what each error means, and polling where the OS said no."""

from __future__ import annotations

import enum
import errno
from collections.abc import Hashable
from typing import TYPE_CHECKING

from .._errors import WatchError, WatchGoneError, WatchLimitError
from .._fate import followed
from .._tree import Node
from ._roots import Root

if TYPE_CHECKING:
    from . import Engine


class Purpose(enum.Enum):
    """Why a watch is placed; it decides what an error means (see ``POLICY``)."""

    ROOT = "a root's own watch"
    EARLY = "a new directory, in the middle of a batch"
    LISTING = "a directory about to be listed"
    FATE = "a directory above a root, or a link on its way: its own fate only"


class Outcome(enum.Enum):
    RAISE = "the caller reports it"
    NOTHING = "no watch; a later listing tries again"
    DEFER = "not listed; the directory is looked at again once the batch is applied"
    POLL = "listed, and polled every fallback interval instead (warned once)"
    UNSEEN = "listed, changes below it unseen (warned once)"
    LATE = "no watch: it is gone already, which the roots' own checks find"
    UNTOLD = "no watch: the roots below are not told of its rename (warned once)"


def _failure(exc: OSError) -> str:
    if isinstance(exc, WatchGoneError) or exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "gone"  # vanished, or its cached path is stale
    if isinstance(exc, WatchLimitError) or exc.errno == errno.ENAMETOOLONG:
        return "limit"  # refused, not gone (a path too long to hand over): polled instead
    return "other"


#: What a failed watch means, by purpose and by failure.
POLICY: dict[Purpose, dict[str, Outcome]] = {
    Purpose.ROOT: {"gone": Outcome.RAISE, "limit": Outcome.RAISE, "other": Outcome.RAISE},
    Purpose.EARLY: {"gone": Outcome.NOTHING, "limit": Outcome.NOTHING, "other": Outcome.NOTHING},
    Purpose.LISTING: {"gone": Outcome.DEFER, "limit": Outcome.POLL, "other": Outcome.UNSEEN},
    Purpose.FATE: {"gone": Outcome.LATE, "limit": Outcome.UNTOLD, "other": Outcome.UNTOLD},
}


class Watches:
    """Places the backends' watches and polls the directories the OS refused to watch."""

    def __init__(self, engine: Engine, fallback_interval: float) -> None:
        self.e = engine
        self.fallback_interval = fallback_interval
        self._unwatched: dict[int, Node] = {}
        self.due: float | None = None
        """When the refused directories are diffed next."""

    def _place(
        self, root: Root, path: str, purpose: Purpose, node: Node | None
    ) -> tuple[Hashable | None, Outcome | None]:
        """A new watch of ``path``: its handle, or None and what the failure means.

        A fate watch's handle is None too where the backend has no ``watch_self``.
        """
        backend = root.backend
        recursive = purpose is Purpose.ROOT and root.max_depth > 1
        try:
            if purpose is Purpose.FATE:
                return backend.watch_self(path), None
            return backend.watch(path, recursive=recursive), None
        except (WatchError, OSError) as exc:
            failure = _failure(exc)
            outcome = POLICY[purpose][failure]
            per_dir = not backend.capabilities.recursive
            if purpose is Purpose.ROOT and failure == "limit" and per_dir:
                # A root past the limit (a directory of more files than kqueue may
                # open) is polled like any directory past it; its subdirectories
                # are still watched. A recursive watch refused leaves nothing watched.
                outcome = Outcome.POLL
            if outcome is Outcome.RAISE:
                raise
            self._absorb(outcome, exc, node, root, path)
            return None, outcome

    def _absorb(
        self, outcome: Outcome, exc: OSError, node: Node | None, root: Root, path: str
    ) -> None:
        e = self.e
        why = exc.strerror or str(exc)  # (an error made with one argument has no strerror)
        if outcome is Outcome.UNTOLD:
            e.warn_once(
                f"fate:{path}",
                f"cannot watch {path!r} ({why}): if it is renamed or removed, "
                f"the root {root.path!r} is not told",
            )
        elif node is None:
            return  # (only a listing's watch has a node: it defers or polls)
        elif outcome is Outcome.DEFER:
            e.stale.defer(node)
        elif outcome is Outcome.POLL:
            # Never silent: the directories past the limit are polled instead.
            e.warn_once(
                f"limit:{root.path}",
                f"{why} (first refused at {path!r}); the directories past the "
                f"limit are polled every {self.fallback_interval:g} s instead",
            )
            self._unwatched[id(node)] = node
            if self.due is None:
                self.due = e.clock() + self.fallback_interval
        elif outcome is Outcome.UNSEEN:
            e.warn_once(path, f"cannot watch {path!r}: {exc}; changes below it are unseen")

    def watch_root(self, root: Root) -> None:
        """Watch a root's top (recursively where the backend can); errors propagate,
        but a limit that refuses a per-directory backend's root has it polled.

        A root given as a symbolic link is watched where it leads (backends never
        follow one); the cache keeps the path as given.
        """
        handle, outcome = self._place(root, followed(root.node.name), Purpose.ROOT, root.node)
        if handle is None:
            assert outcome is Outcome.POLL
            return
        self.e.roots.bind(root.node, handle, root.backend)

    def watch_fate(self, root: Root, path: str) -> Hashable | None:
        """Watch ``path``, on ``root``'s way, for its own fate; None if not watched."""
        return self._place(root, path, Purpose.FATE, None)[0]

    def watch_early(self, path: str, root: Root) -> Hashable | None:
        """Watch a new directory in the middle of a batch; None on any error."""
        return self._place(root, path, Purpose.EARLY, None)[0]

    def watch_dir(self, node: Node, root: Root, path: str | None = None) -> bool:
        """Watch a directory about to be listed; False if it is not to be listed now."""
        if node.handle is not None:
            return True
        if path is None:
            path = node.path()
        handle, outcome = self._place(root, path, Purpose.LISTING, node)
        if handle is None:
            return outcome is not Outcome.DEFER
        e = self.e
        owner = e.roots.node_of(root.backend, handle)
        if owner is not None and owner is not node and self.live(owner):
            # The path leads to another cached directory: renamed here by observations
            # not read yet. Its handle stays with it; both are looked at later.
            e.stale.defer(node)
            e.stale.defer(owner)
            return False
        e.roots.bind(node, handle, root.backend)
        self._unwatched.pop(id(node), None)
        return True

    def watched_here(self, node: Node, path: str) -> bool:
        """Does ``node``'s watch (if any) belong to the directory now at ``path``?

        Asked when the directory opened at ``path`` is not the inode number its
        parent's listing showed. Watching the path again gives the handle of what is
        there now: the same handle means the watch and the listing agree.
        """
        roots = self.e.roots
        root = roots.of(node)
        if node.handle is None or root is None:
            return True
        handle = self._place(root, path, Purpose.EARLY, None)[0]
        stray = handle is not None and handle != node.handle
        if stray and roots.node_of(root.backend, handle) is None:
            root.backend.unwatch(handle)  # a watch of what is there now: nobody's
        return handle == node.handle

    def live(self, node: Node) -> bool:
        """Is ``node`` in the cache, or out of it only while its move is pending?"""
        return self.e.roots.attached(node) or self.e.moves.inside(node)

    # ------------------------------------------------------------ the fallback

    def forget(self, node: Node) -> None:
        self._unwatched.pop(id(node), None)

    def poll(self, now: float) -> None:
        """Diff the subtrees whose watches the OS refused; the diff retries the watches."""
        roots = self.e.roots
        nodes = [n for n in self._unwatched.values() if roots.attached(n)]
        self._unwatched = {id(n): n for n in nodes}
        tops = [n for n in nodes if not _has_ancestor_in(n, self._unwatched)]
        self.e.differ.diff([(top, True) for top in tops])
        self.due = (now + self.fallback_interval) if self._unwatched else None


def _has_ancestor_in(node: Node, nodes: dict[int, Node]) -> bool:
    parent = node.parent
    while parent is not None:
        if id(parent) in nodes:
            return True
        parent = parent.parent
    return False

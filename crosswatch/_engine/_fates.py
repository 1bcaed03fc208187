"""The paths to the roots: what must stay in place on them, and files given as links.

A root is watched where its path led when it was added. A directory above it
renamed or removed, or a symbolic link on the way changed, makes the path lead
elsewhere while nothing happens to the root itself. The backend's optional
``watch_self`` watches each of those entries for its own fate only, and such an
observation has the roots below it checked (a ``CheckPath`` task). A file root
given as a symbolic link is watched through its target's directory and reported
under the path given (see ``Shown``); once the link leads elsewhere, that file
is let go.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from typing import TYPE_CHECKING

from .._backend import Action, Backend, EntryChange, Gone, Observation
from .._fate import fate_paths
from ._roots import Root
from ._work import CheckPath

if TYPE_CHECKING:
    from . import Engine

_FATES = (Action.DELETED, Action.MOVED_FROM)


class Fates:
    """The watches of each root's path, the roots below each, and the links given."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._handles: dict[Root, list[Hashable]] = {}
        self._below: dict[Backend, dict[Hashable, list[Root]]] = {}
        # Each root's paths as given: what its fate watches keep leading to it.
        self._given: dict[Root, list[str]] = {}
        # File roots' paths given as a symbolic link -> the file it led to then.
        self._links: dict[Root, dict[str, str]] = {}

    # ------------------------------------------------------------ watching

    def watch(self, root: Root, path: str) -> None:
        """Watch what must stay in place for ``path`` (as given) to lead to ``root``."""
        given = self._given.setdefault(root, [])
        if path not in given:
            given.append(path)
        self._watch(root, path)

    def _watch(self, root: Root, path: str) -> None:
        handles = self._handles.setdefault(root, [])
        below = self._below.setdefault(root.backend, {})
        for above in fate_paths(path, root.node.name):
            handle = self.e.watches.watch_fate(root, above)
            if handle is None:  # not supported, or refused (see POLICY)
                continue
            handles.append(handle)
            roots = below.setdefault(handle, [])
            if root not in roots:
                roots.append(root)

    def _release(self, root: Root, handles: list[Hashable]) -> None:
        """Unwatch ``handles`` (one use each); the roots below keep those still theirs."""
        below = self._below.get(root.backend, {})
        current = self._handles.get(root, [])
        for handle in handles:
            roots = below.get(handle)
            if roots is not None and root in roots and handle not in current:
                roots.remove(root)
                if not roots:
                    del below[handle]
            try:
                root.backend.unwatch(handle)
            except OSError:
                pass

    def observed(self, backend: Backend, obs: Observation) -> bool:
        """Is ``obs`` about a watch of a path's fate (then nothing else is)?

        If it says that entry was renamed or removed, each root below it is checked
        once the running rule is done.
        """
        if not isinstance(obs, (EntryChange, Gone)):
            return False
        roots = self._below.get(backend, {}).get(obs.handle)
        if roots is None:
            return False
        if isinstance(obs, Gone) or (not obs.name and obs.action in _FATES):
            for root in list(roots):
                self.e.work.spawn(CheckPath(root))
        return True

    def check(self, root: Root) -> None:
        """End ``root`` if its path no longer leads to it; else watch its path again,
        since what is on the way may be other entries now."""
        e = self.e
        if not e.roots.watching(root):
            return
        e.rules.check_root(root)
        if e.roots.watching(root):
            old, self._handles[root] = self._handles.get(root, []), []
            for path in self._given.get(root, ()):
                self._watch(root, path)
            self._release(root, old)

    def let_go(self, root: Root) -> None:
        """Release what an ended root held besides its tree: its path's watches and
        the paths its files were reported under."""
        self._release(root, self._handles.pop(root, []))
        self._given.pop(root, None)
        self._links.pop(root, None)
        for name in root.only or ():
            self.e.out.shown.forget(os.path.join(root.node.name, name))

    # ------------------------------------------------------------ links

    def link(self, root: Root, path: str, real: str) -> None:
        """File ``real`` of file root ``root`` was given as ``path``, a symbolic link."""
        self._links.setdefault(root, {})[path] = real

    def changed_links(self, root: Root) -> list[tuple[str, str, bool]]:
        """Let go of each link given for ``root`` that leads elsewhere now.

        For each: (the path given, the name of the file in ``root.node``, whether no
        other path given shows that file any more).
        """
        links = self._links.get(root)
        if not links:
            return []
        changed = []
        for path, real in list(links.items()):
            if os.path.realpath(path) == real:
                continue
            del links[path]
            given = self._given.get(root, [])
            if path in given:
                given.remove(path)
            name = os.path.basename(real)
            last = self.e.out.shown.remove(os.path.join(root.node.name, name), path)
            changed.append((path, name, last))
        return changed

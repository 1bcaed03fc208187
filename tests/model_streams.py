"""Random operations on a model tree, and the event stream a correct watcher gives of
them: what the coalescing tests feed the rules with."""

from __future__ import annotations

import os
import random

from crosswatch import Change, Event

#: The root the model's paths are under (nothing is read or written there).
ROOT = os.path.abspath(os.path.join(os.sep, "model", "root"))
NAMES = ("a", "b", "c", "d", "e")

#: What the engine knew of moves' destinations: the ``id()`` of the moves onto a
#: free name, and of those that replaced an entry without a ``deleted``.
Onto = tuple[set[int], set[int]]


class Model:
    """A tree of path -> is_dir below :data:`ROOT`, and the events of its changes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tree: dict[str, bool] = {}
        self.events: list[Event] = []
        self.onto: Onto = (set(), set())

    def _under(self, top: str) -> list[str]:
        return [p for p in self.tree if p.startswith(top + os.sep)]

    def _dirs(self) -> list[str]:
        return [ROOT, *sorted(p for p, d in self.tree.items() if d)]

    def _new_path(self) -> str:
        return os.path.join(self.rng.choice(self._dirs()), self.rng.choice(NAMES))

    def _emit(self, kind: Change, path: str, is_dir: bool, src: str | None = None,
              held: bool | None = None) -> None:
        event = Event(kind, path, is_dir, src)
        self.events.append(event)
        if held is not None:
            self.onto[held].add(id(event))

    def write(self, path: str) -> None:
        if self.tree.get(path) is True:
            return
        if path in self.tree:
            self._emit(Change.MODIFIED, path, False)
        else:
            self.tree[path] = False
            self._emit(Change.CREATED, path, False)
            if self.rng.random() < 0.5:
                self._emit(Change.MODIFIED, path, False)

    def mkdir(self, path: str) -> None:
        if path not in self.tree:
            self.tree[path] = True
            self._emit(Change.CREATED, path, True)

    def attrib(self, path: str) -> None:
        self._emit(Change.ATTRIB, path, self.tree[path])

    def delete(self, path: str) -> None:
        below = sorted(self._under(path), reverse=True)
        for p in below:  # entries inside may be told first, deepest first
            if self.rng.random() < 0.3 and p in self.tree and not self._under(p):
                self._emit(Change.DELETED, p, self.tree.pop(p))
        for p in self._under(path):
            del self.tree[p]
        self._emit(Change.DELETED, path, self.tree.pop(path))

    def rename(self, src: str, dst: str) -> None:
        is_dir = self.tree[src]
        if dst == src or dst.startswith(src + os.sep) or os.path.dirname(dst) not in (
            ROOT, *[p for p, d in self.tree.items() if d]
        ):
            return
        held = dst in self.tree
        if held:
            if self.tree[dst] != is_dir or self._under(dst):
                return  # the OS refuses: another kind, or a directory not empty
            if self.rng.random() < 0.5:  # a deletion of the replaced entry may come first
                self._emit(Change.DELETED, dst, self.tree.pop(dst))
                held = False
        moving = {p: d for p, d in self.tree.items() if p == src or p.startswith(src + os.sep)}
        for p in moving:
            del self.tree[p]
        self.tree.pop(dst, None)
        for p, d in moving.items():
            self.tree[dst + p[len(src):]] = d
        # A move the engine found by a rescan carries no word about its destination.
        self._emit(Change.MOVED, dst, is_dir, src, held=held if self.rng.random() < 0.8 else None)

    def step(self) -> None:
        rng, entries = self.rng, sorted(self.tree)
        op = rng.random()
        if op < 0.25:
            self.write(self._new_path() if rng.random() < 0.6 or not entries else
                       rng.choice(entries))
        elif op < 0.4:
            self.mkdir(self._new_path())
        elif op < 0.45 and entries:
            self.attrib(rng.choice(entries))
        elif op < 0.7 and entries:
            self.rename(rng.choice(entries), self._new_path())
        elif op < 0.8 and entries:
            self.save(rng.choice(entries))
        elif op < 0.98 and entries:
            self.delete(rng.choice(entries))
        elif op >= 0.98:
            self._emit(Change.RESCAN, ROOT, True)

    def save(self, path: str) -> None:
        """An atomic save: a temporary file written, then renamed over ``path``."""
        if self.tree[path]:
            return
        tmp = path + ".tmp"
        if tmp in self.tree:
            return
        self.write(tmp)
        self.rename(tmp, path)


def random_stream(rng: random.Random, steps: int) -> tuple[dict[str, bool], list[Event], Onto]:
    """A random initial tree, the events of ``steps`` random operations on it, and
    the ``id()`` of each move whose destination held no entry, and of each that
    replaced one without a word."""
    model = Model(rng)
    for _ in range(rng.randrange(12)):
        model.step()
    start = dict(model.tree)
    model.events, model.onto = [], (set(), set())
    for _ in range(steps):
        model.step()
    return start, model.events, model.onto

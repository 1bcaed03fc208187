"""Snapshots: a tree's state saved to a file, and what changed since.

:func:`snapshot` reads a tree as a watcher does when it starts (the polling
backend's reading, which takes every entry's stat) and writes it. :func:`since`
loads a snapshot into the engine's cache and runs one polling diff of the disk
against it: the events it returns are those a watcher would have reported, under
the same rules (moves paired by identity, directories with their contents).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import _snapfile
from ._backend import DirDirty, Options
from ._engine import Engine
from ._errors import ConfigError, SnapshotMismatchError
from ._events import Change, Event
from ._feed import feed
from ._polling import PollingBackend
from ._progress import Meter, Progress
from ._setup import Paths
from ._setup import ignore as _ignore
from ._snapfile import Block, Header
from ._snaptree import filler, settings_of, skip
from ._tree import Node
from ._watch import Watcher, _warn

#: The poll interval of the watchers used here: they read once and never poll.
_NEVER = 1e6  # (a selector waits at most about 24 days)
#: The keywords of :class:`Watcher` that :func:`snapshot` takes: what is read, and
#: how it reports.
OPTIONS = frozenset({
    "recursive", "ignore", "include", "gitignore", "default_ignore", "hidden",
    "config_file", "on_warning", "progress",
})
File = str | os.PathLike[str]


def snapshot(path: Paths, file: File, **options: Any) -> None:
    """Read the tree at ``path`` and write its snapshot to ``file``, atomically.

    ``options`` are :class:`Watcher`'s keywords that choose what is read
    (``recursive``, ``ignore``, ``include``, ``gitignore``, ``default_ignore``,
    ``hidden``, ``config_file``) and how it reports (``on_warning``, ``progress``).
    The snapshot records the filters, and :func:`since` applies them again.
    """
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ConfigError(
            f"snapshot() takes no {', '.join(unknown)}; it takes {', '.join(sorted(OPTIONS))}"
        )
    with Watcher(path, backend=PollingBackend, poll_interval=_NEVER, **options) as watcher:
        watcher.snapshot(file)


def since(
    file: File,
    path: Paths | None = None,
    *,
    on_warning: Callable[[str], None] | None = None,
    progress: Callable[[Progress], object] | None = None,
) -> list[Event]:
    """What changed in the tree since snapshot ``file`` was taken, as events.

    Applied in order to a mirror of the snapshot's tree, they give the tree now.
    ``path``: compare only this root of the snapshot (an error if it is none of
    them). ``progress`` is called about every 0.1 s with the directories compared.
    """
    return [event for batch in batches(file, path, on_warning=on_warning, progress=progress)
            for event in batch]


def batches(
    file: File,
    path: Paths | None = None,
    *,
    on_warning: Callable[[str], None] | None = None,
    progress: Callable[[Progress], object] | None = None,
    size: int = 10_000,
) -> Iterator[list[Event]]:
    """:func:`since`'s events in batches of about ``size``, as they are found."""
    name = os.fspath(file)
    header, blocks = _snapfile.read(name)
    chosen = _chosen(header, name, path)
    settings = settings_of(header.filters, name)
    meter = Meter(progress) if progress is not None else None
    engine = Engine(
        ignore=_ignore(settings),
        gitignore=settings.gitignore is True,
        warn=on_warning or _warn,
        listed=meter.listed if meter is not None else lambda entries: None,
    )
    backend = PollingBackend(Options(poll_interval=_NEVER))
    try:
        gone = _load(engine, backend, header, blocks, chosen, name)
        if meter is not None:
            meter.begin()
        if gone:
            yield [Event(Change.DELETED, root, True) for root in gone]
        yield from _diff(engine, backend, size)
        if meter is not None:
            meter.finish()
    finally:
        backend.close()


def _chosen(header: Header, file: str, path: Paths | None) -> set[str]:
    if header.identity != _snapfile.IDENTITY:
        raise SnapshotMismatchError(
            f"{file!r} holds file identities of another platform ({header.identity}); "
            "compare it where it was taken"
        )
    roots = {r.path for r in header.roots}
    if path is None:
        return roots
    wanted = os.path.abspath(os.fsdecode(path))
    if wanted not in roots:
        raise SnapshotMismatchError(
            f"{file!r} is a snapshot of {', '.join(map(repr, sorted(roots)))}, not of "
            f"{wanted!r}; compare it with a tree it was taken of"
        )
    return {wanted}


class _Fill:
    """A root's tree from the snapshot, and whether the engine took it."""

    def __init__(self, fill: Callable[[Node], None]) -> None:
        self._fill = fill
        self.used = False

    def __call__(self, node: Node) -> None:
        self.used = True
        self._fill(node)


def _load(
    engine: Engine, backend: PollingBackend, header: Header, blocks: Iterator[Block],
    chosen: set[str], file: str,
) -> list[str]:
    """Cache each chosen root from the snapshot; the roots that are gone."""
    gone: list[str] = []
    for info in header.roots:
        fill = _Fill(filler(info, blocks, file))
        if info.path in chosen and os.path.isdir(info.path):
            try:
                engine.add_root(info.path, backend, recursive=info.recursive, cached=fill)
            except OSError:  # gone since it was looked at
                pass
        if not fill.used:
            skip(blocks, file)
            if info.path in chosen:
                gone.append(info.path)
    if next(blocks, None) is not None:
        raise _snapfile.corrupt(file, "it holds entries of no root")
    return gone


def _diff(engine: Engine, backend: PollingBackend, size: int) -> Iterator[list[Event]]:
    """One polling diff of every root, its events in batches of about ``size``."""
    def full() -> bool:
        return len(engine.out) >= size

    tops = [DirDirty(root.node.handle, "", recursive=True) for root in engine.watched]
    feed(engine, backend, tops, full=full)
    while True:
        events = engine.take()
        if events:
            yield events
        due = engine.next_deadline()
        if due is None or not engine.watched:
            return
        wait = due - engine.clock()
        if wait > 0:  # what was cut short by a rename during the diff is looked at again
            time.sleep(min(wait, 0.1))
        engine.expire(full=full)

"""How the storm's renames are counted: by the identity of the entry renamed.

A rename counts toward the rename-as-move rate if the consumer knew the renamed
entry at its source when the rename was made: a consumer cannot be told that an
entry it never knew moved (one created and renamed before the tool reported it, or
one that took over a name the consumer still had for an older entry). It is
reported as a move if the tool then reported a move of that entry, whatever paths
the move gave: a directory renamed at the same time changes them, and so does a
second rename of the entry that the consumer was never told about (one move then
stands for both).

Identity is the inode number. The writer logs the inode of what it renamed (see
``writers.py``); the consumer logs, for each ``created`` event and each ``moved``
event of an unknown source, the inode of what the path held on arrival. A move
carries its entry's identity along, and a directory's move its subtree's.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

#: (since_ns, until_ns or None, inode or None): a path held one entry in the
#: consumer's view. The inode is None when the path was gone by the time the
#: event arrived: the consumer knew something there, not what.
Span = tuple[int, int | None, int | None]


def replay(initial: dict[str, int | None], log: Iterable[Sequence[Any]]) -> tuple[
    dict[str, list[Span]], list[tuple[int, str, int | None]]
]:
    """The consumer's view, rebuilt from its event log.

    ``initial``: path -> inode before the storm. ``log``: ``[arrival_ns, kind, path,
    src, inode]`` per created/deleted/moved event. Returns the spans of each path and
    the reported moves as (arrival_ns, source, inode of the entry moved).
    """
    current: dict[str, tuple[int | None, int]] = {p: (ino, 0) for p, ino in initial.items()}
    spans: dict[str, list[Span]] = defaultdict(list)
    moves: list[tuple[int, str, int | None]] = []

    def below(path: str) -> list[str]:
        prefix = path + "/"
        return [p for p in current if p == path or p.startswith(prefix)]

    def end(path: str, now: int | None) -> int | None:
        ino, since = current.pop(path)
        spans[path].append((since, now, ino))
        return ino

    for now, kind, path, src, ino in log:
        if kind == "created":
            if path in current:
                end(path, now)
            current[path] = (ino, now)
        elif kind == "deleted":
            for p in below(path):
                end(p, now)
        elif kind == "moved" and src is not None:
            # An unknown source: the target appears as the consumer found it.
            moved = end(src, now) if src in current else ino
            carried = [(p[len(src):], end(p, now)) for p in below(src)]
            for p in below(path):  # what the move replaced
                end(p, now)
            moves.append((now, src, moved))
            current[path] = (moved, now)
            for tail, carried_ino in carried:
                current[path + tail] = (carried_ino, now)
    for p in list(current):
        end(p, None)
    return spans, moves


def count(
    renames: Iterable[Sequence[Any]],
    initial: dict[str, int | None],
    log: Iterable[Sequence[Any]],
) -> dict[str, int]:
    """Renames the consumer could be told of, and how many came out as moves.

    ``renames``: ``[src, dst, when_ns, inode or None]`` from the writers; None means
    another writer may have swapped the entry in the middle, so its identity is not
    known: such renames are left out of both counts (``uncertain``).
    """
    spans, moves = replay(initial, log)
    by_ino: dict[int, list[int]] = defaultdict(list)
    unnamed: dict[str, list[int]] = defaultdict(list)  # moves of entries of unknown inode
    for now, src, ino in sorted(moves):
        if ino is None:
            unnamed[src].append(now)
        else:
            by_ino[ino].append(now)
    counted = matched = uncertain = 0
    for src, _dst, when, ino in sorted(renames, key=lambda r: r[2]):
        if ino is None:
            uncertain += 1
            continue
        span = next((s for s in spans.get(src, ()) if s[0] <= when and (
            s[1] is None or when < s[1])), None)
        if span is None or span[2] not in (ino, None):
            continue  # the consumer had nothing there, or another entry
        counted += 1
        pool = by_ino[ino] if span[2] is not None else unnamed[src]
        i = bisect.bisect_left(pool, when)  # the first move reported after the rename
        if i < len(pool):
            del pool[i]
            matched += 1
    return {"renames": counted, "matched": matched, "uncertain": uncertain}

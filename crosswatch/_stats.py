"""``crosswatch stats``: events counted per directory and kind, as a table or JSON.

Each event counts once, for the directory that holds the entry it names: a move
for its destination's directory, a rescan for the subtree it re-read, and an
event of a root itself for that root (its parent is not watched).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import ConfigError
from ._events import Change, Event
from ._records import text

#: What a table can be sorted by: the total, a kind, or the directory's path.
SORT_KEYS = ("total", *(c.value for c in Change), "directory")


def sort_key(given: str) -> str:
    """A ``--sort`` value checked: ``total``, a kind or ``directory``."""
    value = given.strip().lower()
    if value not in SORT_KEYS:
        raise ConfigError(f"cannot sort by {given!r}: use one of {', '.join(SORT_KEYS)}")
    return value


@dataclass
class Row:
    """One directory's counts."""

    directory: str
    kinds: Counter[Change] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


class Tally:
    """Counts events per directory and kind, for the roots watched."""

    def __init__(self, roots: Iterable[str]) -> None:
        self._roots = frozenset(roots)
        self._rows: dict[str, Row] = {}

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            where = self._directory(event)
            row = self._rows.get(where)
            if row is None:
                row = self._rows[where] = Row(where)
            row.kinds[event.kind] += 1

    def _directory(self, event: Event) -> str:
        if event.kind is Change.RESCAN or event.path in self._roots:
            return event.path
        return os.path.dirname(event.path)

    @property
    def total(self) -> int:
        return sum(row.total for row in self._rows.values())

    def kinds(self) -> list[Change]:
        """The kinds counted at least once, in the order of :class:`Change`."""
        seen = {kind for row in self._rows.values() for kind in row.kinds}
        return [kind for kind in Change if kind in seen]

    def rows(self, by: str = "total", *, reverse: bool = False) -> list[Row]:
        """The rows by ``by``: most first, or for ``directory`` a to z; ties by path.
        ``reverse``: the other way round."""
        rows = sorted(self._rows.values(), key=lambda r: r.directory)
        if by == "total":
            rows.sort(key=lambda r: r.total, reverse=True)
        elif by != "directory":
            kind = Change(by)
            rows.sort(key=lambda r: r.kinds[kind], reverse=True)
        return rows[::-1] if reverse else rows


def table(tally: Tally, rows: Sequence[Row]) -> str:
    """inotifywatch's layout: ``total``, a column per kind seen, then the directory."""
    kinds = tally.kinds()
    header = ["total", *(k.value for k in kinds), "directory"]
    body = [
        [str(row.total), *(str(row.kinds[k]) for k in kinds), text(row.directory)]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        cells = [cell.rjust(width) for cell, width in zip(line, widths, strict=False)]
        lines.append("  ".join([*cells, line[-1]]))
    return "\n".join(lines) + "\n"


def as_json(tally: Tally, rows: Sequence[Row], seconds: float) -> str:
    """One JSON object: the time counted, the totals, and a row per directory."""
    kinds = tally.kinds()
    out: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "total": tally.total,
        "kinds": {k.value: sum(r.kinds[k] for r in rows) for k in kinds},
        "directories": [
            {
                "directory": text(row.directory),
                "total": row.total,
                "kinds": {k.value: row.kinds[k] for k in kinds if row.kinds[k]},
            }
            for row in rows
        ],
    }
    return json.dumps(out, ensure_ascii=True) + "\n"

"""Baselines: a root's tree at a point of its published stream.

A baseline is a snapshot file (the format of ``crosswatch snapshot``) and what
says where in the stream it stands: the epoch, the number of the last batch it
includes, and the stream position of that batch. A follower that loads it
reports the tree as created events, and then takes the batches after it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from . import _snapfile
from ._errors import MessageError, SnapshotError
from ._events import Change, Event
from ._snaptree import created, skip

SCHEMA = "crosswatch.baseline"
VERSION = 1


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a baseline stands: it holds every batch up to ``seq`` of ``epoch``,
    the last of them stored at ``position`` of the stream (0: none yet)."""

    root: str
    epoch: str
    seq: int
    position: int
    path: str
    """The root's path where it is watched."""

    def encode(self) -> str:
        return json.dumps({"schema": SCHEMA, "version": VERSION, **asdict(self)})

    @classmethod
    def decode(cls, text: str) -> Mark:
        try:
            body = json.loads(text)
            if body.get("schema") != SCHEMA:
                raise ValueError
        except (ValueError, AttributeError, TypeError):
            raise MessageError("the baseline's description is not a crosswatch baseline's: "
                               "another program wrote into crosswatch's object store") from None
        if body.get("version") != VERSION:
            raise MessageError(f"the baseline is of version {body.get('version')!r}, and this "
                               f"crosswatch reads version {VERSION}: install the publisher's "
                               "version of crosswatch here")
        try:
            mark = cls(body["root"], body["epoch"], body["seq"], body["position"], body["path"])
        except KeyError:
            raise MessageError("the baseline's description lacks a field: it was damaged") from None
        if not (isinstance(mark.epoch, str) and type(mark.seq) is int
                and type(mark.position) is int and isinstance(mark.path, str)):
            raise MessageError("the baseline's description has a field of the wrong type: "
                               "it was damaged")
        return mark


def events(data: bytes, mark: Mark, into: str) -> list[Event]:
    """The tree of ``mark.path`` that snapshot ``data`` holds, as ``RESYNC`` for
    ``into`` followed by a ``CREATED`` event per entry, each directory before
    its entries."""
    out = [Event(Change.RESYNC, into, True)]
    with tempfile.TemporaryDirectory(prefix="crosswatch-baseline-") as tmp:
        file = os.path.join(tmp, "baseline")
        with open(file, "wb") as f:
            f.write(data)
        try:
            out += _entries(file, mark.path, into)
        except SnapshotError as exc:
            raise MessageError(f"the baseline of root {mark.root} is damaged ({exc}); the "
                               "publisher writes a new one when it starts again") from None
    return out


def _entries(file: str, path: str, into: str) -> Iterator[Event]:
    header, blocks = _snapfile.read(file)
    for info in header.roots:
        if info.path == path:
            return created(blocks, file, into)
        skip(blocks, file)
    raise _snapfile.corrupt(file, f"it holds no root {path!r}")

"""The message a publisher sends for each batch of one root, and its checks.

A message is JSON: the schema name and version, the root's id, the epoch, the
batch's number in it (1, 2, … with no gap), and the events, their paths relative
to the root with ``/`` between names. Names that are not UTF-8 travel as JSON's
``\\udcXX`` escapes, so a follower gets the publisher's exact bytes back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ._errors import MessageError
from ._events import Change, Event

SCHEMA = "crosswatch.batch"
VERSION = 1


@dataclass(frozen=True, slots=True)
class Message:
    """One batch of one root, as it travels."""

    root: str
    epoch: str
    seq: int
    events: tuple[Event, ...]
    """Their paths relative to the root, ``/`` between names; ``""``: the root."""

    @property
    def msg_id(self) -> str:
        """The id the stream de-duplicates on: a publish retried is stored once."""
        return f"{self.root}.{self.epoch}.{self.seq}"

    def encode(self) -> bytes:
        body = {
            "schema": SCHEMA,
            "version": VERSION,
            "root": self.root,
            "epoch": self.epoch,
            "seq": self.seq,
            "events": [_event_out(e) for e in self.events],
        }
        return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _event_out(e: Event) -> list[Any]:
    return [e.kind.value, e.path, e.is_dir, e.src_path, e.replaced]


def decode(data: bytes) -> Message:
    """The message in ``data``; :class:`MessageError` if it is not one this reads."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MessageError("the message is not JSON: it was not sent by a crosswatch "
                           "publisher, or was damaged on the way") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise MessageError("the message is not a crosswatch batch: another producer "
                           "publishes on this subject; give crosswatch a subject of its own")
    version = body.get("version")
    if version != VERSION:
        raise MessageError(f"the message is of schema version {version!r}, and this "
                           f"crosswatch reads version {VERSION}: install the publisher's "
                           "version of crosswatch here")
    try:
        root, epoch, seq = body["root"], body["epoch"], body["seq"]
        if not (isinstance(root, str) and isinstance(epoch, str) and type(seq) is int):
            raise TypeError
        events = tuple(_event_in(raw) for raw in body["events"])
    except (KeyError, TypeError, ValueError):
        raise MessageError("the message is a crosswatch batch with a field missing or of "
                           "the wrong type: it was damaged, or forged") from None
    return Message(root, epoch, seq, events)


def _event_in(raw: Any) -> Event:
    kind, path, is_dir, src, replaced = raw
    if not (isinstance(path, str) and isinstance(is_dir, bool) and isinstance(replaced, bool)
            and (src is None or isinstance(src, str))):
        raise TypeError
    for p in (path, src):
        if p is not None and not _relative(p):
            raise ValueError(p)
    return Event(Change(kind), path, is_dir, src, replaced=replaced)


def _relative(path: str) -> bool:
    """A path below a root: no absolute path, no ``..``, nothing that climbs out."""
    return path == "" or all(part not in ("", ".", "..") and "\0" not in part
                             for part in path.split("/"))


def to_wire(event: Event, root: str) -> Event:
    """``event`` with its paths relative to ``root`` (its absolute path)."""
    src = None if event.src_path is None else _rel(event.src_path, root)
    return Event(event.kind, _rel(event.path, root), event.is_dir, src, event.pid,
                 event.replaced)


def _rel(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return "" if rel == os.curdir else rel.replace(os.sep, "/")


def from_wire(event: Event, root: str) -> Event:
    """``event`` as it happened under ``root``, a local directory."""
    def local(rel: str) -> str:
        return root if rel == "" else os.path.join(root, *rel.split("/"))

    src = None if event.src_path is None else local(event.src_path)
    return Event(event.kind, local(event.path), event.is_dir, src, replaced=event.replaced)

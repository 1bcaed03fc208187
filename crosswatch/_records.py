"""Records: how the command line writes one event (plain, JSON, or a ``--format``).

Every record is bytes, flushed at once: names that are not UTF-8 are written as
they are in plain and ``--format`` records, and escaped in JSON, which must be text.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
from collections.abc import Callable
from datetime import datetime

from ._events import Event

FIELDS = ("kind", "path", "src", "is_dir", "dir", "pid", "replaced", "time")

Render = Callable[[Event], bytes]


def write_bytes(data: bytes) -> None:
    """Write to stdout as bytes and flush at once, so piped readers see every record."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # stdout replaced by a text-only object
        stream.write(data.decode("utf-8", "surrogateescape"))
        stream.flush()
    else:
        buffer.write(data)
        buffer.flush()


def text(path: str) -> str:
    """Text that always encodes: bytes of a name that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _slash(event: Event) -> bytes:
    return b"/" if event.is_dir else b""


def render_plain(event: Event) -> bytes:
    """``kind<TAB>path`` (``/`` after directories), plus ``<TAB>src`` for moves."""
    record = event.kind.value.encode() + b"\t" + os.fsencode(event.path) + _slash(event)
    if event.src_path is not None:
        record += b"\t" + os.fsencode(event.src_path) + _slash(event)
    return record


def render_json(event: Event) -> bytes:
    """One JSON object, ASCII only, so it never fails on odd names."""
    record = {
        "kind": event.kind.value,
        "path": text(event.path),
        "src_path": None if event.src_path is None else text(event.src_path),
        "is_dir": event.is_dir,
        "pid": event.pid,
        "replaced": event.replaced,
        "time": _now(),
    }
    return json.dumps(record, ensure_ascii=True).encode("ascii")


def _field(event: Event, name: str) -> bytes:
    """The bytes of one ``--format`` placeholder."""
    if name == "kind":
        return event.kind.value.encode()
    if name == "path":
        return os.fsencode(event.path)
    if name == "src":
        return b"" if event.src_path is None else os.fsencode(event.src_path)
    if name == "is_dir":
        return b"true" if event.is_dir else b"false"
    if name == "dir":
        return _slash(event)
    if name == "pid":
        return b"" if event.pid is None else str(event.pid).encode()
    if name == "replaced":
        return b"true" if event.replaced else b"false"
    return _now().encode()


def compile_format(template: str) -> Render:
    """Check a ``--format`` template once; return the function that fills it in."""
    pieces: list[tuple[bytes, str | None]] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc} in {template!r}; write a literal brace as '{{{{' or '}}}}'"
        ) from None
    for literal, name, spec, conversion in parsed:
        if name is not None and name not in FIELDS:
            raise argparse.ArgumentTypeError(
                f"unknown placeholder {{{name}}} in {template!r}; "
                f"use {', '.join('{' + f + '}' for f in FIELDS)}"
            )
        if spec or conversion:
            raise argparse.ArgumentTypeError(
                f"placeholder {{{name}}} in {template!r} has a conversion or format spec; "
                "only plain placeholders such as {path} are supported"
            )
        pieces.append((os.fsencode(literal), name))

    def render(event: Event) -> bytes:
        out = bytearray()
        for literal, name in pieces:
            out += literal
            if name is not None:
                out += _field(event, name)
        return bytes(out)

    return render

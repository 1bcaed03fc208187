"""The ``crosswatch snapshot`` and ``crosswatch since`` commands.

``snapshot`` writes a tree's state to a file; ``since`` prints what changed since,
in the records ``crosswatch watch`` prints. Errors are handled as for every
command (one ``error:`` line, an exit code; see ``_cli``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ._records import write_bytes


def add_commands(
    subparsers: Any, filter_options: Callable[[Any], None], record_options: Callable[[Any], None]
) -> None:
    """Add both commands to the command line's ``subparsers``; ``filter_options`` and
    ``record_options`` add the options shared with ``watch``: what a tree holds, and
    how records are written."""
    snap = subparsers.add_parser(
        "snapshot",
        help="save the state of the tree at PATH to a file",
        description="Read the tree at PATH and write its state to FILE, atomically, "
        "for 'crosswatch since' to compare with later.",
    )
    snap.add_argument("path", metavar="PATH", help="directory to read")
    snap.add_argument("-o", "--output", required=True, metavar="FILE", help="snapshot to write")
    filter_options(snap.add_argument_group("what to read (recorded in the snapshot)"))
    snap.add_argument(
        "--config", metavar="FILE", help="config file (default: the nearest, as for watch)"
    )
    snap.add_argument("-q", "--quiet", action="store_true", help="show no progress")
    snap.set_defaults(func=cmd_snapshot)

    since = subparsers.add_parser(
        "since",
        help="print what changed since a snapshot",
        description="Compare the tree with snapshot FILE and print one record per change, "
        "as 'crosswatch watch' does; the snapshot's filters apply.",
    )
    since.add_argument("file", metavar="FILE", help="snapshot written by 'crosswatch snapshot'")
    since.add_argument(
        "path", nargs="?", metavar="PATH", help="compare only this root of the snapshot"
    )
    out = since.add_argument_group("output")
    record_options(out)
    out.add_argument("-q", "--quiet", action="store_true", help="show no progress")
    since.set_defaults(func=cmd_since)


def cmd_snapshot(args: argparse.Namespace) -> int:
    """``crosswatch snapshot``."""
    from . import _cli
    from ._snapshot import snapshot

    snapshot(args.path, args.output, progress=_cli._progress(args), **_cli._tree_keywords(args))
    return _cli.EXIT_OK


def cmd_since(args: argparse.Namespace) -> int:
    """``crosswatch since``."""
    from . import _cli
    from ._snapshot import batches

    render = _cli._renderer(args)
    end = b"\0" if args.null else b"\n"
    # Records come while the comparison goes on: no progress line among them.
    progress = None if sys.stdout.isatty() else _cli._progress(args)
    for batch in batches(args.file, args.path, on_warning=_cli._warn, progress=progress):
        write_bytes(b"".join(render(event) + end for event in batch))
    return _cli.EXIT_OK

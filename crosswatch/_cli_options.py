"""The ``crosswatch`` command line's options: the parser, and the values it reads.

Values that config files and the environment can also give (durations, kinds,
backend names) go through the parsers of :mod:`crosswatch._config_values`, so a mistake
reads the same wherever it was made.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import (
    __version__,
    _backend_options,
    _cli_remote,
    _cli_snapshot,
    _config_values,
    _stats,
)
from ._errors import ConfigError
from ._events import Change
from ._records import FIELDS, compile_format

PROG = "crosswatch"

_T = TypeVar("_T")
#: What runs a command: its parsed arguments in, the exit code out.
Command = Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------------- values


def _argument(parse: Callable[[], _T]) -> _T:
    """Run a parser of ``_config_values``; its ``ConfigError`` becomes argparse's usage error."""
    try:
        return parse()
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_seconds(text: str) -> float:
    """argparse type: seconds > 0."""
    return _argument(lambda: _config_values.parse_seconds(text, "", zero_ok=False, text_ok=True))


def seconds_or_zero(text: str) -> float:
    """argparse type: seconds >= 0."""
    return _argument(lambda: _config_values.parse_seconds(text, "", zero_ok=True, text_ok=True))


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def backend_option(text: str) -> tuple[str, str, object]:
    """argparse type: NAME.OPTION=VALUE, one option of one backend."""
    return _argument(lambda: _backend_options.parse_cli(text))


def backend_options(args: argparse.Namespace) -> dict[str, dict[str, object]] | None:
    """The ``--backend-option`` values as ``backend_options=``; None if none given."""
    if not args.backend_option:
        return None
    out: dict[str, dict[str, object]] = {}
    for name, key, value in args.backend_option:
        out.setdefault(name, {})[key] = value
    return out


def kinds(text: str) -> list[Change]:
    """argparse type: comma-separated event kinds."""
    parts = [part.strip() for part in text.split(",")]
    return list(_argument(lambda: _config_values.parse_kinds(parts, "")))


def backend(args: argparse.Namespace) -> str | list[str] | None:
    """``--backend`` checked by the settings' parser; ``None`` if not given."""
    if args.backend is None:
        return None
    spec = _config_values.parse_backend_spec(args.backend, source="--backend")
    return "auto" if spec is None else list(spec)


def deny(args: argparse.Namespace) -> list[str] | None:
    """Repeated and comma-separated ``--deny`` values as one list; ``None`` if not given.

    An empty value denies nothing, so ``--deny ''`` clears a deny list from the
    environment or a config file.
    """
    if args.deny is None:
        return None
    given = ",".join(value for value in args.deny if value.strip())
    return sorted(_config_values.parse_deny(given, source="--deny"))


# --------------------------------------------------------------------------- parser


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Parser(argparse.ArgumentParser):
    """An argument parser that reads ``--debounce -1`` as the option and its value.

    Once an option looks like a negative number, as ``-0`` does, argparse takes any
    ``-1`` for an option and says "expected one argument". Such a value is joined to
    its option (``--debounce=-1``), so it is checked and refused like any other.
    """

    def parse_known_args(  # type: ignore[override]  # one signature for typeshed's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._attach_numbers(given), namespace)

    def _attach_numbers(self, args: list[str]) -> list[str]:
        options = {o: a.nargs is None for a in self._actions for o in a.option_strings}
        out: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                out.extend(args[i:])
                break
            value = args[i + 1] if i + 1 < len(args) else ""
            if (
                self._takes_one_value(arg, options)
                and value.startswith("-")
                and value not in options
                and _is_number(value)
            ):
                out.append(f"{arg}={value}")
                i += 2
            else:
                out.append(arg)
                i += 1
        return out

    def _takes_one_value(self, arg: str, options: dict[str, bool]) -> bool:
        """Whether ``arg`` is an option (or an abbreviation of one) that takes one value."""
        if arg in options:
            return options[arg]
        if not (self.allow_abbrev and arg.startswith("--")):
            return False
        matches = [option for option in options if option.startswith(arg)]
        return len(matches) == 1 and options[matches[0]]


def _selection_options() -> argparse.ArgumentParser:
    """Options shared by ``watch`` and ``backends``: which backend and which config."""
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("backend selection")
    group.add_argument(
        "--backend",
        metavar="NAME[,NAME...]",
        help="backend to use, or a preference list tried in order; 'auto' picks the best",
    )
    group.add_argument(
        "--deny",
        metavar="NAME[,NAME...]",
        action="append",
        help="never use these backends (repeatable)",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        help="config file (default: nearest crosswatch.toml, or pyproject.toml with "
        "[tool.crosswatch], from the current directory upward)",
    )
    return parent


def _add_watch(subparsers: Any, parent: argparse.ArgumentParser, command: Command) -> None:
    p = subparsers.add_parser(
        "watch",
        parents=[parent],
        help="print one record per change under PATH...",
        description="Print one record per change under PATH..., flushed as it happens.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory to watch")
    out = p.add_argument_group("output")
    record_options(out)
    _talk(out)
    what = _what_to_report(p)
    what.add_argument(
        "--debounce", type=seconds_or_zero, metavar="SECONDS", help="gather events this long"
    )
    what.add_argument(
        "--settle",
        type=seconds_or_zero,
        metavar="SECONDS",
        help="print a batch only once no change came for this long",
    )
    what.add_argument(
        "--coalesce",
        action="store_true",
        default=None,
        help="merge the events of a batch per entry (one per path per burst)",
    )
    stop = p.add_argument_group("when to stop")
    stop.add_argument("-n", "--count", type=positive_int, metavar="N", help="exit after N records")
    stop.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="exit after SECONDS; with code 3 if nothing was printed",
    )
    p.set_defaults(func=command)


def record_options(out: Any) -> None:
    """How each record is written (``watch``, ``since``)."""
    style = out.add_mutually_exclusive_group()
    style.add_argument(
        "--format",
        type=compile_format,
        metavar="FMT",
        help=f"record template with {', '.join('{' + f + '}' for f in FIELDS)}",
    )
    style.add_argument("--json", action="store_true", help="one JSON object per record")
    out.add_argument(
        "-0", "--null", action="store_true", help="end records with NUL instead of newline"
    )


def _talk(group: Any) -> None:
    """``-q`` and ``-v``: how much goes to stderr besides warnings and errors."""
    talk = group.add_mutually_exclusive_group()
    talk.add_argument(
        "-q", "--quiet", action="store_true", help="do not say on stderr when watching begins"
    )
    talk.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print the traceback of an error that stops the watcher",
    )


def _what_to_report(p: argparse.ArgumentParser) -> Any:
    """The options ``watch`` and ``stats`` share: what is watched and reported."""
    what = p.add_argument_group("what to report")
    what.add_argument(
        "-e",
        "--event",
        type=kinds,
        action="append",
        metavar="KIND[,KIND...]",
        help=f"report only these kinds (repeatable): {', '.join(c.value for c in Change)}",
    )
    what.add_argument(
        "--access", action="store_true", help="also report opened, accessed and closed_* events"
    )
    what.add_argument(
        "--pids",
        action="store_true",
        help="watch with a backend that reports the pid of each change (fanotify)",
    )
    what.add_argument(
        "--ignore-pid",
        action="append",
        type=positive_int,
        metavar="PID",
        help="leave out the changes this process makes (repeatable; implies --pids)",
    )
    filter_options(what)
    what.add_argument(
        "--poll-interval",
        type=positive_seconds,
        metavar="SECONDS",
        help="seconds between scans, for backends that poll",
    )
    what.add_argument(
        "--backend-option",
        action="append",
        type=backend_option,
        metavar="NAME.OPTION=VALUE",
        help="an option of one backend, such as fsevents.latency=0.1 (repeatable)",
    )
    return what


def filter_options(what: Any) -> None:
    """The options that choose what a tree holds (``watch``, ``stats``, ``snapshot``)."""
    what.add_argument(
        "--ignore", action="append", metavar="PATTERN", help="do not report matches (repeatable)"
    )
    what.add_argument(
        "--include", action="append", metavar="PATTERN",
        help="report only the files that match, and what is below matching directories "
        "(repeatable)",
    )
    what.add_argument(
        "--gitignore", action="store_true", default=None,
        help="leave out what .gitignore files leave out, and follow their changes",
    )
    what.add_argument(
        "--no-default-ignore",
        dest="default_ignore",
        action="store_false",
        default=None,
        help="also watch .git, node_modules, __pycache__, .venv and the like",
    )
    what.add_argument(
        "--no-hidden",
        dest="hidden",
        action="store_false",
        default=None,
        help="leave out entries whose names start with '.'",
    )
    what.add_argument(
        "--no-recursive", action="store_true", help="do not descend into subdirectories"
    )


def sort_key(text: str) -> str:
    """argparse type: what ``stats --sort`` orders by."""
    return _argument(lambda: _stats.sort_key(text))


def signal_name(text: str) -> int:
    """argparse type: a signal by name (``TERM``, ``SIGHUP``) or number."""
    given = text.strip().upper()
    if given.isdigit():
        return int(given)
    found = signal.Signals.__members__.get(given if given.startswith("SIG") else "SIG" + given)
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a signal here; try TERM, INT or HUP")
    return int(found)


def _add_run(subparsers: Any, parent: argparse.ArgumentParser, command: Command) -> None:
    p = subparsers.add_parser(
        "run",
        parents=[parent],
        help="run a command, then run it again (or restart it) on each change",
        description="Run COMMAND, then run it again once it ends after changes under "
        "the watched paths, or restart it at once with --restart.",
    )
    p.add_argument(
        "-w",
        "--watch",
        dest="paths",
        action="append",
        metavar="PATH",
        help="file or directory to watch (repeatable; default: .)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")
    how = p.add_argument_group("how the command runs")
    how.add_argument(
        "-r", "--restart", action="store_true", help="stop a running command on change, start anew"
    )
    how.add_argument(
        "-p", "--postpone", action="store_true", help="wait for a first change to run it"
    )
    how.add_argument(
        "--shell", action="store_true", help="run COMMAND through the shell, as one command line"
    )
    how.add_argument(
        "--signal",
        type=signal_name,
        default=None,  # (read when given: an OS may lack SIGTERM's name)
        metavar="NAME",
        help="what stops the command's process group (default: TERM)",
    )
    how.add_argument(
        "--grace",
        type=seconds_or_zero,
        default=5.0,
        metavar="SECONDS",
        help="how long a stopped command has before SIGKILL (default: 5)",
    )
    how.add_argument(
        "--settle",
        type=seconds_or_zero,
        default=0.1,
        metavar="SECONDS",
        help="wait until no change came for this long (default: 0.1)",
    )
    out = p.add_argument_group("output")
    _talk(out)
    _what_to_report(p)
    p.set_defaults(func=command, debounce=None, coalesce=None)


def _add_stats(subparsers: Any, parent: argparse.ArgumentParser, command: Command) -> None:
    p = subparsers.add_parser(
        "stats",
        parents=[parent],
        help="count changes under PATH... per directory and kind, then print a table",
        description="Count changes under PATH... per directory and kind until SECONDS "
        "pass or Ctrl-C, then print a table (or JSON) of the counts.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory to watch")
    _what_to_report(p)
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument(
        "--sort",
        type=sort_key,
        default="total",
        metavar="KEY",
        help="order rows by 'total' (the default) or a kind, most first, or by 'directory'",
    )
    out.add_argument(
        "--reverse", action="store_true", help="the other way round: least first, or z to a"
    )
    _talk(out)
    stop = p.add_argument_group("when to stop")
    stop.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="count for SECONDS (default: until Ctrl-C or SIGTERM)",
    )
    p.set_defaults(func=command, debounce=None, settle=None, coalesce=None)


def _add_backends(
    subparsers: Any, parent: argparse.ArgumentParser, command: Command
) -> None:
    p = subparsers.add_parser(
        "backends",
        parents=[parent],
        help="list backends and which one watching PATH would use",
        description="List every registered backend, what it can do, and which one "
        "watching PATH would use.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH", help="default: .")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--access",
        action="store_true",
        help="choose as 'watch --access' would: only backends that report access events",
    )
    p.add_argument(
        "--pids",
        action="store_true",
        help="choose as 'watch --pids' would: only backends that report pids",
    )
    p.set_defaults(func=command)


def build_parser(
    watch: Command, backends: Command, stats: Command, run: Command
) -> argparse.ArgumentParser:
    """The whole command line; each command runs the function given for it."""
    parser = _Parser(
        prog=PROG,
        description="Tell what changed in directory trees.",
        epilog="exit codes: 0 ok, 1 failure, 2 usage or config error, 3 timeout with no "
        "event, 4 path cannot be watched or no backend available, 130 interrupted "
        "(SIGINT), 141 output pipe closed, 143 terminated (SIGTERM)",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    parent = _selection_options()
    _add_watch(subparsers, parent, watch)
    _add_backends(subparsers, parent, backends)
    _add_stats(subparsers, parent, stats)
    _add_run(subparsers, parent, run)
    _cli_snapshot.add_commands(subparsers, filter_options, record_options)
    _cli_remote.add_commands(subparsers, parent)
    return parser

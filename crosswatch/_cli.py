"""The ``crosswatch`` command line: stream events (``watch``) and explain selection (``backends``).

Exit codes are listed in ``EXIT_*`` below and in ``docs/cli.md``; every error crosswatch
raises on purpose becomes one ``crosswatch: error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any, TextIO, TypeVar

from . import __version__, _config
from ._backend import Capabilities
from ._errors import (
    BackendUnavailableError,
    ConfigError,
    CrosswatchError,
    CrosswatchWarning,
    WatchGoneError,
    WatchPathError,
)
from ._events import ACCESS_KINDS, Change, Event
from ._plugins import Plugins
from ._records import FIELDS, Render, compile_format, render_json, render_plain, text, write_bytes
from ._select import ProbeReport, probe
from ._watch import Watcher, watch

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_UNWATCHABLE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143

PROG = "crosswatch"
# Windows cannot interrupt a lock wait with Ctrl-C, so wait there in slices.
_WAIT_SLICE: float | None = 0.5 if os.name == "nt" else None

_T = TypeVar("_T")


class _WatcherFailed(Exception):
    """The watcher's thread stopped with an error; exit 1."""


class _Terminated(BaseException):
    """SIGTERM arrived; like ``KeyboardInterrupt`` it unwinds past ``except Exception``."""


# --------------------------------------------------------------------------- values


def _argument(parse: Callable[[], _T]) -> _T:
    """Run a parser of ``_config``; its ``ConfigError`` becomes argparse's usage error."""
    try:
        return parse()
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_seconds(text: str) -> float:
    """argparse type: seconds > 0."""
    return _argument(lambda: _config.parse_seconds(text, "", zero_ok=False, text_ok=True))


def seconds_or_zero(text: str) -> float:
    """argparse type: seconds >= 0."""
    return _argument(lambda: _config.parse_seconds(text, "", zero_ok=True, text_ok=True))


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def kinds(text: str) -> list[Change]:
    """argparse type: comma-separated event kinds."""
    parts = [part.strip() for part in text.split(",")]
    return list(_argument(lambda: _config.parse_kinds(parts, "")))


def _backend(args: argparse.Namespace) -> str | list[str] | None:
    """``--backend`` checked by the settings' parser; ``None`` if not given."""
    if args.backend is None:
        return None
    spec = _config.parse_backend_spec(args.backend, source="--backend")
    return "auto" if spec is None else list(spec)


def _deny(args: argparse.Namespace) -> list[str] | None:
    """Repeated and comma-separated ``--deny`` values as one list; ``None`` if not given.

    An empty value denies nothing, so ``--deny ''`` clears a deny list from the
    environment or a config file.
    """
    if args.deny is None:
        return None
    given = ",".join(value for value in args.deny if value.strip())
    return sorted(_config.parse_deny(given, source="--deny"))


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


def _add_watch(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "watch",
        parents=[parent],
        help="print one record per change under PATH...",
        description="Print one record per change under PATH..., flushed as it happens.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory to watch")
    out = p.add_argument_group("output")
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
    out.add_argument("-v", "--verbose", action="store_true", help="say on stderr what is watched")
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
        "--ignore", action="append", metavar="PATTERN", help="do not report matches (repeatable)"
    )
    what.add_argument(
        "--no-recursive", action="store_true", help="do not descend into subdirectories"
    )
    what.add_argument(
        "--debounce", type=seconds_or_zero, metavar="SECONDS", help="gather events this long"
    )
    what.add_argument(
        "--poll-interval",
        type=positive_seconds,
        metavar="SECONDS",
        help="seconds between scans, for backends that poll",
    )
    stop = p.add_argument_group("when to stop")
    stop.add_argument("-n", "--count", type=positive_int, metavar="N", help="exit after N records")
    stop.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="exit after SECONDS; with code 3 if nothing was printed",
    )
    p.set_defaults(func=cmd_watch)


def _add_backends(subparsers: Any, parent: argparse.ArgumentParser) -> None:
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
    p.set_defaults(func=cmd_backends)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
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
    _add_watch(subparsers, parent)
    _add_backends(subparsers, parent)
    return parser


# --------------------------------------------------------------------------- watch


def _stderr(line: str) -> None:
    try:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # nowhere left to report to


def _warn(message: str) -> None:
    _stderr(f"warning: {message}")


def _config_file(args: argparse.Namespace) -> str | None:
    given: str | None = args.config
    if given is not None:
        return given
    return _config.find_config_file(os.getcwd(), on_warning=_warn)


def _chosen_kinds(args: argparse.Namespace) -> tuple[list[Change] | None, bool]:
    """The ``kinds=`` filter and whether access events are needed for it."""
    if args.event is None:
        return None, bool(args.access)
    chosen = [kind for group in args.event for kind in group]
    return chosen, bool(args.access) or any(kind in ACCESS_KINDS for kind in chosen)


def _open_watcher(args: argparse.Namespace) -> Watcher:
    chosen, access = _chosen_kinds(args)
    return watch(
        *args.paths,
        recursive=not args.no_recursive,
        backend=_backend(args),
        deny=_deny(args),
        ignore=args.ignore,
        kinds=chosen,
        access=access,
        debounce=args.debounce,
        poll_interval=args.poll_interval,
        config_file=_config_file(args),
        on_warning=_warn,
    )


def _renderer(args: argparse.Namespace) -> Render:
    if args.json:
        return render_json
    template: Render | None = args.format
    return template if template is not None else render_plain


def _describe(watcher: Watcher) -> str:
    names = sorted(set(watcher.backends.values()))
    count = len(watcher.roots)
    return f"watching {count} path{'s' if count != 1 else ''} with {', '.join(names)}"


def _next_batch(watcher: Watcher, deadline: float | None) -> list[Event] | None:
    """The next batch, ``[]`` when the deadline or a wait slice passed, ``None`` at the end."""
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if _WAIT_SLICE is not None:
        wait = _WAIT_SLICE if wait is None else min(wait, _WAIT_SLICE)
    try:
        return watcher.get(wait)
    except Exception as exc:
        raise _WatcherFailed(f"the watcher stopped: {type(exc).__name__}: {exc}") from exc


def stream(
    watcher: Watcher, render: Render, end: bytes, count: int | None, timeout: float | None
) -> int:
    """Print events until ``count`` records, the timeout, or the end of every root."""
    printed = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        batch = _next_batch(watcher, deadline)
        if batch is None:
            return EXIT_OK  # every root was deleted: nothing is left to watch
        for event in batch:
            write_bytes(render(event) + end)
            printed += 1
            if count is not None and printed >= count:
                return EXIT_OK
    return EXIT_OK if printed else EXIT_TIMEOUT


def cmd_watch(args: argparse.Namespace) -> int:
    """``crosswatch watch``."""
    watcher = _open_watcher(args)
    try:
        watcher.start()
        if args.verbose:
            _stderr(_describe(watcher))
        end = b"\0" if args.null else b"\n"
        return stream(watcher, _renderer(args), end, args.count, args.timeout)
    finally:
        watcher.close()


# --------------------------------------------------------------------------- backends


def _true_flags(capabilities: Capabilities) -> list[str]:
    """The names of the capabilities a backend has, in declaration order."""
    return [f.name for f in dataclasses.fields(capabilities) if getattr(capabilities, f.name)]


def _report(args: argparse.Namespace, plugins: Plugins) -> tuple[ProbeReport, frozenset[str]]:
    """Probe ``args.path`` with the settings ``watch`` would use there."""
    settings = _config.resolve(
        args={"backend": _backend(args), "deny": _deny(args)},
        config_file=_config_file(args),
    )
    backend = "auto" if settings.backend is None else list(settings.backend)
    report = probe(
        args.path, backend=backend, deny=settings.deny, access=args.access, plugins=plugins
    )
    return report, settings.deny


def _backend_rows(
    report: ProbeReport, plugins: Plugins, deny: frozenset[str]
) -> list[dict[str, Any]]:
    rows = []
    for result in report.results:
        cls = plugins.backends[result.backend]
        rows.append(
            {
                "name": result.backend,
                "available": result.available,
                "denied": result.backend in deny,
                "lacks_access": report.access and not cls.capabilities.access_events,
                "reason": text(result.reason),
                "score": result.score,
                "limit": result.limit,
                "needed": result.needed,
                "plugin": plugins.backends.origin(result.backend),
                "description": cls.description,
                "capabilities": _true_flags(cls.capabilities),
                "chosen": result.backend == report.choice,
            }
        )
    return rows


def _human_row(row: dict[str, Any]) -> list[str]:
    status = "available" if row["available"] else "unavailable"
    if row["denied"]:
        status += ", denied"
    if row["lacks_access"]:
        status += ", cannot report access events"
    mark = "*" if row["chosen"] else " "
    lines = [f"{mark} {row['name']}  {status}, score {row['score']}, plugin {row['plugin']}"]
    if row["reason"]:
        lines.append(f"    {row['reason']}")
    handles = []
    if row["limit"] is not None:
        handles.append(f"handles free: {row['limit']}")
    if row["needed"] is not None:
        handles.append(f"needed here: {row['needed']}")
    if handles:
        lines.append(f"    {', '.join(handles)}")
    lines.append(f"    capabilities: {', '.join(row['capabilities']) or 'none'}")
    return lines


def _human_report(report: ProbeReport, rows: list[dict[str, Any]]) -> str:
    lines = [f"backends for {report.path}:"]
    for row in rows:
        lines.extend(_human_row(row))
    if not rows:
        lines.append("  (none registered)")
    if report.choice is None:
        lines.append(f"no backend can watch it: {report.reason}")
    else:
        lines.append(f"watch would use: {report.choice} ({report.reason})")
    return "\n".join(lines) + "\n"


def cmd_backends(args: argparse.Namespace) -> int:
    """``crosswatch backends``."""
    plugins = Plugins()
    report, deny = _report(args, plugins)
    rows = _backend_rows(report, plugins, deny)
    if args.json:
        whole = {
            "path": text(report.path),
            "access": report.access,
            "choice": report.choice,
            "reason": text(report.reason),
            "backends": rows,
        }
        write_bytes(json.dumps(whole, ensure_ascii=True, indent=2).encode("ascii") + b"\n")
    else:
        write_bytes(os.fsencode(_human_report(report, rows)))
    return EXIT_OK if report.choice is not None else EXIT_UNWATCHABLE


# --------------------------------------------------------------------------- main


_default_showwarning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Print crosswatch's own warnings (plugin imports …) as one ``warning:`` line."""
    if issubclass(category, CrosswatchWarning):
        _warn(str(message))
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at devnull so the exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _fail(code: int, message: str) -> int:
    _stderr(f"error: {message}")
    return code


def _run(args: argparse.Namespace) -> int:
    """Run the command; turn the errors crosswatch raises on purpose into exit codes."""
    verbose = bool(getattr(args, "verbose", False))
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ConfigError as exc:  # UnknownBackendError included
        return _fail(EXIT_USAGE, str(exc))
    except (WatchPathError, WatchGoneError, BackendUnavailableError) as exc:
        return _fail(EXIT_UNWATCHABLE, str(exc))
    except CrosswatchError as exc:  # WatchError and WatchLimitError included
        return _fail(EXIT_FAILURE, str(exc))
    except _WatcherFailed as exc:
        if verbose and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return _fail(EXIT_FAILURE, str(exc))
    except OSError as exc:
        return _fail(EXIT_FAILURE, str(exc))


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While inside, the first SIGTERM raises :class:`_Terminated`, so watchers close.

    The previous handler is put back after. Nothing changes outside the main thread
    (only it may set handlers) or when SIGTERM is ignored: the parent meant that.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:  # a second SIGTERM must not break the close the first started
            fired = True
            raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse: --help, --version or a usage error
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        return EXIT_USAGE
    try:
        with _sigterm_unwinds(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(args)
    except _Terminated:
        return EXIT_TERMINATED

"""The ``crosswatch`` command line: stream events (``watch``), count them (``stats``),
run a command on change (``run``); ``backends``, ``snapshot`` and ``since`` have
modules of their own (``_cli_backends``, ``_cli_snapshot``), and so do ``publish`` and
``follow`` (``_cli_remote``).

Exit codes are listed in ``EXIT_*`` below and in ``docs/cli.md``; every error crosswatch
raises on purpose becomes one ``crosswatch: error: ...`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, TextIO

from . import _cli_backends, _cli_options, _config, _run, _stats
from ._cli_options import PROG, build_parser
from ._errors import (
    BackendUnavailableError,
    ConfigError,
    CrosswatchError,
    CrosswatchWarning,
    WatchGoneError,
    WatchPathError,
)
from ._events import ACCESS_KINDS, Change, Event
from ._progress import Progress
from ._records import Render, render_json, render_plain, write_bytes
from ._watch import Watcher, watch

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_UNWATCHABLE = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143

# Windows cannot interrupt a lock wait with Ctrl-C, so wait there in slices.
_WAIT_SLICE: float | None = 0.5 if os.name == "nt" else None

class _WatcherFailed(Exception):
    """The watcher's thread stopped with an error; exit 1."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"the watcher stopped: {type(cause).__name__}: {cause}")


class _Terminated(BaseException):
    """SIGTERM arrived; like ``KeyboardInterrupt`` it unwinds past ``except Exception``."""


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


class _Reading:
    """The first reading's progress on a terminal's stderr: one line, rewritten
    in place, and wiped once the reading is over (nothing for a quick one)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = False

    def __call__(self, progress: Progress) -> None:
        if progress.done:
            text = "\r\x1b[K" if self._shown else ""
        else:
            self._shown = True
            text = (
                f"\r{PROG}: reading: {progress.entries:,} entries in "
                f"{progress.directories:,} directories"
            )
        if text:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                pass


def _progress(args: argparse.Namespace) -> _Reading | None:
    """Progress for a person watching: only on a terminal, and not with ``-q``."""
    stream = sys.stderr
    if getattr(args, "quiet", False) or stream is None or not stream.isatty():
        return None
    return _Reading(stream)


def _tree_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :class:`Watcher` that the filter options set (with the
    config file and warnings), shared by every command that reads a tree."""
    return {
        "recursive": not args.no_recursive,
        "ignore": args.ignore,
        "include": args.include,
        "gitignore": args.gitignore,
        "default_ignore": args.default_ignore,
        "hidden": args.hidden,
        "config_file": _config_file(args),
        "on_warning": _warn,
    }


def _open_watcher(args: argparse.Namespace) -> Watcher:
    chosen, access = _chosen_kinds(args)
    return watch(
        *args.paths,
        backend=_cli_options.backend(args),
        deny=_cli_options.deny(args),
        kinds=chosen,
        access=access,
        pids=args.pids,
        ignore_pids=args.ignore_pid,
        debounce=args.debounce,
        settle=args.settle,
        coalesce=args.coalesce,
        poll_interval=args.poll_interval,
        backend_options=_cli_options.backend_options(args),
        progress=_progress(args),
        **_tree_keywords(args),
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
        raise _WatcherFailed(exc) from exc


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
        if not args.quiet:
            _stderr(_describe(watcher))
        end = b"\0" if args.null else b"\n"
        return stream(watcher, _renderer(args), end, args.count, args.timeout)
    finally:
        watcher.close()


# --------------------------------------------------------------------------- stats


def _count(watcher: Watcher, tally: _stats.Tally, timeout: float | None) -> int:
    """Count until the timeout (then exit 3 if nothing came), Ctrl-C, SIGTERM (143),
    or the end of every root."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = _next_batch(watcher, deadline)
            if batch is None:
                return EXIT_OK
            tally.add(batch)
    except KeyboardInterrupt:
        return EXIT_OK  # the way to end an open-ended count
    except _Terminated:
        return EXIT_TERMINATED
    return EXIT_OK if tally.total else EXIT_TIMEOUT


def cmd_stats(args: argparse.Namespace) -> int:
    """``crosswatch stats``."""
    watcher = _open_watcher(args)
    tally = _stats.Tally(watcher.roots)
    try:
        watcher.start()
        if not args.quiet:
            _stderr(_describe(watcher) + ("" if args.timeout else "; Ctrl-C prints the counts"))
        started = time.monotonic()
        code = _count(watcher, tally, args.timeout)
        seconds = time.monotonic() - started
    finally:
        watcher.close()
    rows = tally.rows(args.sort, reverse=args.reverse)
    if args.json:
        write_bytes(_stats.as_json(tally, rows, seconds).encode())
    elif rows:
        write_bytes(_stats.table(tally, rows).encode())
    else:
        _stderr(f"no events in {seconds:.1f} s")
    return code


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    """``crosswatch run``."""
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ConfigError("no command to run: give it after '--', as in 'crosswatch run -- make'")
    args.paths = args.paths or ["."]
    watcher = _open_watcher(args)
    stop = _run.Stop(grace=args.grace)
    if args.signal is not None:
        stop = _run.Stop(signal=args.signal, grace=args.grace)
    runner = _run.Runner(
        watcher,
        argv,
        shell=args.shell,
        restart=args.restart,
        postpone=args.postpone,
        stop=stop,
        report=_stderr,
        wait_slice=_WAIT_SLICE,
    )
    try:
        watcher.start()
        if not args.quiet:
            _stderr(_describe(watcher))
        try:
            runner.run()
        except CrosswatchError:
            raise
        except Exception as exc:  # the watcher's thread stopped: as for watch
            raise _WatcherFailed(exc) from exc
    finally:
        watcher.close()
    return EXIT_OK


# --------------------------------------------------------------------------- backends


def cmd_backends(args: argparse.Namespace) -> int:
    """``crosswatch backends``."""
    return EXIT_OK if _cli_backends.show(args, _config_file(args)) else EXIT_UNWATCHABLE


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


def _dispatch(args: argparse.Namespace) -> int:
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
    (only it may set handlers), when SIGTERM is ignored (the parent meant that), or
    where the OS has no SIGTERM or refuses a handler for it (the default stays).
    """
    term = getattr(signal, "SIGTERM", None)
    if term is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(term)
    if previous == signal.SIG_IGN:
        yield
        return
    fired = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:  # a second SIGTERM must not break the close the first started
            fired = True
            raise _Terminated

    try:
        signal.signal(term, handler)
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(term, signal.SIG_DFL if previous is None else previous)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser(
        watch=cmd_watch, backends=cmd_backends, stats=cmd_stats, run=cmd_run
    )
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse: --help, --version or a usage error
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        return EXIT_USAGE
    try:
        with _sigterm_unwinds(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _dispatch(args)
    except _Terminated:
        return EXIT_TERMINATED

"""``crosswatch run``: a command run, then run again or restarted, on change.

The command runs in a process group of its own, so stopping it reaches every
process it started: the group gets a signal, a grace period, then SIGKILL. The
loop waits on one queue fed by two threads, the watcher's batches and the child's
exit, so it costs nothing while both are quiet.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigError
from ._events import Event
from ._watch import Watcher

#: The child's environment variable holding the changes that led to its run.
CHANGES_VAR = "CROSSWATCH_CHANGES"
#: At most this many characters of JSON in it: an environment string has a
#: limit (128 KiB on Linux); past this, the oldest changes are left out.
CHANGES_MAX = 65_536
#: Set, to the number left out, when some changes did not fit.
OMITTED_VAR = "CROSSWATCH_CHANGES_OMITTED"

_POSIX = os.name == "posix"


class CommandError(ConfigError):
    """The command cannot be started (not found, not executable)."""


def changes_json(events: Sequence[Event], limit: int = CHANGES_MAX) -> tuple[str, int]:
    """The changes as a JSON array of ``{"kind", "path"[, "src"]}``, newest kept
    first when they do not fit in ``limit`` characters; (text, how many left out)."""
    items: list[str] = []
    size = 2
    for event in reversed(events):
        record: dict[str, str] = {"kind": event.kind.value, "path": event.path}
        if event.src_path is not None:
            record["src"] = event.src_path
        item = json.dumps(record, ensure_ascii=True)
        if size + len(item) + 1 > limit:
            break
        items.append(item)
        size += len(item) + 1
    items.reverse()
    return "[" + ",".join(items) + "]", len(events) - len(items)


@dataclass(frozen=True, slots=True)
class Stop:
    """How a running command is stopped: ``signal`` to its group, then SIGKILL
    after ``grace`` seconds."""

    signal: int = signal.SIGTERM
    grace: float = 5.0


class Child:
    """The command's one running process (and its group), or none."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        shell: bool,
        on_exit: Callable[[subprocess.Popen[bytes]], None],
    ) -> None:
        self._argv = list(argv)
        self._shell = shell
        self._on_exit = on_exit
        self.proc: subprocess.Popen[bytes] | None = None
        self._waiter: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def start(self, changes: Sequence[Event]) -> None:
        """Start the command, with ``changes`` in its environment."""
        env = dict(os.environ)
        env[CHANGES_VAR], omitted = changes_json(changes)
        env.pop(OMITTED_VAR, None)
        if omitted:
            env[OMITTED_VAR] = str(omitted)
        command: str | list[str] = " ".join(self._argv) if self._shell else self._argv
        try:
            self.proc = subprocess.Popen(
                command,
                shell=self._shell,
                env=env,
                start_new_session=_POSIX,
                creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
            )
        except OSError as exc:
            raise CommandError(
                f"cannot run {self._argv[0]!r}: {exc.strerror or exc}; check the command "
                "(use --shell for a shell command line)"
            ) from None
        proc = self.proc
        self._waiter = threading.Thread(
            target=self._wait, args=(proc,), name="crosswatch-run-wait", daemon=True
        )
        self._waiter.start()

    def _wait(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self._on_exit(proc)

    def stop(self, how: Stop) -> None:
        """Stop the command's process group: ``how.signal``, then SIGKILL after the
        grace period. Returns once the command itself has exited."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            self._signal(proc, how.signal)
            try:
                proc.wait(timeout=how.grace)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL if _POSIX else how.signal)
                proc.wait()
        if _POSIX:  # what it left behind in its group goes too
            self._signal(proc, signal.SIGKILL)
        if self._waiter is not None:
            self._waiter.join()

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
        try:
            if _POSIX:
                os.killpg(proc.pid, signum)
            else:  # no group signals: TerminateProcess
                proc.terminate()
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already


def outcome(proc: subprocess.Popen[bytes]) -> str:
    """How a run ended, for the user: its exit code or its signal."""
    code = proc.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the command was ended by {name}"
    return f"the command exited with code {code}"


class Runner:
    """Runs the command at start (unless postponed), then on each batch of changes:
    once more after the running one ends, or at once with ``restart``."""

    def __init__(
        self,
        watcher: Watcher,
        argv: Sequence[str],
        *,
        shell: bool = False,
        restart: bool = False,
        postpone: bool = False,
        stop: Stop | None = None,
        report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
        wait_slice: float | None = None,
    ) -> None:
        self._watcher = watcher
        self._restart = restart
        self._postpone = postpone
        self._stop = Stop() if stop is None else stop
        self._report = report
        self._slice = wait_slice
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._child = Child(argv, shell=shell, on_exit=lambda p: self._inbox.put(("exited", p)))
        self._pending: list[Event] = []

    def run(self) -> None:
        """Until every root is gone; Ctrl-C or SIGTERM unwinds from here, and the
        command is stopped on every way out."""
        feeder = threading.Thread(target=self._feed, name="crosswatch-run-feed", daemon=True)
        feeder.start()
        try:
            if not self._postpone:
                self._child.start([])
            while self._step():
                pass
        finally:
            self._child.stop(self._stop)
            self._watcher.close()
            feeder.join()

    def _feed(self) -> None:
        try:
            for batch in self._watcher:
                self._inbox.put(("changes", batch))
        except Exception as exc:  # handed to the loop, which ends on it
            self._inbox.put(("failed", exc))
        finally:
            self._inbox.put(("end", None))

    def _step(self) -> bool:
        """Take one message; False once the watch has ended."""
        try:
            what, value = self._inbox.get(timeout=self._slice)
        except queue.Empty:
            return True  # a slice passed: lets Ctrl-C in where waits hold it off
        if what == "end":
            return False
        if what == "failed":
            raise value
        if what == "exited":
            self._report(outcome(value))
        elif value:
            self._pending.extend(value)
            if self._restart and self._child.running:
                self._child.stop(self._stop)
        if self._pending and not self._child.running:
            changes, self._pending = self._pending, []
            self._child.start(changes)
        return True

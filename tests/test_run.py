"""``crosswatch run``: the command run at start and on change, rerun or restarted,
stopped with its process group; run as real processes on real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_cli import FAST, WAIT, Cli, assert_no_traceback, run

from crosswatch import Change, Event, Watcher
from crosswatch._cli import main
from crosswatch._run import changes_json
from crosswatch.testing import needs_posix_signals

#: A command that logs each run: its pid, the pid of a child it starts (which
#: sleeps), and the changes it was given; on SIGTERM it logs that and exits,
#: unless told to ignore it. With ``make``, the first run creates files and
#: waits a while before it ends, so that they are seen while it runs.
LOGGER = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    log, mode = sys.argv[1], sys.argv[2]
    def write(record):
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\\n")
    def on_term(signum, frame):
        write({"term": os.getpid()})
        sys.exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else on_term)
    changes = json.loads(os.environ["CROSSWATCH_CHANGES"])
    kid = None
    if mode in ("serve", "stubborn"):
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    write({"pid": os.getpid(), "kid": kid and kid.pid, "changes": changes})
    if mode == "make" and not changes:
        for name in sys.argv[3:]:
            open(name, "w").close()
        time.sleep(2.0)
    if mode in ("serve", "stubborn"):
        while True:
            time.sleep(1)
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))
    """
)


def gone(pid: int) -> bool:
    """Has ``pid`` exited (a zombie not reaped yet counts)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def said(cli: Cli, text: bytes) -> None:
    """Wait for ``text`` on the command's stderr."""
    deadline = time.monotonic() + WAIT
    while text not in cli.stderr:
        assert time.monotonic() < deadline, f"never said {text!r}; stderr: {cli.stderr!r}"
        cli._take_err(0.1)


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


class Logged:
    """The runs a LOGGER command has logged."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def runs(self) -> list[dict[str, object]]:
        return [r for r in self.records() if "pid" in r]

    def wait_runs(self, n: int) -> list[dict[str, object]]:
        until(lambda: len(self.runs()) >= n, f"{n} runs; log: {self.records()}")
        return self.runs()


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[..., tuple[Cli, Logged, Path]]]:
    """Start ``crosswatch run`` of LOGGER on ``tmp_path/w``; killed at the end."""
    started: list[Cli] = []
    watched = tmp_path / "w"
    watched.mkdir()

    def _start(*options: str, mode: str = "once", extra: tuple[str, ...] = (),
               **env: str) -> tuple[Cli, Logged, Path]:
        log = tmp_path / "log"
        # SIGTERM is how the fixture ends it; an ignored one would stay ignored.
        previous = signal.signal(signal.SIGTERM, signal.SIG_DFL) if SIGTERM_OK else None
        try:
            cli = Cli(["run", "-w", str(watched), *FAST, *options, "--",
                       sys.executable, "-c", LOGGER, str(log), mode, *extra], None, env, b"\n")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        started.append(cli)
        return cli, Logged(log), watched

    try:
        yield _start
    finally:
        for cli in started:
            end(cli)


SIGTERM_OK = hasattr(signal, "SIGTERM") and os.name == "posix"


def end(cli: Cli) -> None:
    """Stop ``crosswatch run`` as a user would, so that it stops its command (one
    killed outright leaves the command running, holding the output pipes)."""
    if cli.proc.poll() is None and SIGTERM_OK:
        cli.proc.terminate()
        try:
            cli.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass
    cli.kill()


def names(run: dict[str, object]) -> list[tuple[str, str]]:
    changes = run["changes"]
    assert isinstance(changes, list)
    return sorted((c["kind"], os.path.basename(c["path"])) for c in changes)


# --------------------------------------------------------------------------- the loop


def test_runs_at_start_then_again_on_each_change(start_run: Callable[..., tuple[Cli, Logged, Path]]
                                                 ) -> None:
    cli, log, watched = start_run()
    cli.ready()
    assert names(log.wait_runs(1)[0]) == []
    (watched / "a").write_text("x")
    runs = log.wait_runs(2)
    assert ("created", "a") in names(runs[1])
    (watched / "a").unlink()
    assert ("deleted", "a") in names(log.wait_runs(3)[2])
    said(cli, b"crosswatch: the command exited with code 0")


def test_postpone_waits_for_a_first_change(start_run: Callable[..., tuple[Cli, Logged, Path]]
                                           ) -> None:
    cli, log, watched = start_run("--postpone")
    cli.ready()
    time.sleep(0.5)  # long enough for a run at start to have logged, were there one
    assert log.runs() == []
    (watched / "a").write_text("x")
    assert ("created", "a") in names(log.wait_runs(1)[0])


def test_changes_during_a_run_lead_to_exactly_one_more(
    start_run: Callable[..., tuple[Cli, Logged, Path]], tmp_path: Path
) -> None:
    watched = tmp_path / "w"
    made = [str(watched / n) for n in ("a", "b", "c")]
    cli, log, _ = start_run(mode="make", extra=tuple(made))
    cli.ready()
    runs = log.wait_runs(2)
    assert names(runs[0]) == []
    assert names(runs[1]) == [("created", "a"), ("created", "b"), ("created", "c")]
    time.sleep(1.0)  # a third run would have begun by now
    assert len(log.runs()) == 2


def test_the_exit_code_of_each_run_is_reported(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    cli, log, _ = start_run(EXIT_CODE="3")
    cli.ready()
    log.wait_runs(1)
    said(cli, b"crosswatch: the command exited with code 3")


def test_a_server_that_dies_at_start_is_told_and_started_again_on_change(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    """With --restart, a command that exits at once is not waited for in silence: its
    exit is reported, watching goes on, and the next change starts it again."""
    cli, log, watched = start_run("--restart", EXIT_CODE="3")
    cli.ready()
    log.wait_runs(1)
    said(cli, b"crosswatch: the command exited with code 3")
    (watched / "a").write_text("x")
    second = log.wait_runs(2)[1]
    assert ("created", "a") in names(second)
    assert cli.proc.poll() is None  # still watching


# --------------------------------------------------------------------------- stopping


@needs_posix_signals
def test_restart_stops_the_command_and_its_group_then_starts_anew(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli, log, watched = start_run("--restart", mode="serve")
    finally:
        signal.signal(signal.SIGINT, previous)
    cli.ready()
    first = log.wait_runs(1)[0]
    (watched / "a").write_text("x")
    second = log.wait_runs(2)[1]
    assert ("created", "a") in names(second)
    assert {"term": first["pid"]} in log.records()  # it was asked first
    for pid in (first["pid"], first["kid"]):
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")
    cli.proc.send_signal(signal.SIGINT)
    assert cli.wait() == 130
    for pid in (second["pid"], second["kid"]):  # no orphan left
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")
    assert_no_traceback(cli.stderr)


@needs_posix_signals
def test_a_command_that_ignores_the_signal_is_killed_after_the_grace(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    cli, log, watched = start_run("--restart", "--grace", "0.5", mode="stubborn")
    cli.ready()
    first = log.wait_runs(1)[0]
    (watched / "a").write_text("x")
    second = log.wait_runs(2)[1]
    for pid in (first["pid"], first["kid"]):
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")
    said(cli, b"crosswatch: the command was ended by SIGKILL")
    cli.proc.terminate()  # at the exit too, the grace ends in SIGKILL
    assert cli.wait() == 143
    for pid in (second["pid"], second["kid"]):
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")


@needs_posix_signals
def test_sigterm_stops_the_command_and_exits_143(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        cli, log, _ = start_run("--signal", "HUP", mode="serve")
    finally:
        signal.signal(signal.SIGTERM, previous)
    cli.ready()
    first = log.wait_runs(1)[0]
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.wait() == 143
    for pid in (first["pid"], first["kid"]):  # HUP's default ends both
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")
    assert_no_traceback(cli.stderr)


@needs_posix_signals  # (gone() asks with signal 0, which Windows takes for a kill)
def test_it_ends_with_its_paths_and_stops_the_command(
    start_run: Callable[..., tuple[Cli, Logged, Path]]
) -> None:
    cli, log, watched = start_run(mode="serve")
    cli.ready()
    first = log.wait_runs(1)[0]
    shutil.rmtree(watched)
    assert cli.wait() == 0
    for pid in (first["pid"], first["kid"]):
        assert isinstance(pid, int)
        until(lambda pid=pid: gone(pid), f"{pid} gone")


# --------------------------------------------------------------------------- the command line


def test_shell_runs_one_command_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cli = Cli(["run", "-w", str(tmp_path), *FAST, "--shell", "--",
               f'echo "$CROSSWATCH_CHANGES" > "{out}"'], None, {}, b"\n")
    try:
        cli.ready()
        until(lambda: out.exists() and out.read_text() == "[]\n", "the shell's output")
    finally:
        end(cli)


def test_without_a_command_it_is_a_usage_error(tmp_path: Path) -> None:
    result = run("run", "-w", str(tmp_path))
    assert result.returncode == 2
    assert b"no command to run" in result.stderr


def test_a_command_that_cannot_start_is_a_usage_error(tmp_path: Path) -> None:
    result = run("run", "-w", str(tmp_path), *FAST, "--", str(tmp_path / "no-such-program"))
    assert result.returncode == 2
    assert b"cannot run" in result.stderr
    assert_no_traceback(result.stderr)


def test_a_watcher_that_stops_on_an_error_is_exit_1_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(self: Watcher) -> Iterator[list[Event]]:
        raise RuntimeError("the OS said no")

    monkeypatch.setattr(Watcher, "__iter__", broken)
    code = main(["run", "-w", str(tmp_path), *FAST, "-q", "--", sys.executable, "-c", "pass"])
    err = capsys.readouterr().err
    assert code == 1
    assert "crosswatch: error: the watcher stopped: RuntimeError: the OS said no" in err
    assert "Traceback" not in err


def test_a_bad_signal_is_a_usage_error(tmp_path: Path) -> None:
    result = run("run", "-w", str(tmp_path), "--signal", "NOPE", "--", "true")
    assert result.returncode == 2
    assert b"'NOPE' is not a signal" in result.stderr


# --------------------------------------------------------------------------- the changes


def test_changes_are_json_newest_kept_when_too_many() -> None:
    events = [Event(Change.CREATED, f"/w/{i}") for i in range(100)]
    events.append(Event(Change.MOVED, "/w/b", src_path="/w/a"))
    text, omitted = changes_json(events)
    assert omitted == 0
    assert json.loads(text)[-1] == {"kind": "moved", "path": "/w/b", "src": "/w/a"}
    text, omitted = changes_json(events, limit=200)
    kept = json.loads(text)
    assert len(text) <= 200
    assert omitted == len(events) - len(kept) > 0
    assert kept[-1]["path"] == "/w/b"  # the newest stay

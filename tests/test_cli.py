"""The command line, run as a real process on real files.

Every process uses the polling backend with a short interval, so these tests work
on every OS; waits are generous deadlines, never sleeps that a slow machine could
outrun.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

import crosswatch
from crosswatch._cli import main
from crosswatch._cli_backends import human_row
from crosswatch._events import Change, Event
from crosswatch._records import compile_format, render_json, render_plain
from crosswatch.testing import needs_byte_names, needs_posix_permissions, needs_posix_signals

PROJECT = Path(crosswatch.__file__).resolve().parent.parent
FAST = ["--backend", "polling", "--poll-interval", "0.05"]
WAIT = 20.0  # seconds: generous, only reached when something is wrong


def _env(**extra: str) -> dict[str, str]:
    """A clean environment: no CROSSWATCH_* settings, no third-party plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH")) if p)
    env["CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI to completion."""
    return subprocess.run(
        [sys.executable, "-m", "crosswatch", *args],
        capture_output=True,
        cwd=cwd,
        env=_env(**env),
        timeout=WAIT,
        check=False,
    )


def _pump(stream: object, into: queue.Queue[bytes]) -> None:
    read = stream.read1  # type: ignore[attr-defined]
    while chunk := read(65536):
        into.put(chunk)
    into.put(b"")


class Cli:
    """A running ``crosswatch watch`` whose output is read as it comes."""

    def __init__(self, args: list[str], cwd: Path | None, env: dict[str, str], sep: bytes) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crosswatch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=_env(**env),
        )
        self.sep = sep
        self._out: queue.Queue[bytes] = queue.Queue()
        self._err: queue.Queue[bytes] = queue.Queue()
        self._out_buf = b""
        self.stderr = b""
        self._readers = [
            threading.Thread(target=_pump, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _take_err(self, timeout: float) -> bool:
        try:
            chunk = self._err.get(timeout=timeout)
        except queue.Empty:
            return True
        self.stderr += chunk
        return bool(chunk)

    def ready(self) -> None:
        """Wait for the ``-v`` line, printed once the initial scan is done."""
        deadline = time.monotonic() + WAIT
        while b"watching" not in self.stderr:
            left = deadline - time.monotonic()
            assert left > 0, f"never ready; stderr: {self.stderr!r}"
            assert self._take_err(left), f"exited before ready; stderr: {self.stderr!r}"

    def record(self) -> bytes:
        """The next record, without its separator."""
        deadline = time.monotonic() + WAIT
        while self.sep not in self._out_buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no record; got {self._out_buf!r}, stderr {self.stderr!r}"
            try:
                chunk = self._out.get(timeout=left)
            except queue.Empty:
                continue
            assert chunk, f"output ended; got {self._out_buf!r}, stderr {self.stderr!r}"
            self._out_buf += chunk
        record, self._out_buf = self._out_buf.split(self.sep, 1)
        return record

    def text(self) -> str:
        return os.fsdecode(self.record())

    def wait(self) -> int:
        """Wait for the exit; collect the rest of both streams."""
        code = self.proc.wait(timeout=WAIT)
        for reader in self._readers:
            reader.join(timeout=WAIT)
        while not self._err.empty():
            self.stderr += self._err.get()
        while not self._out.empty():
            self._out_buf += self._out.get()
        return code

    def rest(self) -> bytes:
        """Whatever stdout held after the last record read (call after :meth:`wait`)."""
        return self._out_buf

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


StartCli = Callable[..., Cli]


@pytest.fixture
def start() -> Iterator[StartCli]:
    """Start ``crosswatch watch ...``; every process is killed when the test ends."""
    started: list[Cli] = []

    def _start(*args: str, cwd: Path | None = None, sep: bytes = b"\n", **env: str) -> Cli:
        cli = Cli(["watch", *args], cwd, env, sep)
        started.append(cli)
        return cli

    try:
        yield _start
    finally:
        for cli in started:
            cli.kill()


def touch(path: Path) -> None:
    path.write_bytes(b"")


def assert_no_traceback(stderr: bytes) -> None:
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")


# --------------------------------------------------------------------------- output


def test_default_format_streams_each_record_at_once(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v")
    cli.ready()
    touch(tmp_path / "a")
    assert cli.text() == f"created\t{tmp_path / 'a'}"
    assert cli.proc.poll() is None  # the record came while still watching: flushed
    (tmp_path / "sub").mkdir()
    assert cli.text() == f"created\t{tmp_path / 'sub'}/"
    (tmp_path / "a").rename(tmp_path / "b")
    assert cli.text() == f"moved\t{tmp_path / 'b'}\t{tmp_path / 'a'}"


def test_watching_begun_is_said_on_stderr_only(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "--timeout", "0.5")
    cli.ready()
    assert cli.wait() == 3
    assert cli.stderr.decode().splitlines() == ["crosswatch: watching 1 path with polling"]
    assert cli.rest() == b""


@pytest.mark.parametrize("command", ["watch", "stats"])
def test_quiet_says_nothing_on_stderr(tmp_path: Path, command: str) -> None:
    result = run(command, str(tmp_path), *FAST, "-q", "--timeout", "0.3")
    assert result.returncode == 3
    if command == "watch":
        assert result.stderr == b""
    else:  # the result, which the empty table gives way to
        assert result.stderr.startswith(b"crosswatch: no events in ")


def test_quiet_and_verbose_do_not_go_together(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "-q", "-v")
    assert result.returncode == 2
    assert b"not allowed with" in result.stderr


def test_format_placeholders(tmp_path: Path, start: StartCli) -> None:
    fmt = "{kind}|{path}|{dir}|{is_dir}|{src}|{pid}|{{literal}}|{time}"
    cli = start(str(tmp_path), *FAST, "-v", "--format", fmt)
    cli.ready()
    (tmp_path / "sub").mkdir()
    kind, path, slash, is_dir, src, pid, literal, when = cli.text().split("|")
    assert (kind, path, slash, is_dir, src, pid) == (
        "created",
        str(tmp_path / "sub"),
        "/",
        "true",
        "",
        "",
    )
    assert literal == "{literal}"
    assert datetime.fromisoformat(when).tzinfo is not None
    (tmp_path / "sub").rename(tmp_path / "moved")
    fields = cli.text().split("|")
    assert fields[:5] == ["moved", str(tmp_path / "moved"), "/", "true", str(tmp_path / "sub")]


@pytest.mark.parametrize(
    ("fmt", "fragment"),
    [
        ("{kind} {bogus}", b"unknown placeholder {bogus}"),
        ("{0}", b"unknown placeholder {0}"),
        ("{path:>20}", b"format spec"),
        ("{kind", b"'{{'"),
    ],
)
def test_bad_format_is_a_usage_error(tmp_path: Path, fmt: str, fragment: bytes) -> None:
    result = run("watch", str(tmp_path), *FAST, "--format", fmt)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert result.stdout == b""


@needs_byte_names
def test_json_records_survive_non_utf8_names(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "--json")
    cli.ready()
    try:
        fd = os.open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), os.O_CREAT | os.O_WRONLY)
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    os.close(fd)
    record = json.loads(cli.record())
    assert record["kind"] == "created"
    assert record["path"] == str(tmp_path / "bad") + "\\xff"
    assert record["src_path"] is None
    assert record["is_dir"] is False
    assert record["pid"] is None or isinstance(record["pid"], int)
    assert datetime.fromisoformat(record["time"])
    touch(tmp_path / "plain")
    assert json.loads(cli.record())["path"] == str(tmp_path / "plain")


@needs_byte_names
def test_default_format_writes_the_exact_bytes_of_names(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v")
    cli.ready()
    name = os.path.join(os.fsencode(tmp_path), b"bad\xff")
    try:
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    assert cli.record() == b"created\t" + name


def test_null_separated_records(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "-0", sep=b"\0")
    cli.ready()
    name = tmp_path / "two\nlines"
    try:
        touch(name)
    except OSError:
        pytest.skip("this file system refuses newlines in names")
    assert cli.text() == f"created\t{name}"
    touch(tmp_path / "next")
    assert cli.text() == f"created\t{tmp_path / 'next'}"


def test_json_and_format_exclude_each_other(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "--json", "--format", "{path}")
    assert result.returncode == 2
    assert b"not allowed with" in result.stderr


# --------------------------------------------------------------------------- filters


def test_event_filter(tmp_path: Path, start: StartCli) -> None:
    touch(tmp_path / "old")
    touch(tmp_path / "keep")
    cli = start(str(tmp_path), *FAST, "-v", "-e", "deleted", "--event", "moved")
    cli.ready()
    touch(tmp_path / "new")  # exists before "old" goes, so seen by then, and filtered out
    (tmp_path / "old").unlink()
    assert cli.text() == f"deleted\t{tmp_path / 'old'}"
    (tmp_path / "keep").rename(tmp_path / "kept")
    assert cli.text() == f"moved\t{tmp_path / 'kept'}\t{tmp_path / 'keep'}"
    (tmp_path / "new").unlink()
    assert cli.text() == f"deleted\t{tmp_path / 'new'}"


def test_event_filter_takes_comma_lists(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "-e", "deleted,created")
    cli.ready()
    touch(tmp_path / "a")
    assert cli.text() == f"created\t{tmp_path / 'a'}"


def test_unknown_kind_lists_the_kinds(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "-e", "created,chnaged")
    assert result.returncode == 2
    assert b"unknown event kind 'chnaged'" in result.stderr
    for kind in Change:
        assert kind.value.encode() in result.stderr


def test_ignore_option(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "--ignore", "*.tmp")
    cli.ready()
    touch(tmp_path / "x.tmp")
    touch(tmp_path / "y.txt")
    assert cli.text() == f"created\t{tmp_path / 'y.txt'}"


# --------------------------------------------------------------------------- stopping


def test_count_exits_after_n_records(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "-n", "2")
    cli.ready()
    for name in ("a", "b", "c"):
        touch(tmp_path / name)
    assert cli.wait() == 0
    lines = cli.rest().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(b"created\t") for line in lines)


def test_timeout_without_events_exits_3(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), *FAST, "--timeout", "0.3")
    assert result.returncode == 3
    assert result.stdout == b""
    assert_no_traceback(result.stderr)


def test_timeout_with_events_exits_0(tmp_path: Path, start: StartCli) -> None:
    cli = start(str(tmp_path), *FAST, "-v", "--timeout", "4")
    cli.ready()
    touch(tmp_path / "a")
    assert cli.text() == f"created\t{tmp_path / 'a'}"
    assert cli.wait() == 0


def test_deleting_every_root_ends_the_stream(tmp_path: Path, start: StartCli) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    cli = start(str(root), *FAST, "-v")
    cli.ready()
    shutil.rmtree(root)
    assert cli.wait() == 0
    assert f"deleted\t{root}/".encode() in cli.rest().splitlines()
    assert_no_traceback(cli.stderr)


@needs_posix_signals
def test_sigint_exits_130_quietly(tmp_path: Path, start: StartCli) -> None:
    # A handled signal is reset to its default in the child, an ignored one stays
    # ignored: so handle it here, in case this test runs as a background job.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli = start(str(tmp_path), *FAST, "-v")
    finally:
        signal.signal(signal.SIGINT, previous)
    cli.ready()
    cli.proc.send_signal(signal.SIGINT)
    assert cli.wait() == 130
    assert_no_traceback(cli.stderr)


@needs_posix_signals
def test_sigterm_closes_the_watcher_and_exits_143(tmp_path: Path, start: StartCli) -> None:
    # An ignored signal stays ignored in the child (and crosswatch leaves it so).
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        cli = start(str(tmp_path), *FAST, "-v")
    finally:
        signal.signal(signal.SIGTERM, previous)
    cli.ready()
    touch(tmp_path / "seen")
    assert cli.text().startswith("created\t")  # watching for real
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.wait() == 143
    assert_no_traceback(cli.stderr)
    assert cli.stderr.decode().splitlines() == ["crosswatch: watching 1 path with polling"]
    assert cli.rest() == b""


@needs_posix_signals
def test_main_puts_the_sigterm_handler_back(tmp_path: Path) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["watch", str(tmp_path), *FAST, "--timeout", "0.1"]) == 3
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_main_runs_where_no_sigterm_handler_can_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(signum: int, handler: object) -> object:
        raise ValueError("signal only works in main thread of the main interpreter")

    monkeypatch.setattr(signal, "signal", refused)
    assert main(["watch", str(tmp_path), *FAST, "--timeout", "0.1"]) == 3


def test_main_runs_where_the_os_has_no_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(signal, "SIGTERM")
    assert main(["watch", str(tmp_path), *FAST, "--timeout", "0.1"]) == 3


def test_help_lists_the_signal_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert b"130 interrupted (SIGINT)" in result.stdout
    assert b"143 terminated (SIGTERM)" in result.stdout


def test_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosswatch", "watch", str(tmp_path), *FAST, "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        assert proc.stderr is not None
        assert proc.stdout is not None
        assert b"watching" in proc.stderr.readline()
        proc.stdout.close()  # like `| head -0`: nobody reads any more
        deadline = time.monotonic() + WAIT
        n = 0
        while proc.poll() is None and time.monotonic() < deadline:
            touch(tmp_path / f"f{n}")  # the next record written notices the closed pipe
            n += 1
            time.sleep(0.05)
        assert proc.wait(timeout=WAIT) == 141
        assert_no_traceback(proc.stderr.read())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        if proc.stderr is not None:
            proc.stderr.close()


# --------------------------------------------------------------------------- errors


def test_nonexistent_path_exits_4(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = run("watch", str(missing), *FAST)
    assert result.returncode == 4
    assert result.stderr.startswith(b"crosswatch: error: cannot watch")
    assert b"does not exist" in result.stderr
    assert result.stdout == b""
    assert_no_traceback(result.stderr)


def test_unknown_backend_exits_2_naming_the_backends(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "--backend", "pollign")
    assert result.returncode == 2
    assert result.stderr.startswith(b"crosswatch: error: unknown backend 'pollign'")
    assert b"polling" in result.stderr.split(b"registered backends:", 1)[1]
    assert_no_traceback(result.stderr)


@pytest.mark.parametrize(
    "option",
    [
        ["--poll-interval", "0"],
        ["--poll-interval", "soon"],
        ["--debounce", "-1"],
        ["--timeout", "nan"],
        ["--count", "0"],
    ],
)
def test_bad_option_values_are_usage_errors(option: list[str], tmp_path: Path) -> None:
    assert main(["watch", str(tmp_path), *option]) == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--poll-interval", "-1", "must be a positive number of seconds, such as 0.5, got -1"),
        ("--poll-interval", "-0.5", "must be a positive number of seconds, such as 0.5, got -0.5"),
        ("--poll-interval", "-inf", "must be a positive number of seconds, such as 0.5, got -inf"),
        ("--poll-int", "-1", "must be a positive number of seconds"),  # an abbreviation
        ("--debounce", "-1", "must be a number of seconds >= 0, such as 0.1, got -1"),
        ("--timeout", "-1", "must be a positive number of seconds, such as 0.5, got -1"),
        ("--timeout", "-1e3", "must be a positive number of seconds, such as 0.5, got -1e3"),
        ("--count", "-1", "'-1' is not a whole number of 1 or more"),
        ("-n", "-2", "'-2' is not a whole number of 1 or more"),
    ],
)
@pytest.mark.parametrize("form", ["space", "equals"])
def test_negative_values_get_the_option_message(
    option: str,
    value: str,
    message: str,
    form: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = [option, value] if form == "space" else [f"{option}={value}"]
    assert main(["watch", str(tmp_path), *given]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "expected one argument" not in err


def test_a_number_after_double_dash_stays_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "-1").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["watch", *FAST, "--timeout", "0.1", "--", "-1"]) == 3


def test_bad_deny_list_is_a_usage_error(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "--deny", "polling,,x")
    assert result.returncode == 2
    assert b"crosswatch: error:" in result.stderr
    assert b"empty name" in result.stderr


def test_denied_only_backend_exits_4(tmp_path: Path) -> None:
    result = run("watch", str(tmp_path), "--deny", "polling")
    assert result.returncode == 4
    assert b"crosswatch: error: no backend can watch" in result.stderr


@needs_posix_permissions
def test_unreadable_directory_is_a_warning(tmp_path: Path, start: StartCli) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that read any directory")
        cli = start(str(tmp_path), *FAST, "-v")
        cli.ready()
        assert b"crosswatch: warning: cannot read directory" in cli.stderr
    finally:
        locked.chmod(0o700)


# --------------------------------------------------------------------------- config


def test_config_file_in_the_current_directory(tmp_path: Path, start: StartCli) -> None:
    (tmp_path / "crosswatch.toml").write_text(
        'backend = "polling"\npoll_interval = 0.05\nignore = ["*.tmp"]\n', encoding="utf-8"
    )
    cli = start(".", "-v", cwd=tmp_path)
    cli.ready()
    assert b"with polling" in cli.stderr
    touch(tmp_path / "x.tmp")
    touch(tmp_path / "y.txt")
    # "." is the working directory as the OS names it, symbolic links resolved
    assert cli.text() == f"created\t{os.path.realpath(tmp_path / 'y.txt')}"


def test_precedence_argument_environment_file(tmp_path: Path) -> None:
    (tmp_path / "crosswatch.toml").write_text('backend = "nosuch"\n', encoding="utf-8")
    quick = ["watch", ".", "--timeout", "0.2", "--poll-interval", "0.05"]
    from_file = run(*quick, cwd=tmp_path)
    assert from_file.returncode == 2
    assert b"unknown backend 'nosuch'" in from_file.stderr
    assert run(*quick, cwd=tmp_path, CROSSWATCH_BACKEND="polling").returncode == 3
    argument = run(*quick, "--backend", "polling", cwd=tmp_path, CROSSWATCH_BACKEND="nosuch")
    assert argument.returncode == 3


def test_empty_deny_clears_the_deny_list(tmp_path: Path) -> None:
    (tmp_path / "crosswatch.toml").write_text('deny = ["polling"]\n', encoding="utf-8")
    quick = ["watch", ".", "--timeout", "0.2", "--poll-interval", "0.05"]
    assert run(*quick, cwd=tmp_path).returncode == 4  # the file denies the only backend
    assert run(*quick, "--deny", "", cwd=tmp_path).returncode == 3
    assert run(*quick, "--deny", "", cwd=tmp_path, CROSSWATCH_DENY="polling").returncode == 3
    cleared = run("backends", ".", "--json", "--deny", "", cwd=tmp_path)
    assert cleared.returncode == 0
    assert json.loads(cleared.stdout)["choice"] == "polling"
    # an empty value next to a name counts for nothing: the name is denied
    mixed = run("backends", ".", "--json", "--deny", "", "--deny", "polling", cwd=tmp_path)
    assert mixed.returncode == 4, mixed.stderr
    assert json.loads(mixed.stdout)["backends"][0]["denied"] is True


@pytest.mark.parametrize("command", ["watch", "backends"])
def test_config_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path, command: str) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_bytes(b'backend = "polling"\nignore = ["\xff"]\n')
    stop = ["--timeout", "0.2"] if command == "watch" else []
    for how in ([], ["--config", str(config)]):
        result = run(command, ".", *stop, *how, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"crosswatch: error: {config} is not valid TOML".encode())
        assert b"not UTF-8" in result.stderr
        assert_no_traceback(result.stderr)


@pytest.mark.parametrize(
    "content", [b"[project\n", b"[project]\nname = '\xff'\n"], ids=["invalid", "not-utf8"]
)
def test_broken_pyproject_of_another_project_is_skipped(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "pyproject.toml"
    broken.write_bytes(content)
    (tmp_path / "src").mkdir()
    result = run("backends", "--backend", "polling", cwd=tmp_path / "src")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"crosswatch: warning: {broken} is not valid TOML".encode())
    assert b"skipped it while looking for a config file" in result.stderr
    assert_no_traceback(result.stderr)


def test_broken_pyproject_with_a_crosswatch_table_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "pyproject.toml"
    broken.write_bytes(b"[tool.crosswatch]\nbackend = '\xff'\n")
    (tmp_path / "src").mkdir()
    result = run("backends", "--backend", "polling", cwd=tmp_path / "src")
    assert result.returncode == 2
    assert result.stderr.startswith(f"crosswatch: error: {broken} is not valid TOML".encode())
    assert_no_traceback(result.stderr)


def test_explicit_config_file(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text("debounce = -1\n", encoding="utf-8")
    result = run("watch", str(tmp_path), "--config", str(config))
    assert result.returncode == 2
    assert b"crosswatch: error:" in result.stderr
    assert b"debounce" in result.stderr
    missing = run("watch", str(tmp_path), "--config", str(tmp_path / "missing.toml"))
    assert missing.returncode == 2
    assert b"cannot read config file" in missing.stderr


# --------------------------------------------------------------------------- backends


def test_backends_table(tmp_path: Path) -> None:
    result = run("backends", str(tmp_path))
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "* polling  available" in out
    assert "plugin polling" in out
    assert "capabilities: recursive" in out
    assert out.rstrip().endswith(
        "watch would use: polling (highest score (10) among the available backends)"
    )


def test_backends_defaults_to_the_current_directory(tmp_path: Path) -> None:
    result = run("backends", cwd=tmp_path)
    assert result.returncode == 0
    assert f"backends for {os.path.realpath(tmp_path)}:".encode() in result.stdout


def test_backends_json(tmp_path: Path) -> None:
    result = run("backends", str(tmp_path), "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["path"] == str(tmp_path)
    assert report["choice"] == "polling"
    (polling,) = (b for b in report["backends"] if b["name"] == "polling")
    assert polling["available"] is True
    assert polling["chosen"] is True
    assert polling["plugin"] == "polling"
    assert polling["score"] == 10
    assert "recursive" in polling["capabilities"]
    assert polling["options"] == {}  # polling reads no backend option


def test_backends_with_nothing_usable_exits_4(tmp_path: Path) -> None:
    result = run("backends", str(tmp_path), "--json", "--deny", "polling")
    assert result.returncode == 4
    report = json.loads(result.stdout)
    assert report["choice"] is None
    assert report["backends"][0]["denied"] is True


def test_backends_leaves_out_handle_counts_it_does_not_know() -> None:
    row = {
        "name": "kernel",
        "available": True,
        "denied": False,
        "lacks_access": False,
        "reason": "",
        "score": 100,
        "plugin": "kernel",
        "capabilities": [],
        "chosen": True,
    }

    def handles(limit: int | None, needed: int | None) -> list[str]:
        lines = human_row({**row, "limit": limit, "needed": needed})
        assert not any("None" in line for line in lines)
        return [line.strip() for line in lines if "handles" in line or "needed" in line]

    assert handles(8192, None) == ["handles free: 8192"]
    assert handles(None, 12) == ["needed here: 12"]
    assert handles(8192, 12) == ["handles free: 8192, needed here: 12"]
    assert handles(None, None) == []


def test_backends_lists_the_options_each_backend_reads() -> None:
    row = {
        "name": "kernel", "available": True, "denied": False, "lacks_access": False,
        "reason": "", "score": 100, "plugin": "kernel", "capabilities": [], "chosen": True,
        "limit": None, "needed": None,
        "options": {"size": "bytes per read", "delay": "seconds to gather"},
    }
    lines = [line.strip() for line in human_row(row) if "option" in line]
    assert lines == ["option kernel.delay: seconds to gather", "option kernel.size: bytes per read"]


def test_backends_nonexistent_path_exits_4(tmp_path: Path) -> None:
    result = run("backends", str(tmp_path / "missing"))
    assert result.returncode == 4
    assert b"crosswatch: error: cannot probe" in result.stderr


# --------------------------------------------------------------------------- global


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"crosswatch {crosswatch.__version__}"


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert b"usage: crosswatch" in result.stderr
    assert b"backends" in result.stderr
    assert result.stdout == b""


# --------------------------------------------------------------------------- rendering


def test_render_plain_and_json_of_a_moved_directory() -> None:
    event = Event(Change.MOVED, "/w/new", True, "/w/old", 42)
    assert render_plain(event) == b"moved\t/w/new/\t/w/old/"
    record = json.loads(render_json(event))
    assert record["src_path"] == "/w/old"
    assert record["is_dir"] is True
    assert record["pid"] == 42


@pytest.mark.skipif(os.name == "nt", reason="Windows names are UTF-16, never undecodable bytes")
def test_format_of_a_file_with_surrogate_escapes() -> None:
    render = compile_format("{kind} {path}{dir} [{src}] {pid}")
    event = Event(Change.MODIFIED, os.fsdecode(b"/w/caf\xe9"))
    assert render(event) == b"modified /w/caf\xe9 [] "


def test_a_replaced_file_is_said_so_in_json_and_format() -> None:
    saved = Event(Change.MODIFIED, "/w/conf", replaced=True)
    written = Event(Change.MODIFIED, "/w/conf")
    assert json.loads(render_json(saved))["replaced"] is True
    assert json.loads(render_json(written))["replaced"] is False
    render = compile_format("{kind} {path} {replaced}")
    assert render(saved) == b"modified /w/conf true"
    assert render(written) == b"modified /w/conf false"
    assert repr(saved) == "<Event modified '/w/conf' replaced>"

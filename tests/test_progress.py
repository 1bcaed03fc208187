"""Progress of the first reading: the meter, the ``progress=`` argument, and the
command line's line on a terminal."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_cli import FAST, WAIT, _env

from crosswatch import ConfigTypeError, Progress, Watcher
from crosswatch._progress import Meter
from crosswatch.testing import collect, linux_only


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_reports_at_most_once_an_interval_then_once_done() -> None:
    clock, got = Clock(), []
    meter = Meter(got.append, interval=0.1, clock=clock)
    meter.begin()
    meter.listed(5)
    clock.now += 0.05
    meter.listed(5)  # not yet: within the interval
    clock.now += 0.06
    meter.listed(3)
    clock.now += 0.01
    meter.listed(2)
    meter.finish()
    meter.listed(7)  # after the first reading: quiet
    meter.finish()
    assert got == [
        Progress(directories=3, entries=13, seconds=pytest.approx(0.11)),
        Progress(directories=4, entries=15, seconds=pytest.approx(0.12), done=True),
    ]


def tree(top: Path, dirs: int, files: int) -> None:
    for d in range(dirs):
        sub = top / f"d{d}"
        sub.mkdir()
        for f in range(files):
            (sub / f"f{f}").write_bytes(b"")


INOTIFY = pytest.param("inotify", marks=linux_only("inotify"))


@pytest.mark.parametrize("backend", ["polling", INOTIFY])
def test_progress_counts_every_directory_and_entry_of_the_first_reading(
    tmp_path: Path, backend: str
) -> None:
    tree(tmp_path, 60, 10)
    got: list[Progress] = []
    threads: set[int] = set()

    def report(progress: Progress) -> None:
        threads.add(threading.get_ident())
        got.append(progress)

    with Watcher(tmp_path, backend=backend, progress=report, poll_interval=0.05) as w:
        assert got, "no report"
        assert got[-1].done
        assert (got[-1].directories, got[-1].entries) == (61, 60 + 600)
        for before, after in itertools.pairwise(got):
            assert before.entries <= after.entries
            assert before.seconds <= after.seconds
        assert threads == {threading.get_ident()}  # the thread in start()
        reports = len(got)
        tree(tmp_path / "d0", 3, 3)  # read after the start: not the first reading
        assert collect(w, lambda ev: len(ev) >= 12, timeout=WAIT)
    assert len(got) == reports


def test_progress_must_be_a_function_of_one_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigTypeError, match="progress= must be a function taking one"):
        Watcher(tmp_path, progress=lambda: None)  # type: ignore[arg-type]


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_the_command_line_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    tree(tmp_path, 400, 150)  # 60,000 entries: long enough to read for a report
    watch = ("watch", str(tmp_path), *FAST, "--timeout", "0.2")
    shown = _stderr_of(*watch, tty=True)
    assert b"crosswatch: reading: " in shown
    assert b" entries in " in shown
    # wiped before the line that says watching has begun
    assert shown.index(b"\r\x1b[K") < shown.index(b"crosswatch: watching 1 path")
    assert b"reading" not in _stderr_of(*watch, tty=False)
    assert b"reading" not in _stderr_of(*watch, "-q", tty=True)


@pytest.mark.skipif(os.name != "posix", reason="a pseudo-terminal")
def test_snapshot_and_since_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    tree(root, 400, 150)
    snap = str(tmp_path / "tree.snap")
    for args in (("snapshot", str(root), "-o", snap), ("since", snap)):
        shown = _stderr_of(*args, tty=True)
        assert b"crosswatch: reading: " in shown, args
        assert shown.rstrip().endswith(b"\r\x1b[K"), args  # wiped at the end
        assert b"reading" not in _stderr_of(*args, tty=False), args
        assert b"reading" not in _stderr_of(*args, "-q", tty=True), args
    assert os.path.getsize(snap) > 0


def _stderr_of(*args: str, tty: bool) -> bytes:
    """What ``crosswatch ARGS`` writes to stderr: a pseudo-terminal's, or a pipe's."""
    import pty

    master, slave = pty.openpty() if tty else os.pipe()[::-1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crosswatch", *args],
        stdout=subprocess.DEVNULL, stderr=slave, env=_env(),
    )
    os.close(slave)
    out = b""
    try:
        while chunk := _read(master):
            out += chunk
    finally:
        os.close(master)
        proc.wait(timeout=WAIT)
    return out


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # a pseudo-terminal whose other end closed
        return b""

"""The testing kit's facts about the OS, and the ways it takes where an OS lacks
something, checked here where both ways work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import crosswatch
from crosswatch.testing import _deep, _platform, open_fds, snapshot
from crosswatch.testing._marks import (
    linux_only,
    needs_byte_names,
    needs_posix_paths,
    needs_posix_permissions,
    needs_posix_signals,
    needs_symlinks,
)


def test_descriptors_asked_one_by_one_are_those_the_os_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no ``/proc/self/fd`` lists them (macOS, Windows), each number is asked."""
    a, b = socket.socketpair()
    r, w = os.pipe()
    try:
        listed = open_fds()
        monkeypatch.setattr(os.path, "isdir", lambda path: False)
        asked = open_fds()
        assert {r, w} <= asked
        if not _platform.WINDOWS:  # there sockets are handles, not descriptors
            assert {a.fileno(), b.fileno()} <= asked
        if _platform.LINUX:  # the same, but for the one that listed /proc/self/fd
            assert asked <= listed
            assert len(listed - asked) <= 1
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()
    assert not {r, w} & open_fds()


def test_a_tree_made_and_removed_by_path_is_the_one_made_by_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deep-tree helpers without descriptors (Windows) make the same tree."""
    by_fd = str(tmp_path / "by-fd")
    _deep.make_chain(by_fd, "dir", 30)
    _deep.touch(by_fd + (os.sep + "dir") * 30, "f")
    monkeypatch.setattr(_deep, "BY_FD", False)
    by_path = str(tmp_path / "by-path")
    _deep.make_chain(by_path, "dir", 30)
    _deep.touch(by_path + (os.sep + "dir") * 30, "f")
    relative = [{os.path.relpath(p, top): d for p, d in snapshot(top).items()}
                for top in (by_fd, by_path)]
    assert relative[0] == relative[1]
    assert len(relative[0]) == 31
    if _platform.symlinks_work():
        os.symlink("f", os.path.join(by_path, "dir", "link"))
    _deep.remove_tree(by_path)
    assert not os.path.lexists(by_path)
    monkeypatch.undo()
    _deep.remove_tree(by_fd)
    assert os.listdir(tmp_path) == []


def test_case_folding_is_found_with_a_file_made_and_removed(tmp_path: Path) -> None:
    folds = _platform.case_folds(tmp_path)
    assert os.listdir(tmp_path) == []  # the probe is gone
    (tmp_path / "a").write_text("")
    assert folds is os.path.exists(tmp_path / "A")


def test_every_mark_says_why() -> None:
    marks = [needs_symlinks, needs_byte_names, needs_posix_paths, needs_posix_permissions,
             needs_posix_signals, linux_only("inotify")]
    for mark in marks:
        assert mark.name == "skipif"
        assert mark.kwargs["reason"]
    assert linux_only("inotify").kwargs["reason"] == "Linux only: inotify"
    assert linux_only("inotify").args == (not _platform.LINUX,)


_BARE_OS = """
import importlib, os, pathlib, socket, sys
for name in ("O_DIRECTORY", "O_PATH", "O_CLOEXEC", "O_NONBLOCK", "mkfifo", "geteuid",
             "getuid", "setresuid", "major", "minor", "pathconf"):
    if hasattr(os, name):
        delattr(os, name)
if hasattr(socket, "AF_UNIX"):
    del socket.AF_UNIX
    socket.__all__.remove("AF_UNIX")  # Windows' socket module names only what it has
os.supports_fd.discard(os.scandir)
os.supports_dir_fd.clear()
sys.modules["resource"] = sys.modules["fcntl"] = None
import crosswatch.testing
from crosswatch.testing import _conformance, _deep, _marks, _platform, _storm
sys.path.insert(0, sys.argv[1])
for path in sorted(pathlib.Path(sys.argv[1]).glob("test_*.py")):
    importlib.import_module(path.stem)
assert not _deep.BY_FD
assert _platform.open_fds()
print("imported")
"""


def test_the_testing_kit_and_the_tests_import_without_posix_names() -> None:
    """As on Windows: no ``O_NONBLOCK``, ``O_CLOEXEC``, ``mkfifo``, ``geteuid``,
    ``AF_UNIX``, ``resource``, ``fcntl`` or descriptor walks; every test module and
    the kit still import, so that what needs them is skipped, not an error."""
    tests = Path(__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-c", _BARE_OS, str(tests)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tests.parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(crosswatch.__file__).parent.parent),
                        os.environ.get("PYTHONPATH")) if p)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported\n"

"""The backend on the real ReadDirectoryChangesW (Windows only: the CI's Windows job)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from crosswatch_windows import WindowsBackend

from crosswatch.backend import Action, EntryChange, Gone, Observation, Options, Renamed

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="the real ReadDirectoryChangesW")


def observe(backend: WindowsBackend, done: Callable[[list[Observation]], bool],
            timeout: float = 10.0) -> list[Observation]:
    out: list[Observation] = []
    end = time.monotonic() + timeout
    while not done(out) and time.monotonic() < end:
        out += backend.read()
        time.sleep(0.02)
    return out


def test_a_rename_and_a_move_are_paired(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    b = WindowsBackend(Options())
    try:
        h = b.watch(str(tmp_path), recursive=True)
        os.rename(tmp_path / "a" / "f", tmp_path / "a" / "g")
        seen = observe(b, lambda obs: any(isinstance(o, Renamed) for o in obs))
        assert any(o == Renamed(h, "a\\f", h, "a\\g", o.is_dir) for o in seen
                   if isinstance(o, Renamed))
        os.rename(tmp_path / "a" / "g", tmp_path / "b" / "g")
        seen = observe(b, lambda obs: any(getattr(o, "name", "").endswith("b\\g") or
                                          getattr(o, "new_name", "") == "b\\g" for o in obs))
        assert seen
    finally:
        b.close()


def test_a_deleted_root_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_text("x")
    b = WindowsBackend(Options())
    try:
        h = b.watch(str(root), recursive=True)
        shutil.rmtree(root)
        seen = observe(b, lambda obs: Gone(h) in obs)
        assert Gone(h) in seen
        assert EntryChange(h, "f", Action.DELETED, False) in seen or any(
            getattr(o, "name", "") == "f" for o in seen)
        root.mkdir()  # the handle is closed: the name is free again
    finally:
        b.close()


def test_close_ends_the_thread(tmp_path: Path) -> None:
    threads = set(threading.enumerate())
    b = WindowsBackend(Options())
    b.watch(str(tmp_path), recursive=True)
    b.watch_self(str(tmp_path))
    b.close()
    b.close()
    assert set(threading.enumerate()) == threads

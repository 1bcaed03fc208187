"""The driving logic against the Linux emulation of kernel32, and the emulation itself.

Each test has an emulation of its own, so that it can count every handle left
open (none, once the backend is closed) and inject failures without touching
other tests.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crosswatch_windows import WindowsBackend, _abi, _emubirths
from crosswatch_windows import _kernel32 as k
from crosswatch_windows.testing import ENUM_DIR, OVERFLOW, EmulatedWindows, WindowsEmulation

from crosswatch import Change, ConfigError, CrosswatchWarning, Event, Watcher
from crosswatch.backend import (
    Action,
    EntryChange,
    Gone,
    Observation,
    Options,
    Renamed,
    SubtreeLost,
    WatchError,
    WatchGoneError,
)
from crosswatch.testing import Mirror, collect, converge

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the emulation stands on inotify"
)


def door(emu: WindowsEmulation, **extra: Any) -> type[WindowsBackend]:
    """The backend with ``emu`` as its door (and ``extra`` as its options' extra)."""

    class Emulated(WindowsBackend):
        system = emu

        def __init__(self, options: Options | None = None) -> None:
            options = options or Options()
            super().__init__(dataclasses.replace(options, extra={**options.extra, **extra}))

    return Emulated


@pytest.fixture
def emu() -> Iterator[WindowsEmulation]:
    e = WindowsEmulation()
    yield e
    assert e.open_handles() == 0, "a handle was left open"


@pytest.fixture
def root(tmp_path: Path) -> str:
    path = tmp_path / "root"
    for d in ("a", "b"):
        (path / d).mkdir(parents=True)
    (path / "a" / "f").write_text("f")
    return str(path)


def until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def observe(backend: WindowsBackend, done: Callable[[list[Observation]], bool],
            timeout: float = 5.0) -> list[Observation]:
    """The backend's observations until ``done`` holds (or ``timeout``)."""
    out: list[Observation] = []
    end = time.monotonic() + timeout
    while not done(out) and time.monotonic() < end:
        out += backend.read()
        time.sleep(0.01)
    return out


def kinds(events: list[Event], root: str) -> set[tuple[Change, str]]:
    return {(e.kind, os.path.relpath(e.path, root)) for e in events}


# ------------------------------------------------------------------ the emulation's bytes


class Raw:
    """kernel32 called by hand, as the backend calls it: one port, one directory."""

    def __init__(self, emu: WindowsEmulation, path: str, *, extended: bool) -> None:
        self.emu, self.extended = emu, extended
        self.port = emu.create_io_completion_port(k.INVALID_HANDLE_VALUE, 0, 0, 1)
        self.dir = emu.create_file(path, k.FILE_LIST_DIRECTORY, 7, k.OPEN_EXISTING,
                                   k.FILE_FLAG_BACKUP_SEMANTICS | k.FILE_FLAG_OVERLAPPED)
        emu.create_io_completion_port(self.dir, self.port, 7, 0)
        self.buf = ctypes.create_string_buffer(4096)
        self.ov = k.Overlapped()

    def issue(self) -> None:
        args = (self.dir, self.buf, 4096, True, _abi.NOTIFY_FILTER, self.ov)
        if self.extended:
            self.emu.read_directory_changes_ex(
                *args, _abi.READ_DIRECTORY_NOTIFY_EXTENDED_INFORMATION)
        else:
            self.emu.read_directory_changes(*args)

    def wait(self, timeout_ms: int = 5000) -> k.Completion | None:
        return self.emu.get_queued_completion_status(self.port, timeout_ms)

    def records(self, change: Callable[[], object]) -> tuple[bytes, list[_abi.Record]]:
        """Queue a read, make ``change``, and take the records of the completion."""
        self.issue()
        change()
        time.sleep(0.05)  # the whole change in one read
        packet = self.wait()
        assert packet is not None
        assert packet[0] == 0
        assert packet[2:] == (7, ctypes.addressof(self.ov))
        data = self.buf.raw[: packet.transferred]
        return data, _abi.records(data, extended=self.extended)

    def close(self) -> None:
        self.emu.close_handle(self.dir)
        self.emu.close_handle(self.port)


def chain_offsets(data: bytes) -> list[int]:
    """Where each record starts, following NextEntryOffset."""
    starts, at = [0], 0
    while step := struct.unpack_from("<I", data, at)[0]:
        at += step
        starts.append(at)
    return starts


@pytest.mark.parametrize("extended", [False, True], ids=["plain", "extended"])
def test_records_are_written_in_the_documented_layout_with_windows_semantics(
    emu: WindowsEmulation, root: str, extended: bool
) -> None:
    raw = Raw(emu, root, extended=extended)
    try:
        assert raw.wait(0) is None  # nothing yet: the wait times out
        data, recs = raw.records(lambda: Path(root, "a", "new").write_text("x"))
        assert [(r.action, r.name) for r in recs][:2] == [(1, "a\\new"), (3, "a")]
        header = _abi.EXTENDED_HEADER.size if extended else _abi.NOTIFY_HEADER.size
        starts = chain_offsets(data)
        assert all(s % (8 if extended else 4) == 0 for s in starts)
        assert len(data) == starts[-1] + header + 2 * len(recs[-1].name)  # no padding at the end

        data, recs = raw.records(lambda: os.rename(os.path.join(root, "a", "new"),
                                                   os.path.join(root, "a", "renamed")))
        assert [(r.action, r.name) for r in recs] == [(4, "a\\new"), (5, "a\\renamed"), (3, "a")]

        ino = os.lstat(os.path.join(root, "a", "renamed")).st_ino
        data, recs = raw.records(lambda: os.rename(os.path.join(root, "a", "renamed"),
                                                   os.path.join(root, "b", "moved")))
        # Moved to another directory: removed, the new parent modified, added.
        assert [(r.action, r.name) for r in recs] == [
            (2, "a\\renamed"), (3, "b"), (1, "b\\moved"), (3, "a")]
        if extended:
            # The file id is made as NTFS makes it: the inode number (what os.stat
            # gives as st_ino) in the low 48 bits, a sequence number above.
            assert recs[0].extended is not None
            assert recs[2].extended is not None
            assert recs[0].extended.file_id == recs[2].extended.file_id
            assert recs[0].extended.file_id & (2**48 - 1) == ino
            assert recs[1].extended is not None
            assert recs[1].extended.is_dir

        # A cancelled read completes with ERROR_OPERATION_ABORTED; a posted packet wakes.
        raw.issue()
        emu.cancel_io_ex(raw.dir, raw.ov)
        assert raw.wait() == (k.ERROR_OPERATION_ABORTED, 0, 7, ctypes.addressof(raw.ov))
        emu.post_queued_completion_status(raw.port, 3, 99)
        assert raw.wait() == (0, 3, 99, 0)

        # The root deleted: its entries' removals, no record of the root itself, then
        # every read fails with ERROR_ACCESS_DENIED (delete-pending while it is open).
        raw.issue()
        shutil.rmtree(root)
        names: list[str] = []
        error = 0
        while not error:
            packet = raw.wait()
            assert packet is not None
            if packet.error:
                error = packet.error
                break
            names += [r.name for r in _abi.records(raw.buf.raw[: packet.transferred],
                                                   extended=extended)]
            try:
                raw.issue()
            except OSError as exc:
                error = k.winerror(exc) or -1
        assert error == k.ERROR_ACCESS_DENIED
        assert "" not in names
        assert set(names) >= {"a\\f", "a\\renamed", "b\\moved", "a", "b"} - {"a\\renamed"}
    finally:
        raw.close()


def test_changes_that_do_not_fit_between_reads_are_lost_as_on_windows(
    emu: WindowsEmulation, root: str
) -> None:
    raw = Raw(emu, root, extended=False)
    small = ctypes.create_string_buffer(256)
    try:
        emu.read_directory_changes(raw.dir, small, 256, True, _abi.NOTIFY_FILTER, raw.ov)
        with emu.held():
            for n in range(20):
                Path(root, f"file-{n}").write_text("x")
        packet = raw.wait()
        assert packet == (0, 0, 7, ctypes.addressof(raw.ov))  # zero bytes: thrown away
    finally:
        raw.close()


needs_births = pytest.mark.skipif(
    not _emubirths.available(),
    reason="the emulation sees a new directory's first instant through fanotify, which "
           "needs CAP_SYS_ADMIN")


def _brief_lives(root: str) -> None:
    """A new directory, and in it (and in one below) entries made and removed at once,
    all before the emulation reads the directory's creation and watches it."""
    new = Path(root, "new")
    (new / "sub").mkdir(parents=True)
    for path in (new / "brief", new / "sub" / "x"):
        path.write_text("x")
        path.unlink()
    (new / "gone-dir").mkdir()
    (new / "gone-dir").rmdir()
    (new / "kept").write_text("x")


@needs_births
def test_what_lived_in_a_new_directory_before_its_watch_is_reported_as_on_windows(
    emu: WindowsEmulation, root: str
) -> None:
    # Windows' recursive watch covers a new directory from its first instant; the
    # emulation's inotify watch comes later, and what a listing could have seen there
    # meanwhile must still be reported gone.
    raw = Raw(emu, root, extended=True)
    try:
        def change() -> None:
            with emu.held():
                _brief_lives(root)

        _, recs = raw.records(change)
    finally:
        raw.close()
    told = [(r.action, r.name) for r in recs]
    added, removed = _abi.FILE_ACTION_ADDED, _abi.FILE_ACTION_REMOVED
    assert {(added, "new"), (added, "new\\sub"), (added, "new\\kept")} <= set(told)
    assert {(removed, "new\\brief"), (removed, "new\\sub\\x"),
            (removed, "new\\gone-dir")} <= set(told)
    assert (added, "new\\brief") not in told  # gone before the watch: never seen there
    dirs = {r.name for r in recs if r.extended is not None and r.extended.is_dir}
    assert "new\\gone-dir" in dirs
    assert "new\\brief" not in dirs


@needs_births
def test_when_those_names_were_lost_the_read_is_a_zero_byte_result(
    emu: WindowsEmulation, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_emubirths, "BOUND", 2)
    raw = Raw(emu, root, extended=True)
    try:
        raw.issue()
        with emu.held():
            _brief_lives(root)
        packet = raw.wait()
    finally:
        raw.close()
    assert packet == (0, 0, 7, ctypes.addressof(raw.ov))  # lost: the engine rescans


# ------------------------------------------------------------------ the backend


def test_the_probe_says_available_with_the_emulation_and_handles_are_counters(
    emu: WindowsEmulation, root: str
) -> None:
    cls = door(emu)
    assert cls.name == "windows"
    assert cls.probe(root).available
    assert EmulatedWindows.probe(root).available
    b = cls(Options())
    try:
        first = b.watch(root, recursive=True)
        assert b.watch(root, recursive=True) == first
        second = b.watch(os.path.join(root, "a"), recursive=True)
        assert (first, second) == (1, 2)  # not the OS's handle values
        assert b.deadline() is None  # nothing periodic: an idle watcher sleeps
    finally:
        b.close()


def test_renames_are_paired_end_to_end(emu: WindowsEmulation, root: str) -> None:
    with Watcher(root, backend=door(emu)) as w:
        mirror = Mirror.of(root)
        os.rename(os.path.join(root, "a", "f"), os.path.join(root, "a", "g"))
        events = converge(w, mirror)
        assert [(e.kind, e.src_path, e.path) for e in events] == [
            (Change.MOVED, os.path.join(root, "a", "f"), os.path.join(root, "a", "g"))]
        os.rename(os.path.join(root, "a"), os.path.join(root, "b", "a2"))
        events = converge(w, mirror)
        assert [(e.kind, e.path) for e in events] == [
            (Change.MOVED, os.path.join(root, "b", "a2"))]


def test_without_extended_records_a_move_between_directories_is_verified(root: str) -> None:
    emu = WindowsEmulation(extended=False)  # an older Windows: no file ids
    b = door(emu)(Options())
    try:
        h = b.watch(root, recursive=True)
        os.rename(os.path.join(root, "a", "f"), os.path.join(root, "b", "f"))
        seen = observe(b, lambda obs: len(obs) >= 2)
        assert seen[:2] == [EntryChange(h, "a/f", Action.DELETED),
                            EntryChange(h, "b", Action.MODIFIED)]
    finally:
        b.close()
    assert emu.open_handles() == 0


def test_an_overflow_between_reads_is_a_rescan_that_finds_what_was_lost(
    emu: WindowsEmulation, root: str
) -> None:
    with Watcher(root, backend=door(emu, buffer_size=604)) as w:
        mirror = Mirror.of(root)
        with emu.held():  # a burst before the backend reads again
            for n in range(20):
                Path(root, "b", f"new-{n}").write_text("x")
        events = converge(w, mirror)
    assert kinds(events, root) >= {(Change.CREATED, f"b/new-{n}") for n in range(20)}
    assert Change.RESCAN in [e.kind for e in events]


@pytest.mark.parametrize("fault", [OVERFLOW, ENUM_DIR])
def test_a_zero_byte_result_or_enum_dir_is_a_rescan(
    emu: WindowsEmulation, root: str, fault: str
) -> None:
    with Watcher(root, backend=door(emu)) as w:
        mirror = Mirror.of(root)
        emu.inject(root, fault)
        Path(root, "b", "lost").write_text("x")
        events = converge(w, mirror)
        assert kinds(events, root) >= {(Change.CREATED, "b/lost"), (Change.RESCAN, ".")}
        Path(root, "b", "later").write_text("x")  # and it goes on watching
        events = converge(w, mirror)
        assert (Change.CREATED, "b/later") in kinds(events, root)


def test_a_garbled_buffer_is_a_warning_and_a_rescan_never_a_crash(
    emu: WindowsEmulation, root: str
) -> None:
    b = door(emu)(Options())
    try:
        h = b.watch(root, recursive=True)
        emu.inject(root, b"\x10\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00garbage!")
        Path(root, "b", "x").write_text("x")
        with pytest.warns(CrosswatchWarning, match=r"garbled at byte 0.*rescanning"):
            seen = observe(b, bool)
        assert seen[0] == SubtreeLost(h)  # nothing of that buffer is trusted
        Path(root, "b", "y").write_text("y")
        seen = observe(b, lambda obs: any(getattr(o, "name", "") == "b/y" for o in obs))
        assert EntryChange(h, "b/y", Action.CREATED, False) in seen
    finally:
        b.close()


def test_a_deleted_root_is_gone_and_its_handle_closed(emu: WindowsEmulation, root: str) -> None:
    b = door(emu)(Options())
    try:
        h = b.watch(root, recursive=True)
        assert emu.open_handles() == 2  # the port and the directory
        shutil.rmtree(root)
        seen = observe(b, lambda obs: Gone(h) in obs)
        assert seen[-1] == Gone(h)
        assert emu.open_handles() == 1  # closed at once: Windows keeps it delete-pending
        b.unwatch(h)  # dead already: ignored
    finally:
        b.close()


def test_unwatch_and_close_release_every_handle_and_the_thread(
    emu: WindowsEmulation, root: str
) -> None:
    threads = set(threading.enumerate())
    b = door(emu)(Options())
    handles = [b.watch(os.path.join(root, d), recursive=True) for d in ("a", "b")]
    handles.append(b.watch_self(os.path.join(root, "a")))
    assert emu.open_handles() == 4
    b.unwatch(handles[0])
    assert until(lambda: emu.open_handles() == 3)  # once its cancelled read is back
    Path(root, "a", "unseen").write_text("x")
    Path(root, "b", "seen").write_text("x")
    seen = observe(b, lambda obs: any(getattr(o, "name", "") == "seen" for o in obs))
    assert all(getattr(o, "handle", None) != handles[0] for o in seen)
    b.close()
    b.close()  # twice is fine
    assert emu.open_handles() == 0
    assert set(threading.enumerate()) == threads


class Gate(WindowsEmulation):
    """Holds each packet between its dequeuing and its return, until let go."""

    def __init__(self) -> None:
        super().__init__()
        self.dequeued = threading.Event()
        self.go = threading.Event()

    def get_queued_completion_status(self, port: int, timeout_ms: int) -> k.Completion | None:
        packet = super().get_queued_completion_status(port, timeout_ms)
        if packet is not None and packet.key != 0 and not self.go.is_set():
            self.dequeued.set()
            self.go.wait(10)
        return packet


def test_a_read_that_completes_as_it_is_cancelled_is_not_queued_again(root: str) -> None:
    emu = Gate()
    b = door(emu)(Options())
    try:
        h = b.watch(root, recursive=True)
        Path(root, "b", "x").write_text("x")
        assert emu.dequeued.wait(5)  # complete, not yet seen by the backend's thread
        b.unwatch(h)  # CancelIoEx finds nothing pending (ERROR_NOT_FOUND)
        emu.go.set()
        assert until(lambda: emu.open_handles() == 1)
        assert b.read() == []
    finally:
        emu.go.set()
        b.close()
    assert emu.open_handles() == 0


def test_a_failed_wait_is_a_warning_and_a_rescan_and_watching_goes_on(
    emu: WindowsEmulation, root: str
) -> None:
    b = door(emu)(Options())
    try:
        h = b.watch(root, recursive=True)
        emu.fail_wait(1)
        with pytest.warns(CrosswatchWarning, match="waiting for ReadDirectoryChangesW"):
            assert observe(b, bool) == [SubtreeLost(None)]
        Path(root, "b", "after").write_text("x")
        seen = observe(b, lambda obs: EntryChange(h, "b/after", Action.CREATED, False) in obs)
        assert EntryChange(h, "b/after", Action.CREATED, False) in seen
    finally:
        b.close()


@pytest.mark.filterwarnings("ignore:waiting for ReadDirectoryChangesW")
def test_waits_that_keep_failing_end_the_stream_with_an_error(
    emu: WindowsEmulation, root: str
) -> None:
    threads = set(threading.enumerate())
    w = Watcher(root, backend=door(emu)).start()
    try:
        emu.fail_wait(3)
        with pytest.raises(WatchError, match=r"completion port ended.*backend='polling'"):
            collect(w, lambda _: False, timeout=5)
    finally:
        w.close()
    assert emu.open_handles() == 0  # the cancelled reads taken back without the thread
    assert set(threading.enumerate()) == threads


def test_a_file_system_without_change_notification_is_a_clear_error(
    emu: WindowsEmulation, root: str
) -> None:
    emu.unsupported(root)
    b = door(emu)(Options())
    try:
        with pytest.raises(WatchError, match=r"does not report changes.*backend='polling'"):
            b.watch(root, recursive=True)
        assert emu.open_handles() == 1  # the directory's handle closed again
        with pytest.raises(WatchGoneError):
            b.watch(os.path.join(root, "missing"), recursive=True)
    finally:
        b.close()
    with pytest.raises(WatchError, match="does not report changes"):
        Watcher(root, backend=door(emu)).start()


class Broken(WindowsEmulation):
    """A door whose completions make the backend's thread fail (a bug, say)."""

    def get_queued_completion_status(self, port: int, timeout_ms: int) -> k.Completion | None:
        packet = super().get_queued_completion_status(port, timeout_ms)
        if packet is not None and packet.key != 0:
            raise RuntimeError("unexpected")
        return packet


def test_an_error_in_the_thread_is_reported_never_a_silent_dead_thread(root: str) -> None:
    emu = Broken()
    b = door(emu)(Options())
    try:
        b.watch(root, recursive=True)
        Path(root, "b", "x").write_text("x")
        with pytest.raises(WatchError, match=r"completion port ended.*unexpected"):
            observe(b, lambda _: False, timeout=5)
    finally:
        b.close()
    assert emu.open_handles() == 0


class NoExtendedHere(WindowsEmulation):
    """A volume that refuses extended reads, and a share that refuses a buffer > 64 KiB."""

    def read_directory_changes_ex(self, *args: Any) -> None:
        raise k.windows_error(k.ERROR_INVALID_PARAMETER)

    def read_directory_changes(self, handle: int, buffer: Any, length: int, *args: Any) -> None:
        if length > 65536:
            raise k.windows_error(k.ERROR_INVALID_PARAMETER)
        super().read_directory_changes(handle, buffer, length, *args)


def test_refused_extended_reads_and_large_buffers_fall_back(root: str) -> None:
    emu = NoExtendedHere()
    b = door(emu, buffer_size=256 * 1024)(Options())
    try:
        h = b.watch(root, recursive=True)
        os.rename(os.path.join(root, "a", "f"), os.path.join(root, "a", "g"))
        seen = observe(b, bool)
        assert seen[0] == Renamed(h, "a/f", h, "a/g", None)  # plain records: no is_dir
    finally:
        b.close()
    assert emu.open_handles() == 0


def test_an_idle_backend_does_not_wake(emu: WindowsEmulation, root: str) -> None:
    calls: list[int] = []
    real = emu.get_queued_completion_status

    def counted(port: int, timeout_ms: int) -> k.Completion | None:
        calls.append(timeout_ms)
        return real(port, timeout_ms)

    emu.get_queued_completion_status = counted  # type: ignore[method-assign]
    b = door(emu)(Options())
    try:
        b.watch(root, recursive=True)
        time.sleep(0.5)
        assert calls == [k.INFINITE]  # one wait, no timeout
    finally:
        b.close()


def test_the_buffer_size_is_a_backend_option(tmp_path: Path) -> None:
    with Watcher(tmp_path, backend=EmulatedWindows,
                 backend_options={"windows": {"buffer_size": 131072}}) as w:
        backend = w.backend("windows")
        assert isinstance(backend, EmulatedWindows)
        assert backend.buffer_size == 131072
    refused = Watcher(tmp_path, backend=EmulatedWindows,
                      backend_options={"windows": {"buffer_size": 1001}})
    with pytest.raises(ConfigError, match="buffer_size must be a multiple of 4"):
        refused.start()
    refused.close()
    typo = Watcher(tmp_path, backend=EmulatedWindows,
                   backend_options={"windows": {"buffersize": 131072}})
    with pytest.raises(ConfigError, match="did you mean 'buffer_size'"):
        typo.start()
    typo.close()

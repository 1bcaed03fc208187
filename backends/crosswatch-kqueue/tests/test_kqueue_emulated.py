"""The kqueue backend's driving logic, against the Linux emulation of kqueue.

Each test builds a backend class of its own (a fresh emulation, so injected
failures stay in it); the bad inputs of the kqueue backend are here too: too
many files for the descriptors, a descriptor's ``EV_ERROR``, a directory
replaced by a file between its listing and its opening. The tests that take the
``backend`` fixture run against the real kqueue too, where there is one.
"""

from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crosswatch_kqueue import KqueueBackend, _abi
from crosswatch_kqueue.testing import KqueueEmulation

from crosswatch import Watcher
from crosswatch.backend import (
    Action,
    DirDirty,
    EntryChange,
    Gone,
    Observation,
    SubtreeLost,
    WatchGoneError,
    WatchLimitError,
)
from crosswatch.testing import Mirror, converge, open_fds

ON_LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(
    not ON_LINUX and not hasattr(select, "kqueue"), reason="needs inotify or kqueue"
)
EMULATION_ONLY = pytest.mark.skipif(not ON_LINUX, reason="the emulation needs inotify")


def emulated(system: KqueueEmulation | None = None) -> type[KqueueBackend]:
    return type("EmulatedKqueue", (KqueueBackend,), {"system": system or KqueueEmulation()})


@pytest.fixture(params=["emulated", "real"])
def backend(request: pytest.FixtureRequest) -> Iterator[KqueueBackend]:
    if request.param == "emulated" and not ON_LINUX:
        pytest.skip("the emulation needs inotify")
    if request.param == "real" and not hasattr(select, "kqueue"):
        pytest.skip("needs macOS or BSD (kqueue)")
    before = open_fds()
    cls = emulated() if request.param == "emulated" else KqueueBackend
    b = cls()
    yield b
    b.close()
    assert b._fds.held == 0
    assert open_fds() == before
    if isinstance(cls.system, KqueueEmulation):
        assert cls.system.opened == 0


def opened(b: KqueueBackend) -> int:
    """Descriptors the backend holds (with the emulation, as the emulation counts them)."""
    if isinstance(b.system, KqueueEmulation):
        assert b.system.opened == b._fds.held
    return b._fds.held


def read_until(b: KqueueBackend, want: int = 1, timeout: float = 5.0) -> list[Observation]:
    """Observations once ``want`` have come (or ``timeout``), and whatever follows at once."""
    out: list[Observation] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out.extend(b.read())
        time.sleep(0.01)
    return out + list(b.read())


def make(root: Path) -> None:
    (root / "sub").mkdir()
    for name in ("a", "b", "c"):
        (root / name).write_bytes(b"x")
    (root / "sub" / "inner").write_bytes(b"x")
    (root / "link").symlink_to("a")
    os.mkfifo(root / "fifo")


# ------------------------------------------------------------------ the probe


@EMULATION_ONLY
def test_probe_with_the_emulation_says_available(tmp_path: Path) -> None:
    make(tmp_path)
    got = emulated().probe(str(tmp_path))
    assert got.available
    assert got.score == 90
    assert got.needed == 6  # two directories and four files
    assert KqueueBackend.probe(str(tmp_path)).reason == "needs macOS or BSD (kqueue)"


# ------------------------------------------------------------------ descriptors and handles


def test_one_descriptor_per_directory_and_file(backend: KqueueBackend, tmp_path: Path) -> None:
    make(tmp_path)
    h = backend.watch(str(tmp_path), recursive=False)
    assert opened(backend) == 4  # the directory and a, b, c: no link, FIFO or subdirectory
    sub = backend.watch(str(tmp_path / "sub"), recursive=False)
    assert opened(backend) == 6
    assert backend.watch(str(tmp_path), recursive=False) == h  # watched already
    assert opened(backend) == 6
    fate = backend.watch_self(str(tmp_path))
    assert len({h, sub, fate}) == 3
    assert opened(backend) == 7
    backend.unwatch(sub)
    assert opened(backend) == 5
    backend.unwatch(fate)
    backend.unwatch(fate)  # dead already: ignored
    assert opened(backend) == 4
    backend.unwatch(h)
    assert opened(backend) == 0
    assert backend.fileno() is not None
    assert backend.deadline() is None  # no periodic wake-up


def test_handles_are_counters_not_descriptors(backend: KqueueBackend, tmp_path: Path) -> None:
    handles = []
    for n in range(3):
        d = tmp_path / f"d{n}"
        d.mkdir()
        h = backend.watch(str(d), recursive=False)
        handles.append(h)
        backend.unwatch(h)  # the descriptor's number is free again: reused next time
    assert len(set(handles)) == 3


# ------------------------------------------------------------------ what is read


def test_entries_changed_make_the_directory_dirty_and_are_opened(
    backend: KqueueBackend, tmp_path: Path
) -> None:
    (tmp_path / "old").write_bytes(b"")
    h = backend.watch(str(tmp_path), recursive=False)
    (tmp_path / "new").write_bytes(b"")
    assert DirDirty(h) in read_until(backend)
    assert opened(backend) == 3  # the new file has its descriptor
    with (tmp_path / "new").open("ab") as f:
        f.write(b"more")
    assert read_until(backend) == [EntryChange(h, "new", Action.MODIFIED, False)]
    os.chmod(tmp_path / "new", 0o600)
    assert read_until(backend) == [EntryChange(h, "new", Action.ATTRIB, False)]
    os.unlink(tmp_path / "old")
    got = read_until(backend, 2)
    assert set(got) == {DirDirty(h)}
    assert opened(backend) == 2  # its descriptor closed


def test_a_renamed_file_is_watched_under_its_new_name(
    backend: KqueueBackend, tmp_path: Path
) -> None:
    (tmp_path / "a").write_bytes(b"")
    h = backend.watch(str(tmp_path), recursive=False)
    os.rename(tmp_path / "a", tmp_path / "b")
    assert set(read_until(backend, 2)) == {DirDirty(h)}
    assert opened(backend) == 2
    with (tmp_path / "b").open("ab") as f:
        f.write(b"x")
    assert read_until(backend) == [EntryChange(h, "b", Action.MODIFIED, False)]


def test_a_renamed_directory_reports_under_its_new_place(
    backend: KqueueBackend, tmp_path: Path
) -> None:
    (tmp_path / "x" / "d").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    root = backend.watch(str(tmp_path), recursive=False)
    x = backend.watch(str(tmp_path / "x"), recursive=False)
    y = backend.watch(str(tmp_path / "y"), recursive=False)
    d = backend.watch(str(tmp_path / "x" / "d"), recursive=False)
    os.chmod(tmp_path / "x" / "d", 0o700)
    assert read_until(backend) == [EntryChange(x, "d", Action.ATTRIB, True)]
    os.rename(tmp_path / "x" / "d", tmp_path / "y" / "e")
    got = read_until(backend, 3)
    assert {DirDirty(x), DirDirty(y)} <= set(got)
    assert all(isinstance(o, DirDirty) for o in got)  # its ".." may be rewritten too
    os.chmod(tmp_path / "y" / "e", 0o750)
    assert read_until(backend) == [EntryChange(y, "e", Action.ATTRIB, True)]
    os.rmdir(tmp_path / "y" / "e")
    got = read_until(backend, 2)
    assert Gone(d) in got
    assert DirDirty(y) in got
    assert root != d


def test_a_root_removed_is_gone(backend: KqueueBackend, tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    (top / "f").write_bytes(b"")
    h = backend.watch(str(top), recursive=False)
    os.unlink(top / "f")
    os.rmdir(top)
    assert Gone(h) in read_until(backend, 2)
    assert opened(backend) == 0


def test_watch_self_reports_only_its_own_fate(backend: KqueueBackend, tmp_path: Path) -> None:
    (tmp_path / "up" / "root").mkdir(parents=True)
    os.symlink("up", tmp_path / "link")
    h = backend.watch_self(str(tmp_path / "up"))
    link = backend.watch_self(str(tmp_path / "link"))
    assert h is not None
    if link is None:  # neither O_SYMLINK nor O_PATH here: links are not watched
        assert getattr(backend.system, "link_flags", lambda: 0)() is None
    (tmp_path / "up" / "sibling").write_bytes(b"")
    os.chmod(tmp_path / "up", 0o700)
    assert read_until(backend, timeout=0.3) == []
    os.rename(tmp_path / "up", tmp_path / "down")
    assert read_until(backend) == [EntryChange(h, "", Action.MOVED_FROM)]
    os.unlink(tmp_path / "link")
    if link is not None:
        assert read_until(backend, 2) == [EntryChange(link, "", Action.DELETED), Gone(link)]
    os.unlink(tmp_path / "down" / "sibling")
    os.rmdir(tmp_path / "down" / "root")
    os.rmdir(tmp_path / "down")
    assert read_until(backend, 2) == [EntryChange(h, "", Action.DELETED), Gone(h)]
    assert opened(backend) == 0


@EMULATION_ONLY
def test_where_links_cannot_be_opened_they_are_not_watched(tmp_path: Path) -> None:
    class NoLinks(KqueueEmulation):
        def link_flags(self) -> int | None:
            return None  # as on an OS with neither O_SYMLINK nor O_PATH

    os.symlink(".", tmp_path / "link")
    b = emulated(NoLinks())()
    try:
        assert b.watch_self(str(tmp_path / "link")) is None
        h = b.watch_self(str(tmp_path))
        assert h is not None
    finally:
        b.close()


# ------------------------------------------------------------------ bad input: errors


@EMULATION_ONLY
def test_a_descriptors_ev_error(backend: KqueueBackend, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "d").mkdir()
    h = backend.watch(str(tmp_path), recursive=False)
    d = backend.watch(str(tmp_path / "d"), recursive=False)
    queue = backend._kq
    file_fd = next(k.fd for k in backend._fds.knotes.values()
                   if k.vnode is not None and k.vnode.name == "f")
    queue.post(file_fd, flags=backend.abi.ev_error, data=errno.EIO)
    # the file's events were lost: its directory is rescanned, the file opened again
    assert read_until(backend) == [SubtreeLost(h, "")]
    assert opened(backend) == 3
    d_fd = next(k.fd for k in backend._fds.knotes.values()
                if k.vnode is not None and k.vnode.watch == d)
    queue.post(d_fd, flags=backend.abi.ev_error, data=errno.EIO)
    assert read_until(backend) == [Gone(d)]  # the engine places it again
    assert opened(backend) == 2


@EMULATION_ONLY
def test_a_refused_registration_refuses_the_directory(tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / f"f{n}").write_bytes(b"")
    system = KqueueEmulation()
    b = emulated(system)()
    try:
        system.fail_add(errno.ENOMEM, at=4)
        with pytest.raises(WatchLimitError, match="no memory for more kqueue watches"):
            b.watch(str(tmp_path), recursive=False)
        assert system.opened == 0  # what it had opened, closed again
        h = b.watch(str(tmp_path), recursive=False)
        assert system.opened == 6
        # A late file refused: the directory's watch ends (see the limit tests below).
        system.fail_add(errno.ENOMEM)
        (tmp_path / "late").write_bytes(b"")
        assert read_until(b, 2) == [DirDirty(h), Gone(h)]
        assert system.opened == 0
    finally:
        b.close()


@EMULATION_ONLY
def test_a_directory_replaced_by_a_file_before_it_is_opened(tmp_path: Path) -> None:
    target = tmp_path / "d"

    class Swapping(KqueueEmulation):
        """Replaces the directory by a file just before it is opened, once."""

        swap = True

        def open(self, path: str, dir_fd: int | None = None, *, link: bool = False) -> int:
            if self.swap and path == str(target):
                self.swap = False
                os.rmdir(target)
                target.write_bytes(b"now a file")
            return super().open(path, dir_fd, link=link)

    target.mkdir()
    system = Swapping()
    b = emulated(system)()
    try:
        with pytest.raises(WatchGoneError):
            b.watch(str(target), recursive=False)
        assert system.opened == 0
    finally:
        b.close()
    # Through the engine: it listed a directory and finds a file there; nothing is lost.
    os.unlink(target)
    system = Swapping()
    system.swap = False
    with Watcher(str(tmp_path), backend=emulated(system), poll_interval=0.05) as w:
        mirror = Mirror.of(str(tmp_path))
        system.swap = True
        target.mkdir()
        converge(w, mirror)
    assert system.opened == 0


# ------------------------------------------------------------------ bad input: too many files


@EMULATION_ONLY
def test_a_directory_past_the_limit_is_polled_and_told(tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    for n in range(4):
        (tmp_path / "big" / f"f{n}").write_bytes(b"")
    system = KqueueEmulation()
    warned: list[str] = []
    cls = emulated(system)
    w = Watcher(str(tmp_path), backend=cls, poll_interval=0.05, on_warning=warned.append)

    real_watch = cls.watch

    def watch(self: KqueueBackend, path: str, *, recursive: bool) -> object:
        if path.endswith("big"):
            system.fail_open(errno.EMFILE, at=3)  # the directory, f0, then none left
        return real_watch(self, path, recursive=recursive)

    cls.watch = watch  # type: ignore[method-assign]
    with w:
        mirror = Mirror.of(str(tmp_path))
        assert len(warned) == 1, warned
        assert "open-file limit" in warned[0]
        assert "ulimit -n" in warned[0]
        assert "polled" in warned[0]
        assert str(tmp_path / "big") in warned[0]
        (tmp_path / "big" / "f9").write_bytes(b"new")
        with (tmp_path / "big" / "f0").open("ab") as f:
            f.write(b"written")
        events = converge(w, mirror)
        assert {(e.kind.value, e.path) for e in events} >= {
            ("created", str(tmp_path / "big" / "f9")),
            ("modified", str(tmp_path / "big" / "f0")),
        }
    assert system.opened == 0
    assert len(warned) == 1


CHILD = textwrap.dedent("""
    import json, os, resource, sys, time
    from crosswatch import Watcher
    from crosswatch.testing import Mirror, converge, collect
    from crosswatch_kqueue.testing import EmulatedKqueue
    from crosswatch_kqueue._limits import RESERVE

    root = sys.argv[1]
    in_use = len(os.listdir("/proc/self/fd"))
    # the program's own, those kept for it, and a few: the root and 'small', not 'big'
    limit = in_use + RESERVE + 12
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    warned = []
    out = {}
    with Watcher(root, backend=EmulatedKqueue, poll_interval=0.05,
                 on_warning=warned.append) as w:
        mirror = Mirror.of(root)
        out["at_start"] = list(warned)
        with open(os.path.join(root, "big", "f0"), "ab") as f:
            f.write(b"seen by polling")
        # a watched directory gets more files than descriptors are left
        for n in range(60):
            open(os.path.join(root, "small", f"late{n}"), "wb").close()
        converge(w, mirror, timeout=20)
        out["after"] = list(warned)
        with open(os.path.join(root, "small", "late7"), "ab") as f:
            f.write(b"still seen")
        events = collect(w, lambda ev: any(e.path.endswith("late7") for e in ev), timeout=10)
        out["late_write"] = [(e.kind.value, os.path.basename(e.path)) for e in events]
    print(json.dumps(out))
""")


@EMULATION_ONLY
def test_a_lowered_open_file_limit_refuses_directories_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """With RLIMIT_NOFILE really lowered (in a child process): a directory too big
    at the start, and one that grows past the limit later, are both polled and told."""
    (tmp_path / "small").mkdir()
    (tmp_path / "big").mkdir()
    for n in range(100):
        (tmp_path / "big" / f"f{n}").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["at_start"]) == 1, out
    assert "open-file limit" in out["at_start"][0]
    assert str(tmp_path / "big") in out["at_start"][0]
    # the late files: the same refusal, for the same root, is not told twice
    assert out["after"] == out["at_start"]
    assert ("modified", "late7") in [tuple(e) for e in out["late_write"]]


def test_decode_fate() -> None:
    abi = _abi.documented("darwin")
    ev = _abi.KEvent(3, abi.evfilt_vnode, abi.ev_clear, abi.note_rename | abi.note_attrib)
    assert _abi.decode_fate(ev, 7, abi).observations == (EntryChange(7, "", Action.MOVED_FROM),)
    gone = ev._replace(fflags=abi.note_delete | abi.note_rename)
    assert _abi.decode_fate(gone, 7, abi).observations == (
        EntryChange(7, "", Action.DELETED), Gone(7))
    assert _abi.decode_fate(ev._replace(flags=abi.ev_eof, fflags=0), 7, abi).close
    err = ev._replace(flags=abi.ev_error, data=errno.EIO)
    assert _abi.decode_fate(err, 7, abi).observations == (Gone(7),)
    assert _abi.decode_fate(err._replace(data=0), 7, abi).observations == ()
    assert _abi.decode_fate(ev._replace(filter=-1), 7, abi).observations == ()
    assert _abi.decode_fate(ev._replace(fflags=abi.note_write), 7, abi).observations == ()



@EMULATION_ONLY
def test_a_file_that_cannot_be_opened_refuses_its_directory(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"")
    system = KqueueEmulation()
    b = emulated(system)()
    try:
        system.fail_open(errno.EACCES, at=2)  # the directory opens, its file does not
        with pytest.raises(WatchLimitError, match=r"cannot open the file .*secret.* polled"):
            b.watch(str(tmp_path), recursive=False)
        assert system.opened == 0
    finally:
        b.close()


CHILD_ROOT = textwrap.dedent("""
    import json, os, resource, sys
    from crosswatch import Watcher
    from crosswatch.testing import collect
    from crosswatch_kqueue.testing import EmulatedKqueue
    from crosswatch_kqueue._limits import RESERVE

    root = sys.argv[1]
    in_use = len(os.listdir("/proc/self/fd"))
    limit = in_use + RESERVE + 12  # far fewer than the root's own 100 files
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    warned = []
    with Watcher(root, backend=EmulatedKqueue, poll_interval=0.05,
                 on_warning=warned.append) as w:
        with open(os.path.join(root, "f3"), "ab") as f:
            f.write(b"seen by polling")
        with open(os.path.join(root, "sub", "g"), "wb") as f:  # sub is still watched
            f.write(b"seen by kqueue")
        events = collect(w, lambda ev: {os.path.basename(e.path) for e in ev} >= {"f3", "g"},
                         timeout=20)
    print(json.dumps({"warned": warned,
                      "events": sorted((e.kind.value, os.path.basename(e.path)) for e in events)}))
""")


@EMULATION_ONLY
def test_a_root_with_more_files_than_descriptors_is_polled_not_refused(tmp_path: Path) -> None:
    """The root itself past a really lowered RLIMIT_NOFILE (in a child process):
    the watcher starts, polls the root, keeps watching its subdirectories, and says so."""
    (tmp_path / "sub").mkdir()
    for n in range(100):
        (tmp_path / f"f{n}").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-c", CHILD_ROOT, str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["warned"]) == 1, out
    assert "open-file limit" in out["warned"][0]
    assert "polled" in out["warned"][0]
    assert ["modified", "f3"] in out["events"]
    assert ["created", "g"] in out["events"]

"""Snapshots and ``since``: real trees, real changes, and the mirror rules of the events."""

from __future__ import annotations

import gc
import os
import random
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import crosswatch
from crosswatch import Change, Event, _snapfile
from crosswatch._backend import Action, EntryChange
from crosswatch._snapfile import Header
from crosswatch.testing import (
    FileOps,
    Mirror,
    ScriptedBackend,
    needs_byte_names,
    needs_posix_permissions,
    open_fds,
    snapshot,
    tmpfs,
)
from crosswatch.testing._operations import random_operation
from crosswatch.testing._storm import storm

WAIT = 20.0  # seconds: generous, only reached when something is wrong


@pytest.fixture
def root() -> Iterator[str]:
    with TemporaryRoot() as path:
        yield path


class TemporaryRoot:
    """A directory ``root`` with room for snapshots beside it, on tmpfs where there is one."""

    def __enter__(self) -> str:
        import tempfile

        self._tmp = tempfile.TemporaryDirectory(dir=tmpfs())
        base = os.path.realpath(self._tmp.name)
        path = os.path.join(base, "root")
        os.mkdir(path)
        return path

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


@pytest.fixture(autouse=True)
def nothing_leaks() -> Iterator[None]:
    # What an earlier test left to the garbage collector is closed before counting,
    # not in the middle of this test; the check after it is as strict.
    gc.collect()
    threads, fds = set(threading.enumerate()), open_fds()
    yield
    deadline = time.monotonic() + WAIT
    while set(threading.enumerate()) - threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) <= threads
    assert open_fds() == fds


def beside(root: str, name: str = "snap.cws") -> str:
    return os.path.join(os.path.dirname(root), name)


def entries_of(file: str) -> dict[str, bool]:
    """What a snapshot holds: path -> is_dir, as a mirror keeps it."""
    header, blocks = _snapfile.read(file)
    out: dict[str, bool] = {}
    for info in header.roots:
        stack = [info.path]
        while stack:
            directory = stack.pop()
            block = next(blocks)
            subdirs = []
            for name, code in zip(block.names, block.kinds, strict=True):
                path = os.path.join(directory, name)
                out[path] = code == ord("d")
                if out[path]:
                    subdirs.append(path)
            stack += reversed(subdirs)
    assert next(blocks, None) is None
    return out


def converges(root: str, before: dict[str, bool], events: list[Event]) -> None:
    mirror = Mirror([root], before)  # strict: a broken rule fails at once
    mirror.apply(events)
    now = snapshot(root)
    assert mirror.entries == now, mirror.diff(now)


def write(path: str, data: str = "x") -> None:
    with open(path, "w") as f:
        f.write(data)


# ---------------------------------------------------------------- what since reports


def test_an_unchanged_tree_has_no_events(root: str) -> None:
    os.makedirs(os.path.join(root, "a", "b"))
    write(os.path.join(root, "a", "b", "f"))
    crosswatch.snapshot(root, beside(root))
    assert entries_of(beside(root)) == snapshot(root)
    assert crosswatch.since(beside(root)) == []


def test_each_kind_of_change(root: str) -> None:
    for name in ("grow", "old", "gone", "mode", "swap", "kind"):
        write(os.path.join(root, name))
    os.makedirs(os.path.join(root, "dir", "deep"))
    write(os.path.join(root, "dir", "deep", "f"))
    past = time.time() - 3600
    os.utime(os.path.join(root, "old"), (past, past))
    crosswatch.snapshot(root, beside(root))

    write(os.path.join(root, "grow"), "longer")
    os.utime(os.path.join(root, "old"), (past - 3600, past - 3600))  # mtime set back
    os.unlink(os.path.join(root, "gone"))
    os.chmod(os.path.join(root, "mode"), 0o600)
    write(os.path.join(root, ".swap.tmp"), "new content")
    os.replace(os.path.join(root, ".swap.tmp"), os.path.join(root, "swap"))  # an atomic save
    os.unlink(os.path.join(root, "kind"))
    os.mkdir(os.path.join(root, "kind"))
    os.rename(os.path.join(root, "dir"), os.path.join(root, "moved"))
    write(os.path.join(root, "new"))

    def p(name: str) -> str:
        return os.path.join(root, name)

    events = crosswatch.since(beside(root))
    assert set(events) == {
        Event(Change.MODIFIED, p("grow")),
        Event(Change.MODIFIED, p("old")),
        Event(Change.DELETED, p("gone")),
        Event(Change.ATTRIB, p("mode")),
        Event(Change.MODIFIED, p("swap"), replaced=True),  # another file there now
        Event(Change.DELETED, p("kind")),
        Event(Change.CREATED, p("kind"), True),
        Event(Change.MOVED, p("moved"), True, p("dir")),  # its contents go with it
        Event(Change.CREATED, p("new")),
    }
    deleted = events.index(Event(Change.DELETED, p("kind")))
    assert deleted < events.index(Event(Change.CREATED, p("kind"), True))


def test_a_new_directory_comes_with_its_contents(root: str) -> None:
    crosswatch.snapshot(root, beside(root))
    os.makedirs(os.path.join(root, "n", "m"))
    write(os.path.join(root, "n", "m", "f"))
    events = crosswatch.since(beside(root))
    assert [e.path for e in events] == [
        os.path.join(root, "n"), os.path.join(root, "n", "m"), os.path.join(root, "n", "m", "f")
    ]
    converges(root, {}, events)


def test_a_root_gone_is_deleted(root: str) -> None:
    write(os.path.join(root, "f"))
    crosswatch.snapshot(root, beside(root))
    shutil.rmtree(root)
    assert crosswatch.since(beside(root)) == [Event(Change.DELETED, root, True)]


def test_a_root_replaced_by_another_directory_is_compared_by_path(root: str) -> None:
    os.mkdir(os.path.join(root, "d"))
    write(os.path.join(root, "d", "f"))
    before = snapshot(root)
    crosswatch.snapshot(root, beside(root))
    copy = root + ".copy"
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    os.rename(copy, root)
    events = crosswatch.since(beside(root))
    converges(root, before, events)


def _replace_or_retype(rng: random.Random, root: str) -> None:
    """A change random_operation does not make: a file saved over atomically, an
    entry turned into the other kind, a mode or an mtime changed."""
    entries = list(snapshot(root).items())
    if not entries:
        return
    path, is_dir = rng.choice(entries)
    op = rng.randrange(4)
    try:
        if op == 0 and not is_dir:
            write(root + ".tmp", "saved" * rng.randrange(1, 4))
            os.replace(root + ".tmp", path)
        elif op == 1:
            shutil.rmtree(path) if is_dir else os.unlink(path)
            write(path) if is_dir else os.mkdir(path)
        elif op == 2:
            os.chmod(path, 0o700 if is_dir else 0o600)
        else:
            os.utime(path, (1_000_000, 1_000_000))
    except OSError:
        pass


@pytest.mark.parametrize("seed", range(30))
def test_random_changes_converge(root: str, seed: int) -> None:
    rng = random.Random(seed)
    ops = FileOps()
    for _ in range(40):
        random_operation(rng, root, ops, names=8)
    before = snapshot(root)
    crosswatch.snapshot(root, beside(root))
    for _ in range(rng.randrange(1, 40)):
        if rng.random() < 0.25:
            _replace_or_retype(rng, root)
        else:
            random_operation(rng, root, ops, names=8)
    events = crosswatch.since(beside(root))
    converges(root, before, events)
    crosswatch.snapshot(root, beside(root, "again.cws"))
    assert crosswatch.since(beside(root, "again.cws")) == []


def test_filters_are_recorded_and_applied_again(root: str) -> None:
    write(os.path.join(root, "keep"))
    write(os.path.join(root, "skip.log"))
    os.mkdir(os.path.join(root, ".git"))
    crosswatch.snapshot(root, beside(root), ignore=["*.log"])
    assert set(entries_of(beside(root))) == {os.path.join(root, "keep")}
    write(os.path.join(root, "skip.log"), "more")
    write(os.path.join(root, "also.log"))
    write(os.path.join(root, ".git", "HEAD"))
    write(os.path.join(root, "keep"), "more")
    assert crosswatch.since(beside(root)) == [Event(Change.MODIFIED, os.path.join(root, "keep"))]


def test_not_recursive(root: str) -> None:
    os.mkdir(os.path.join(root, "d"))
    crosswatch.snapshot(root, beside(root), recursive=False)
    write(os.path.join(root, "d", "below"))
    write(os.path.join(root, "top"))
    assert crosswatch.since(beside(root)) == [Event(Change.CREATED, os.path.join(root, "top"))]


@needs_byte_names
def test_names_that_are_not_utf8(root: str) -> None:
    odd = os.fsdecode(b"caf\xe9")
    write(os.path.join(root, odd))
    crosswatch.snapshot(root, beside(root))
    assert entries_of(beside(root)) == {os.path.join(root, odd): False}
    os.rename(os.path.join(root, odd), os.path.join(root, odd + "2"))
    events = crosswatch.since(beside(root))
    assert events == [Event(Change.MOVED, os.path.join(root, odd + "2"), False,
                            os.path.join(root, odd))]


def test_since_one_root_of_several(root: str) -> None:
    other = root + "2"
    os.mkdir(other)
    try:
        with crosswatch.watch(root, other, backend="polling") as w:
            w.snapshot(beside(root))
        write(os.path.join(root, "a"))
        write(os.path.join(other, "b"))
        assert crosswatch.since(beside(root), other) == [
            Event(Change.CREATED, os.path.join(other, "b"))
        ]
        assert len(crosswatch.since(beside(root))) == 2
        with pytest.raises(crosswatch.SnapshotMismatchError, match="not of"):
            crosswatch.since(beside(root), os.path.dirname(root))
    finally:
        shutil.rmtree(other)


def test_progress_of_since(root: str) -> None:
    for d in range(5):
        os.mkdir(os.path.join(root, f"d{d}"))
    crosswatch.snapshot(root, beside(root))
    seen: list[crosswatch.Progress] = []
    crosswatch.since(beside(root), progress=seen.append)
    assert seen[-1].done
    assert seen[-1].directories == 6
    assert seen[-1].entries == 5


def test_snapshot_refuses_watcher_options(root: str) -> None:
    with pytest.raises(crosswatch.ConfigError, match="kinds"):
        crosswatch.snapshot(root, beside(root), kinds=["created"])


# ---------------------------------------------------------------- bad input


def test_a_foreign_file(root: str) -> None:
    write(beside(root), "name,size\nf,1\n")
    with pytest.raises(crosswatch.NotASnapshotError, match="not a crosswatch snapshot"):
        crosswatch.since(beside(root))


def test_every_truncation_is_an_error_of_its_own(root: str) -> None:
    for d in range(20):
        write(os.path.join(root, f"f{d}"))
    crosswatch.snapshot(root, beside(root))
    data = Path(beside(root)).read_bytes()
    for cut in range(len(data)):
        Path(beside(root, "cut")).write_bytes(data[:cut])
        with pytest.raises(crosswatch.SnapshotTruncatedError, match="truncated"):
            crosswatch.since(beside(root, "cut"))


def test_every_flipped_byte_is_refused_or_harmless(root: str) -> None:
    """A flipped bit is found by a check, or lies where it changes nothing (the
    padding of the compressed stream): no damaged entry is ever taken for true."""
    for d in range(5):
        os.mkdir(os.path.join(root, f"d{d}"))
        write(os.path.join(root, f"d{d}", "f"))
    crosswatch.snapshot(root, beside(root))
    data = Path(beside(root)).read_bytes()
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x40
        Path(beside(root, "bad")).write_bytes(bytes(damaged))
        try:
            events = crosswatch.since(beside(root, "bad"))
        except crosswatch.SnapshotError:
            continue
        assert events == [], at
        assert at > len(data) // 2, at  # only inside the compressed stream
    Path(beside(root, "long")).write_bytes(data + b"more")
    with pytest.raises(crosswatch.SnapshotCorruptError, match="damaged"):
        crosswatch.since(beside(root, "long"))


def test_a_newer_format(root: str) -> None:
    crosswatch.snapshot(root, beside(root))
    data = bytearray(Path(beside(root)).read_bytes())
    struct.pack_into("<H", data, len(_snapfile.MAGIC), _snapfile.FORMAT_VERSION + 1)
    Path(beside(root)).write_bytes(bytes(data))
    with pytest.raises(crosswatch.SnapshotVersionError, match="upgrade crosswatch"):
        crosswatch.since(beside(root))


def test_another_platforms_identities(root: str) -> None:
    header = Header([], {}, 0, "crosswatch", identity="elsewhere")
    _snapfile.write(beside(root), header, [])
    with pytest.raises(crosswatch.SnapshotMismatchError, match="another platform"):
        crosswatch.since(beside(root))


def test_a_failed_write_leaves_the_old_snapshot(root: str) -> None:
    crosswatch.snapshot(root, beside(root))
    old = Path(beside(root)).read_bytes()
    header, _ = _snapfile.read(beside(root))

    def blocks() -> Iterator[bytes]:
        yield b"\0" * 100
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        _snapfile.write(beside(root), header, blocks())
    assert Path(beside(root)).read_bytes() == old
    assert set(os.listdir(os.path.dirname(root))) == {"root", "snap.cws"}  # no temporary


@needs_posix_permissions
def test_only_its_owner_reads_a_snapshot(root: str) -> None:
    crosswatch.snapshot(root, beside(root))
    assert os.stat(beside(root)).st_mode & 0o077 == 0


# ---------------------------------------------------------------- a live watcher


def test_a_live_snapshot_hands_over_the_events_before_it(root: str) -> None:
    with crosswatch.watch(root) as w:
        mirror = Mirror.of(root)
        write(os.path.join(root, "a"))
        os.mkdir(os.path.join(root, "d"))
        deadline = time.monotonic() + WAIT
        while len(snapshot(root)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the events are queued, not taken
        held = w.snapshot(beside(root))
        mirror.apply(held)
        assert {e.path for e in held} == {os.path.join(root, "a"), os.path.join(root, "d")}
        assert mirror.entries == entries_of(beside(root))
        write(os.path.join(root, "d", "after"))
        batch = w.get(timeout=WAIT)  # only what came after the snapshot
        assert batch
        assert batch[0] == Event(Change.CREATED, os.path.join(root, "d", "after"))
        assert {e.path for e in batch} == {os.path.join(root, "d", "after")}


def test_a_move_waiting_for_its_pair_is_still_in_the_snapshot(root: str) -> None:
    write(os.path.join(root, "f"))
    with crosswatch.watch(root, backend=ScriptedBackend, pair_wait=WAIT) as w:
        backend = w.backend("scripted")
        assert isinstance(backend, ScriptedBackend)
        handle = backend.handle_of(root)
        os.rename(os.path.join(root, "f"), beside(root, "away"))
        backend.push(EntryChange(handle, "f", Action.MOVED_FROM, False, cookie=7))
        time.sleep(0.2)  # read and pending: its pair may still come
        assert w.snapshot(beside(root)) == []
        assert entries_of(beside(root)) == {os.path.join(root, "f"): False}


def test_snapshot_in_callback_mode(root: str) -> None:
    got: list[Event] = []
    errors: list[BaseException] = []

    def callback(batch: list[Event]) -> None:
        got.extend(batch)
        try:
            w.snapshot(beside(root, "inside.cws"))
        except crosswatch.SnapshotError as exc:
            errors.append(exc)

    with crosswatch.watch(root, callback=callback) as w:
        write(os.path.join(root, "a"))
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.snapshot(beside(root)) == []  # all delivered to the callback already
    assert errors
    assert "callback" in str(errors[0])
    assert entries_of(beside(root)) == {os.path.join(root, "a"): False}


def test_no_snapshot_of_a_watcher_not_running(root: str) -> None:
    w = crosswatch.watch(root)
    with pytest.raises(crosswatch.NotStartedError):
        w.snapshot(beside(root))
    w.start()
    w.close()
    with pytest.raises(crosswatch.SnapshotError, match="stopped"):
        w.snapshot(beside(root))
    assert not os.path.exists(beside(root))


def test_a_live_snapshot_during_a_storm_is_the_mirror_at_that_point(root: str) -> None:
    """Writers in other processes; the consumer takes snapshots as it goes. Each one
    equals the consumer's mirror once the events it hands over are applied, and the
    events of since() bring the mirror at the last snapshot to the tree at the end."""
    for d in range(5):
        os.mkdir(os.path.join(root, f"n{d}"))
    with crosswatch.watch(root, max_queue=200) as w:  # a small queue: rounds wait for room
        mirror = Mirror.of(root)
        done = threading.Event()
        writers = threading.Thread(
            target=lambda: (storm(root, processes=2, seconds=3.0, seed=11), done.set())
        )
        writers.start()
        taken = 0
        try:
            while not done.is_set():
                mirror.apply(w.get(timeout=0.05) or [])
                if random.random() < 0.2:
                    mirror.apply(w.snapshot(beside(root)))
                    held = entries_of(beside(root))
                    assert mirror.entries == held, mirror.diff(held)
                    at_snapshot = dict(mirror.entries)
                    taken += 1
        finally:
            writers.join()
        assert taken > 3
    converges(root, at_snapshot, crosswatch.since(beside(root)))


# ---------------------------------------------------------------- the command line


def test_cli_snapshot_and_since(root: str) -> None:
    from test_cli import assert_no_traceback, run

    write(os.path.join(root, "a"))
    done = run("snapshot", root, "-o", beside(root), "--ignore", "*.log")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    os.rename(os.path.join(root, "a"), os.path.join(root, "b"))
    write(os.path.join(root, "c.log"))
    done = run("since", beside(root))
    assert done.returncode == 0, done.stderr
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    assert done.stdout == f"moved\t{b}\t{a}\n".encode()
    done = run("since", beside(root), root, "--format", "{kind} {src}", "-0")
    assert done.stdout == f"moved {a}\0".encode()
    assert_no_traceback(done.stderr)


@pytest.mark.parametrize("content", [b"", b"not a snapshot", _snapfile.MAGIC + b"\1\0"])
def test_cli_bad_snapshots_are_one_line(root: str, content: bytes) -> None:
    from test_cli import assert_no_traceback, run

    Path(beside(root)).write_bytes(content)
    done = run("since", beside(root))
    assert done.returncode == 1
    assert done.stderr.count(b"\n") == 1
    assert done.stderr.startswith(b"crosswatch: error: ")
    assert_no_traceback(done.stderr)


def test_cli_another_root_and_a_missing_path(root: str) -> None:
    from test_cli import run

    crosswatch.snapshot(root, beside(root))
    done = run("since", beside(root), os.path.dirname(root))
    assert done.returncode == 1
    assert b"not of" in done.stderr
    done = run("snapshot", root + "-missing", "-o", beside(root, "x"))
    assert done.returncode == 4
    assert b"does not exist" in done.stderr
    assert not os.path.exists(beside(root, "x"))

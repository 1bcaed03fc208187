"""inotify specifics: the ABI, the kernel mask, limits, overflow, root lifecycle."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crosswatch_inotify import _abi, _limits
from crosswatch_inotify._backend import InotifyBackend

import crosswatch
from crosswatch import Change, Watcher
from crosswatch._engine import Engine
from crosswatch._events import ACCESS_KINDS
from crosswatch._feed import feed
from crosswatch.backend import Action, EntryChange, Gone, SubtreeLost
from crosswatch.testing import Mirror, collect, converge, ends_with, open_fds, snapshot
from crosswatch.testing._deep import make_chain, remove_tree, touch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


def record(wd: int, mask: int, cookie: int = 0, name: bytes = b"") -> bytes:
    """A struct inotify_event as the kernel writes it: name NUL-padded to 16 bytes."""
    padded = name + b"\0" * (-len(name) % 16 or (16 if name else 0)) if name else b""
    return struct.pack("=iIII", wd, mask, cookie, len(padded)) + padded


# ------------------------------------------------------------------ the ABI


def test_records_decode_names_cookies_and_flags() -> None:
    buf = (
        record(1, _abi.IN_CREATE | _abi.IN_ISDIR, 0, b"sub")
        + record(1, _abi.IN_MOVED_FROM, 77, b"old")
        + record(2, _abi.IN_MOVED_TO, 77, b"new\xff")
        + record(2, _abi.IN_MODIFY, 0, b"f")
    )
    assert _abi.observations(buf) == [
        EntryChange(1, "sub", Action.CREATED, True),
        EntryChange(1, "old", Action.MOVED_FROM, False, 77),
        EntryChange(2, os.fsdecode(b"new\xff"), Action.MOVED_TO, False, 77),
        EntryChange(2, "f", Action.MODIFIED, False),
    ]


def test_a_record_with_several_actions_gives_one_observation_each() -> None:
    buf = record(1, _abi.IN_ATTRIB | _abi.IN_CLOSE_WRITE | _abi.IN_ISDIR, 0, b"d" * 16)
    assert _abi.observations(buf) == [
        EntryChange(1, "d" * 16, Action.ATTRIB, True),
        EntryChange(1, "d" * 16, Action.CLOSED_WRITE, True),
    ]


def test_overflow_ignored_unmount_and_self_events() -> None:
    buf = (
        record(-1, _abi.IN_Q_OVERFLOW)
        + record(3, _abi.IN_UNMOUNT)
        + record(3, _abi.IN_IGNORED)
        + record(4, _abi.IN_DELETE_SELF)
        + record(5, _abi.IN_MOVE_SELF)
    )
    assert _abi.observations(buf) == [
        SubtreeLost(None),
        Gone(3),
        EntryChange(4, "", Action.DELETED, True),
        EntryChange(5, "", Action.MOVED_FROM, True),
    ]


def test_a_truncated_record_is_not_decoded() -> None:
    assert list(_abi.records(record(1, _abi.IN_CREATE, 0, b"x")[:10])) == []


# ------------------------------------------------------------- the kernel


def watch_masks() -> dict[str, list[int]]:
    """This process's inotify descriptors and their watches' masks, as the kernel says."""
    masks: dict[str, list[int]] = {}
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("inotify wd:"):
                        field = next(p for p in line.split() if p.startswith("mask:"))
                        masks.setdefault(fd, []).append(int(field[5:], 16))
        except OSError:
            continue
    return masks


@pytest.mark.parametrize("access", [False, True])
def test_the_kernel_mask_holds_only_what_was_asked(tmp_path: Path, access: bool) -> None:
    (tmp_path / "sub").mkdir()
    before = watch_masks()
    with Watcher(tmp_path, backend="inotify", access=access):
        masks = [m for fd, ms in watch_masks().items() if fd not in before for m in ms]
    entries = [m for m in masks if m & _abi.IN_CREATE]
    assert len(entries) == 2  # the root and its subdirectory
    for mask in entries:
        assert bool(mask & _abi.ACCESS_MASK) is access
        assert mask & _abi.IN_MOVED_FROM
    # one watch per directory above the root, on its own fate only
    above = len(tmp_path.parents) - 1  # "/" is never renamed
    assert sorted(masks) == sorted(entries + [_abi.IN_DELETE_SELF | _abi.IN_MOVE_SELF] * above)


def test_access_events_on_request(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    with Watcher(tmp_path, backend="inotify", access=True) as w:
        with open(f) as fh:
            fh.read()
        events = collect(w, lambda ev: Change.CLOSED_NOWRITE in {e.kind for e in ev}, settle=0.2)
    assert [e.kind for e in events if e.path == str(f)] == [
        Change.OPENED,
        Change.ACCESSED,
        Change.CLOSED_NOWRITE,
    ]


def test_no_access_events_unless_asked(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("data")
    with Watcher(tmp_path, backend="inotify") as w:
        with open(f) as fh:
            fh.read()
        f.write_text("more")
        events = collect(w, bool, settle=0.3)
    assert {e.kind for e in events} == {Change.MODIFIED}


def test_watching_a_path_that_vanished_is_not_an_error(tmp_path: Path) -> None:
    backend = InotifyBackend()
    try:
        with pytest.raises(crosswatch.WatchGoneError):
            backend.watch(str(tmp_path / "gone"), recursive=False)
        (tmp_path / "file").write_text("x")
        with pytest.raises(crosswatch.WatchGoneError):  # IN_ONLYDIR
            backend.watch(str(tmp_path / "file"), recursive=False)
    finally:
        backend.close()


def test_the_root_moved_away_is_deleted_and_ends(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with Watcher(root, backend="inotify") as w:
        root.rename(tmp_path / "elsewhere")
        events = collect(w, lambda ev: False, timeout=0, settle=0.5)
        assert w.get(timeout=5) is None
    assert [(e.kind, e.path) for e in events] == [(Change.DELETED, str(root))]


def test_a_file_root_whose_directory_is_renamed_away_ends(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    with Watcher(tmp_path / "d" / "f", backend="inotify") as w:
        (tmp_path / "d").rename(tmp_path / "d2")
        assert ends_with(w) == [(Change.DELETED, str(tmp_path / "d" / "f"))]


def test_renames_beside_the_root_and_back_leave_it_watched(tmp_path: Path) -> None:
    """Both renames happen while the watcher's thread is held in its callback, so
    it reads them together: the path leads to the root again by then."""
    root = tmp_path / "a" / "b" / "root"
    root.mkdir(parents=True)
    (tmp_path / "a" / "sibling").mkdir()
    got: list[tuple[Change, str]] = []
    arrived, held, go = threading.Condition(), threading.Event(), threading.Event()

    def on_batch(batch: list[crosswatch.Event]) -> None:
        with arrived:
            got.extend((e.kind, e.path) for e in batch)
            arrived.notify_all()
        if not go.is_set():
            held.set()
            go.wait(10)

    def until(n: int) -> list[tuple[Change, str]]:
        with arrived:
            arrived.wait_for(lambda: len(got) >= n, timeout=10)
            return list(got)

    w = Watcher(root, backend="inotify", callback=on_batch).start()
    try:
        (root / "hold").touch()
        assert held.wait(10)
        (tmp_path / "a" / "sibling").rename(tmp_path / "a" / "sibling2")  # not on the way
        (tmp_path / "a" / "b").rename(tmp_path / "a" / "b2")
        (tmp_path / "a" / "b2").rename(tmp_path / "a" / "b")
        go.set()
        (root / "f").touch()
        assert until(2) == [(Change.CREATED, str(root / "hold")), (Change.CREATED, str(root / "f"))]
        # its ancestors are watched again: a later rename still ends it
        (tmp_path / "a").rename(tmp_path / "a2")
        assert until(3)[2:] == [(Change.DELETED, str(root))]
        deadline = time.monotonic() + 5
        while not w.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.closed, "the watch did not end"
        time.sleep(0.3)
        assert len(got) == 3, got
    finally:
        w.close()


@pytest.mark.parametrize("order", ["outer first", "inner first"])
def test_a_directory_above_a_root_watched_for_its_entries_too(tmp_path: Path, order: str) -> None:
    """The kernel keeps one mask per inode: the entries' watch and the fate watch share it."""
    outer, inner = tmp_path / "d", tmp_path / "d" / "x" / "y"
    inner.mkdir(parents=True)
    roots = [outer, inner] if order == "outer first" else [inner, outer]
    with Watcher(*roots, recursive=False, backend="inotify") as w:
        (outer / "new").touch()
        events = collect(w, bool, settle=0.2)
        assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(outer / "new"))]
        inner.rmdir()  # that root ends; the outer one must keep its entries' watch
        events = collect(w, lambda ev: len(ev) >= 2, settle=0.2)
        assert (Change.DELETED, str(inner)) in [(e.kind, e.path) for e in events]
        (outer / "new2").touch()
        events = collect(w, bool, settle=0.2)
        assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(outer / "new2"))]
        (tmp_path / "d").rename(tmp_path / "d-moved")
        assert ends_with(w) == [(Change.DELETED, str(outer))]


def test_fate_watches_share_the_kernel_watch_and_count_their_uses(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    backend = InotifyBackend()
    try:
        full = backend.watch(str(d), recursive=False)
        fate = backend.watch_self(str(d))
        again = backend.watch_self(str(d))
        assert fate == again
        assert fate != full
        backend.unwatch(full)
        backend.unwatch(again)
        (d / "f").write_text("x")  # entries are no longer anyone's
        d.rename(tmp_path / "d2")
        assert list(backend.read()) == [EntryChange(fate, "", Action.MOVED_FROM, True)]
        backend.unwatch(fate)
        # the kernel's word that the watch ended, as after any unwatch; none is left
        assert list(backend.read()) == [Gone(full)]
        assert str(backend._fd) not in watch_masks()
    finally:
        backend.close()


@pytest.mark.parametrize("first", ["watch", "watch_self"])
@pytest.mark.parametrize("released", ["fate first", "entries first"])
def test_a_kernel_watch_shared_by_both_uses_lives_until_both_are_released(
    tmp_path: Path, first: str, released: str
) -> None:
    d = tmp_path / "d"
    d.mkdir()
    backend = InotifyBackend()
    try:
        if first == "watch":
            full = backend.watch(str(d), recursive=False)
            fate = backend.watch_self(str(d))
        else:
            fate = backend.watch_self(str(d))
            full = backend.watch(str(d), recursive=False)
        assert len(watch_masks()[str(backend._fd)]) == 1
        if released == "fate first":
            backend.unwatch(fate)
            (d / "f").write_text("x")  # the entries are still watched
            assert {o.name for o in backend.read() if isinstance(o, EntryChange)} == {"f"}
            assert str(backend._fd) in watch_masks()
            backend.unwatch(full)
        else:
            backend.unwatch(full)
            d.rename(tmp_path / "d2")  # the fate is still watched
            assert list(backend.read()) == [EntryChange(fate, "", Action.MOVED_FROM, True)]
            assert str(backend._fd) in watch_masks()
            backend.unwatch(fate)
        assert list(backend.read()) == [Gone(full)]
        assert str(backend._fd) not in watch_masks()
    finally:
        backend.close()


LISTER = "import os, sys; os.listdir(sys.argv[1])"


def test_the_watchers_own_listings_are_not_reported_as_access(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    with Watcher(tmp_path, backend="inotify", access=True) as w:
        # the first reading listed the root, a and b
        assert collect(w, lambda ev: False, timeout=0, settle=0.5) == []
        (tmp_path / "new").mkdir()  # listed by the watcher as it appears
        (tmp_path / "a" / "b" / "new2").mkdir()
        events = collect(w, lambda ev: len(ev) >= 2, settle=0.5)
        assert [(e.kind, e.path) for e in events] == [
            (Change.CREATED, str(tmp_path / "new")),
            (Change.CREATED, str(tmp_path / "a" / "b" / "new2")),
        ]
        # another process's listing is reported, of a directory and of the root
        for listed in (tmp_path / "a", tmp_path):
            subprocess.run([sys.executable, "-c", LISTER, str(listed)], check=True)
            events = collect(
                w, lambda ev: Change.CLOSED_NOWRITE in {e.kind for e in ev}, settle=0.3
            )
            assert [e.kind for e in events if e.kind is not Change.ACCESSED] == [
                Change.OPENED,
                Change.CLOSED_NOWRITE,
            ]
            assert {e.path for e in events} == {str(listed)}


def test_own_listings_of_a_root_inside_another_root_are_not_reported(tmp_path: Path) -> None:
    inner = tmp_path / "x"
    inner.mkdir()
    with Watcher(tmp_path, inner, recursive=False, backend="inotify", access=True) as w:
        assert collect(w, lambda ev: False, timeout=0, settle=0.5) == []
        subprocess.run([sys.executable, "-c", LISTER, str(inner)], check=True)
        events = collect(w, lambda ev: Change.CLOSED_NOWRITE in {e.kind for e in ev}, settle=0.3)
    # seen by both roots: as x's own and as an entry of its parent
    assert {e.path for e in events} == {str(inner)}
    assert Change.OPENED in {e.kind for e in events}


def test_own_listings_are_not_reported_while_a_tree_is_read_again(shm: str) -> None:
    """After an overflow the watcher lists every directory again: that is no access."""
    for d in range(20):
        os.makedirs(os.path.join(shm, f"d{d}", "sub"))
    with Watcher(shm, backend="inotify", access=True, max_queue=50) as w:
        subprocess.run([sys.executable, "-c", CREATOR, shm, "30000"], check=True)
        # (no snapshot of the tree meanwhile: its listings would be reported, rightly)
        events = collect(w, lambda ev: Change.RESCAN in {e.kind for e in ev}, timeout=60,
                         settle=1.0)
    assert Change.RESCAN in {e.kind for e in events}
    assert len({e.path for e in events if e.kind is Change.CREATED}) == 30000
    assert [(e.kind, e.path) for e in events if e.is_dir and e.kind in ACCESS_KINDS] == []


@pytest.fixture
def shm() -> Iterator[str]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        yield root


CREATOR = """
import os, sys
for i in range(int(sys.argv[2])):
    open(os.path.join(sys.argv[1], f"f{i}"), "w").close()
"""


def test_overflow_while_the_consumer_is_slow_is_recovered(shm: str) -> None:
    """The consumer pauses; the engine stops reading; the kernel queue overflows."""
    with Watcher(shm, backend="inotify", max_queue=100) as w:
        mirror = Mirror.of(shm)
        subprocess.run([sys.executable, "-c", CREATOR, shm, "30000"], check=True)
        events = converge(w, mirror, timeout=60)
    created = {e.path for e in events if e.kind is Change.CREATED}
    assert len(created) == 30000
    assert Change.RESCAN in {e.kind for e in events}


# ------------------------------------------------------------ the watch limit

LIMITED = textwrap.dedent(
    """
    import json, os, sys, time
    import crosswatch
    from crosswatch.testing import Mirror, converge
    root = sys.argv[1]
    for d in range(30):
        os.makedirs(os.path.join(root, f"d{d}", "sub"))
    report = crosswatch.probe(root)
    inotify = next(p for p in report.results if p.backend == "inotify")
    warnings = []
    with crosswatch.Watcher(root, backend="inotify", poll_interval=0.1,
                            on_warning=warnings.append) as w:
        mirror = Mirror.of(root)
        for d in (0, 29):
            open(os.path.join(root, f"d{d}", "sub", "new"), "w").close()
        os.rename(os.path.join(root, "d28"), os.path.join(root, "d28-renamed"))
        events = converge(w, mirror, timeout=20)
    print(json.dumps({
        "probe": [inotify.available, inotify.score, inotify.reason],
        "warnings": warnings,
        "created": sorted(os.path.relpath(e.path, root) for e in events
                          if e.kind.value == "created"),
    }))
    """
)


def in_namespace(setup: str, script: str, *args: str, mounts: bool = False) -> dict[str, Any]:
    """Run ``script`` in a new user namespace (and mount namespace, if ``mounts``)
    after the shell command ``setup``; its JSON. Skipped where namespaces are not
    allowed, or ``setup`` cannot run there."""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare(1)")
    code = f'{setup} && exec "$0" -c "$@"'
    flags = "-Urm" if mounts else "-Ur"
    try:
        out = subprocess.run(
            ["unshare", flags, "sh", "-c", code, sys.executable, script, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    except OSError as exc:
        pytest.skip(f"user namespaces unavailable: {exc}")
    if out.returncode != 0 and ("unshare" in out.stderr or (mounts and "mount" in out.stderr)):
        pytest.skip(f"this namespace cannot be set up here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_watch_limit_is_never_silent_and_falls_back_to_polling(shm: str) -> None:
    result = in_namespace("echo 20 > /proc/sys/user/max_inotify_watches", LIMITED, shm)
    available, score, reason = result["probe"]
    assert available
    assert score < 100
    # The limit that applied is this namespace's (20), not fs.inotify.max_user_watches.
    assert "raise /proc/sys/user/max_inotify_watches" in reason
    assert len(result["warnings"]) == 1
    assert "raise /proc/sys/user/max_inotify_watches" in result["warnings"][0]
    assert "fs.inotify" not in result["warnings"][0]
    assert "polled" in result["warnings"][0]
    assert result["created"] == ["d0/sub/new", "d29/sub/new"]


def test_outside_a_user_namespace_the_sysctl_is_named() -> None:
    if _limits.in_initial_namespace():
        with open("/proc/sys/fs/inotify/max_user_instances") as f:
            instances = int(f.read())
        assert _limits.limit_in_force("instances") == (
            instances,
            "fs.inotify.max_user_instances",
        )
    else:
        pytest.skip("runs in a user namespace already")


ONE_INSTANCE = "echo 1 > /proc/sys/user/max_inotify_instances"

NO_INSTANCE_LEFT = textwrap.dedent(
    """
    import ctypes, json, os, subprocess, sys
    import crosswatch
    from crosswatch.testing import collect
    root = sys.argv[1]
    libc = ctypes.CDLL(None, use_errno=True)
    held = libc.inotify_init1(0)  # the one instance this namespace allows
    assert held >= 0
    out = {}
    warnings = []
    with crosswatch.Watcher(root, poll_interval=0.05, on_warning=warnings.append) as w:
        out["backends"] = sorted(w.backends.values())
        open(os.path.join(root, "new"), "w").close()
        events = collect(w, lambda ev: any(e.kind.value == "created" for e in ev), timeout=20)
    out["created"] = [os.path.basename(e.path) for e in events if e.kind.value == "created"]
    out["warnings"] = warnings
    try:
        crosswatch.Watcher(root, backend="inotify").start().close()
    except crosswatch.BackendUnavailableError as exc:
        out["forced"] = str(exc)
    cli = [sys.executable, "-m", "crosswatch"]
    shown = subprocess.run(cli + ["backends", root], capture_output=True, text=True)
    out["backends_cli"] = [shown.returncode, shown.stdout]
    proc = subprocess.Popen(
        cli + ["watch", "--verbose", "--poll-interval=0.05", "-n", "1", root],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    said = []
    for line in proc.stderr:  # up to "watching ...": then it is started
        said.append(line)
        if "watching" in line:
            break
    open(os.path.join(root, "by-cli"), "w").close()
    printed, rest = proc.communicate(timeout=60)
    out["watch_cli"] = [proc.returncode, printed, "".join(said) + rest]
    print(json.dumps(out))
    """
)


def test_no_inotify_instance_left_falls_back_to_polling(shm: str) -> None:
    result = in_namespace(ONE_INSTANCE, NO_INSTANCE_LEFT, shm)
    assert result["backends"] == ["polling"]
    assert result["created"] == ["new"]
    (warning,) = result["warnings"]
    assert "watched with polling instead of inotify" in warning
    assert "raise /proc/sys/user/max_inotify_instances" in warning
    assert "raise /proc/sys/user/max_inotify_instances" in result["forced"]
    assert "polling" in result["forced"]  # available instead
    code, shown = result["backends_cli"]
    assert code == 0
    assert "inotify  unavailable" in shown
    assert "the inotify instance limit (1 per user) is reached" in shown
    assert "watch would use: polling" in shown
    code, printed, said = result["watch_cli"]
    assert code == 0, said
    assert printed.split() == ["created", os.path.join(shm, "by-cli")]
    assert "warning:" in said
    assert "max_inotify_instances" in said


THE_LAST_INSTANCE_TAKEN = textwrap.dedent(
    """
    import ctypes, json, os, sys
    import crosswatch
    from crosswatch._plugins import Plugins
    from crosswatch.testing import collect
    from crosswatch_inotify import InotifyBackend
    root = sys.argv[1]
    libc = ctypes.CDLL(None, use_errno=True)
    said, taken = [], []

    class Racing(InotifyBackend):
        @classmethod
        def probe(cls, path):
            result = super().probe(path)
            said.append(result.available)
            taken.append(libc.inotify_init1(0))  # another program takes the last one
            return result

    warnings = []
    plugins = Plugins(autoload=False, extra=[Racing])
    with crosswatch.Watcher(root, plugins=plugins, poll_interval=0.05,
                            on_warning=warnings.append) as w:
        backends = sorted(w.backends.values())
        open(os.path.join(root, "new"), "w").close()
        events = collect(w, lambda ev: any(e.kind.value == "created" for e in ev), timeout=20)
    print(json.dumps({
        "probe_said_yes": said == [True] and taken[0] >= 0,
        "backends": backends,
        "warnings": warnings,
        "created": [os.path.basename(e.path) for e in events if e.kind.value == "created"],
    }))
    """
)


def test_an_instance_limit_reached_after_the_probe_falls_back_too(shm: str) -> None:
    result = in_namespace(ONE_INSTANCE, THE_LAST_INSTANCE_TAKEN, shm)
    assert result["probe_said_yes"]
    assert result["backends"] == ["polling"]
    assert result["created"] == ["new"]
    (warning,) = result["warnings"]
    assert "watched with polling instead of inotify" in warning
    assert "raise /proc/sys/user/max_inotify_instances" in warning


# ------------------------------------------------------------------ storms


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("paused", [False, True], ids=["full-speed", "reader-paused"])
def test_a_mirror_converges_under_a_storm(shm: str, seed: int, paused: bool) -> None:
    """Ten processes create, write, rename and delete at random; the mirror ends true.

    Paused: the consumer reads nothing while the storm runs and ``max_queue`` is
    small, so the engine stops draining the kernel and its queue overflows.
    """
    from crosswatch.testing._storm import reading, storm

    # The burst gets a root of its own, out of the writers' reach, watched by the
    # same watcher: it floods the same kernel queue.
    burst_root = os.path.join(os.path.dirname(shm), "burst")
    os.mkdir(burst_root)
    with Watcher(shm, burst_root, backend="inotify", max_queue=50 if paused else 100_000) as w:
        mirror = Mirror.of(shm, burst_root)
        burst = None
        with reading(w, paused=paused) as consumed:
            if paused:  # more events than the kernel queue holds (16,384 by default)
                burst = subprocess.Popen([sys.executable, "-c", CREATOR, burst_root, "30000"])
            storm(shm, processes=10, seconds=3.0, seed=seed)
            if burst is not None:
                assert burst.wait(timeout=120) == 0
        mirror.apply(consumed)
        rest = converge(w, mirror, timeout=60)
    if paused:
        assert Change.RESCAN in {e.kind for e in rest}


# -------------------------------------------------------- mounts, idle, trials


def test_a_file_system_mounted_inside_the_tree_is_rescanned(shm: str) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8)")
    point = os.path.join(shm, "mnt")
    os.mkdir(point)
    Path(point, "under").write_text("hidden by the mount")
    with Watcher(shm, backend="inotify") as w:
        mirror = Mirror.of(shm)
        if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point]).returncode != 0:
            pytest.skip("cannot mount tmpfs here")
        try:
            events = converge(w, mirror)  # inotify says nothing; the mount table does
            assert (Change.CREATED, point) in [(e.kind, e.path) for e in events]
            Path(point, "inside").write_text("on the mounted file system")
            events = converge(w, mirror)
            assert [e.kind for e in events if e.path == os.path.join(point, "inside")][:1] == [
                Change.CREATED
            ]
        finally:
            subprocess.run(["umount", point], check=True)
        events = converge(w, mirror)  # IN_UNMOUNT: the directory below shows again
        assert (Change.CREATED, os.path.join(point, "under")) in [(e.kind, e.path) for e in events]


def test_a_file_system_mounted_before_the_start_is_watched_inside(shm: str) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8)")
    point = os.path.join(shm, "mnt")
    os.makedirs(os.path.join(point, "below"))
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        os.mkdir(os.path.join(point, "sub"))
        for name in ("f", "g"):
            Path(point, "sub", name).write_text("on the mounted file system")
        with Watcher(shm, backend="inotify") as w:
            mirror = Mirror.of(shm)
            os.unlink(os.path.join(point, "sub", "f"))  # known from the first reading
            events = converge(w, mirror)
            assert [(e.kind, e.path) for e in events] == [
                (Change.DELETED, os.path.join(point, "sub", "f")),
            ]
            Path(point, "sub", "g").write_text("changed")
            events = converge(w, mirror)
            assert (Change.MODIFIED, os.path.join(point, "sub", "g")) in [
                (e.kind, e.path) for e in events
            ]
    finally:
        subprocess.run(["umount", point], check=True)


def context_switches(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as f:
        return sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)


def test_an_idle_watcher_never_wakes_up(shm: str) -> None:
    for d in range(50):
        os.makedirs(os.path.join(shm, f"d{d}", "sub"))
    with Watcher(shm, backend="inotify") as w:
        Path(shm, "f").write_text("x")
        assert collect(w, bool, timeout=10)
        thread = next(t for t in threading.enumerate() if t.name == "crosswatch")
        assert thread.native_id is not None
        # Let it go back to sleep after that batch, and past the one recheck of the
        # mount table that follows inotify data (a second later, then never again).
        time.sleep(1.5)
        for _ in range(5):  # a window in which the mount table (which wakes it) stood still
            table = Path("/proc/self/mountinfo").read_text()
            before = context_switches(thread.native_id)
            time.sleep(3)
            after = context_switches(thread.native_id)
            if Path("/proc/self/mountinfo").read_text() == table:
                break
    assert after == before, "the watcher's thread woke up while nothing happened"


MKDIR_P = """
import os, sys
for i in range(int(sys.argv[2])):
    deep = os.path.join(sys.argv[1], f"t{i}", "a", "b", "c")
    os.makedirs(deep)
    open(os.path.join(deep, "f"), "w").close()
"""


def test_mkdir_p_then_touch_reports_each_entry_exactly_once(shm: str) -> None:
    with Watcher(shm, backend="inotify") as w:
        mirror = Mirror.of(shm)  # strict: a duplicate or out-of-order event fails here
        subprocess.run([sys.executable, "-c", MKDIR_P, shm, "200"], check=True)
        events = converge(w, mirror)
    created = [e.path for e in events if e.kind is Change.CREATED]
    assert len(created) == len(set(created)) == 200 * 5


def test_names_with_newlines_and_invalid_utf8(shm: str) -> None:
    with Watcher(shm, backend="inotify") as w:
        mirror = Mirror.of(shm)
        odd = os.path.join(shm, "line\nbreak")
        os.mkdir(odd)
        Path(odd, "tab\there").write_text("x")
        raw = os.path.join(os.fsencode(odd), b"\xff\xfe name")
        with open(raw, "w"):
            pass
        events = converge(w, mirror)
    assert os.path.join(odd, "tab\there") in {e.path for e in events}
    assert raw in {os.fsencode(e.path) for e in events}


class _RemovingBackend(InotifyBackend):
    """Removes each ``gone*`` directory right after watching it (before the listing),
    and ``later`` when ``keep`` is watched (before or after its own turn)."""

    def watch(self, path: str, *, recursive: bool) -> int:
        handle = super().watch(path, recursive=recursive)
        name = os.path.basename(path)
        if name.startswith("gone"):
            shutil.rmtree(path)
        elif name == "keep":
            shutil.rmtree(os.path.join(os.path.dirname(path), "later"), ignore_errors=True)
        return handle


def _watched_inodes(backend: InotifyBackend) -> set[int]:
    """The inodes the kernel holds a watch on for ``backend`` (its fdinfo lines)."""
    with open(f"/proc/self/fdinfo/{backend._fd}") as info:
        lines = [line.split() for line in info if line.startswith("inotify ")]
    return {int(field[4:], 16) for fields in lines for field in fields if field.startswith("ino:")}


def test_directories_removed_while_the_first_reading_scans_them(shm: str) -> None:
    for sub in ("keep/in", "gone1/x/y", "gone2", "later/z"):
        os.makedirs(os.path.join(shm, sub))
        Path(shm, sub, "f").write_text("x")
    warnings: list[str] = []
    engine = Engine(pair_wait=0.0, warn=warnings.append)
    backend = _RemovingBackend()
    try:
        root = engine.add_root(shm, backend)
        while observations := backend.read():  # what the kernel queued for the removals
            feed(engine, backend, observations)
        engine.expire(float("inf"))
        cached = {n.path(): n.is_dir for n in root.node.walk() if n is not root.node}
        disk = {p: d for p, d in snapshot(shm).items() if p != shm}
        assert cached == disk
        assert sorted(disk) == [os.path.join(shm, p) for p in ("keep", "keep/in", "keep/in/f")]
        # Each removed directory the root's listing had found is reported deleted,
        # once (its subtree goes with it); one never listed is left out.
        reported = sorted((e.kind, e.path, e.is_dir) for e in engine.take())
        gone = [(Change.DELETED, os.path.join(shm, n), True) for n in ("gone1", "gone2", "later")]
        assert reported == gone
        assert warnings == []
        # no watch is left for a removed directory: only keep, keep/in and the root
        # (and the directories above it, watched for the root's path)
        kept = [p for p, is_dir in sorted(disk.items()) if is_dir]
        above = {os.stat(p).st_ino for p in Path(shm).parents}
        assert _watched_inodes(backend) - above == {os.stat(p).st_ino for p in [shm, *kept]}
    finally:
        backend.close()


# ---------------------------------------------------------- close() during start()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _tree(top: str, dirs: int) -> None:
    for i in range(dirs // 100):
        for j in range(100):
            os.makedirs(os.path.join(top, f"d{i}", f"e{j}"))


@pytest.mark.parametrize("backend", ["inotify", "polling"])
def test_close_from_another_thread_while_starting_is_quiet(shm: str, backend: str) -> None:
    """4,100 directories: the close lands while start() reads them."""
    _tree(shm, 4100)
    before = _fds()
    said: list[str] = []
    w = Watcher(shm, backend=backend, on_warning=said.append)
    began = threading.Event()

    def close_soon() -> None:
        began.wait()
        time.sleep(0.02)
        w.close()

    closer = threading.Thread(target=close_soon)
    closer.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        began.set()
        w.start()
        closer.join()
        assert list(w) == []
    assert said == []
    assert caught == []
    assert w.closed
    assert _fds() == before


class _ClosedAtTheHundredth(InotifyBackend):
    """The 100th directory's watch closes the watcher from another thread, then goes on."""

    watcher: Watcher | None = None
    calls = 0

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        handle = super().watch(path, recursive=recursive)
        cls = type(self)
        cls.calls += 1
        if cls.calls == 100:
            assert cls.watcher is not None
            threading.Thread(target=cls.watcher.close).start()
            deadline = time.monotonic() + 10
            while not cls.watcher.closed and time.monotonic() < deadline:
                time.sleep(0.01)
        return handle


def test_close_while_starting_stops_at_the_next_directory(shm: str) -> None:
    _tree(shm, 4100)
    before = _fds()
    said: list[str] = []
    w = Watcher(shm, backend=_ClosedAtTheHundredth, on_warning=said.append)
    _ClosedAtTheHundredth.watcher = w
    assert w.start() is w
    assert w.closed
    w.close()
    assert _ClosedAtTheHundredth.calls == 100  # not one directory more
    assert said == []
    assert _fds() == before


# ------------------------------------------------------------ paths past PATH_MAX


def test_a_directory_past_path_max_is_watched_through_a_descriptor(shm: str) -> None:
    top = os.path.join(shm, "top")
    make_chain(top, "dir", 1100)
    deep = top + "/dir" * 1100
    assert len(os.fsencode(deep)) > 4096
    backend = InotifyBackend()
    try:
        fds = open_fds()
        wd = backend.watch(deep, recursive=False)
        assert backend.watch(deep, recursive=False) == wd  # one inode, one watch
        assert open_fds() == fds  # the descriptors on the way are closed
        touch(deep, "f")
        assert [
            (o.handle, o.name, o.action)
            for o in backend.read()
            if isinstance(o, EntryChange) and o.action is Action.CREATED
        ] == [(wd, "f", Action.CREATED)]
    finally:
        backend.close()
        remove_tree(top)


NO_PROC = textwrap.dedent(
    """
    import json, os, sys
    import crosswatch
    from crosswatch.testing import collect
    from crosswatch.testing._deep import make_chain, touch
    root = sys.argv[1]
    make_chain(root + "/top", "dir", 1100)
    deep = root + "/top" + "/dir" * 1100
    warnings = []
    with crosswatch.Watcher(root, backend="inotify", poll_interval=0.1,
                            on_warning=warnings.append) as w:
        touch(deep, "f")
        events = collect(w, lambda ev: any(e.path == deep + "/f" for e in ev), timeout=20)
    print(json.dumps({
        "warnings": warnings,
        "events": [[e.kind.value, e.path.count("/dir")] for e in events],
    }))
    """
)


def test_without_proc_paths_past_path_max_are_polled_and_told_once(shm: str) -> None:
    try:
        result = in_namespace("mount -t tmpfs none /proc", NO_PROC, shm, mounts=True)
    finally:
        if os.path.isdir(os.path.join(shm, "top")):
            remove_tree(os.path.join(shm, "top"))  # too deep for the fixture's rmtree
    assert result["events"] == [["created", 1100]]
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "/proc/self/fd, which is not mounted here" in result["warnings"][0]
    assert "polled" in result["warnings"][0]

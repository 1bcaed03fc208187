"""The fanotify backend against the real kernel: pids, what lies outside, renames, mounts."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from crosswatch_fanotify import FanotifyBackend, _abi, _sys

import crosswatch
from crosswatch import BackendUnavailableError, Change, Watcher
from crosswatch.testing import FoldingFS, Mirror, collect, converge, open_fds
from crosswatch.testing._storm import reading

WRITE = "import sys; open(sys.argv[1], 'w').write('from a child')"
#: Waits for a line on stdin, then writes: its pid is known before it acts.
WRITE_WHEN_TOLD = "import sys; sys.stdin.readline(); open(sys.argv[1], 'w').write('told')"
CREATOR = textwrap.dedent(
    """
    import os, sys
    for i in range(int(sys.argv[2])):
        open(os.path.join(sys.argv[1], f"f{i}"), "w").close()
    """
)


def paths_of(events: list[crosswatch.Event]) -> set[str]:
    return {e.path for e in events} | {e.src_path for e in events if e.src_path}


def has(kind: Change, path: str):  # type: ignore[no-untyped-def]
    return lambda events: any(e.kind is kind and e.path == path for e in events)


# ------------------------------------------------------------------ pids


def test_each_change_carries_the_pid_of_the_process_that_made_it(shm: str) -> None:
    target = os.path.join(shm, "made-by-child")
    with Watcher(shm, backend="fanotify") as w:
        child = subprocess.Popen([sys.executable, "-c", WRITE, target])
        assert child.wait(timeout=60) == 0
        own = os.path.join(shm, "made-here")
        Path(own).write_text("by the watching process")
        events = collect(w, has(Change.CREATED, own))
    by_path = {(e.kind, e.path): e.pid for e in events}
    assert by_path[(Change.CREATED, target)] == child.pid
    assert by_path[(Change.CREATED, own)] == os.getpid()


def test_a_rename_carries_the_pid_too(shm: str) -> None:
    Path(shm, "a").write_text("x")
    with Watcher(shm, backend="fanotify") as w:
        mv = subprocess.Popen(["mv", os.path.join(shm, "a"), os.path.join(shm, "b")])
        assert mv.wait(timeout=60) == 0
        events = collect(w, has(Change.MOVED, os.path.join(shm, "b")))
    (moved,) = [e for e in events if e.kind is Change.MOVED]
    assert moved.pid == mv.pid


def test_the_watching_process_own_changes_are_left_out_on_request(shm: str) -> None:
    theirs = os.path.join(shm, "theirs")
    with Watcher(shm, backend="fanotify", ignore_own=True) as w:
        os.mkdir(os.path.join(shm, "mine"))
        Path(shm, "mine", "inside").write_text("mine")
        Path(shm, "mine.txt").write_text("mine")
        os.rename(os.path.join(shm, "mine.txt"), os.path.join(shm, "mine-renamed.txt"))
        child = subprocess.Popen([sys.executable, "-c", WRITE, theirs])
        assert child.wait(timeout=60) == 0
        events = collect(w, has(Change.CREATED, theirs), settle=0.5)
        # The cache followed the changes left out: the child's edit of a file the
        # watcher made is reported as the change it is.
        edit = subprocess.Popen(["touch", os.path.join(shm, "mine-renamed.txt")])
        assert edit.wait(timeout=60) == 0
        later = collect(w, lambda ev: any(e.pid == edit.pid for e in ev))
    assert [(e.kind, e.path) for e in events] == [
        (Change.CREATED, theirs), (Change.MODIFIED, theirs)
    ]
    assert {e.pid for e in events} == {child.pid}
    assert (Change.ATTRIB, os.path.join(shm, "mine-renamed.txt")) in [
        (e.kind, e.path) for e in later
    ]


def test_changes_made_by_given_pids_are_left_out(shm: str) -> None:
    quiet, loud = os.path.join(shm, "quiet"), os.path.join(shm, "loud")
    told = [sys.executable, "-c", WRITE_WHEN_TOLD, quiet]
    with subprocess.Popen(told, stdin=subprocess.PIPE) as left_out:
        try:
            with Watcher(shm, backend="fanotify", ignore_pids=[left_out.pid]) as w:
                assert left_out.stdin is not None
                left_out.stdin.write(b"go\n")
                left_out.stdin.close()
                assert left_out.wait(timeout=60) == 0
                other = subprocess.Popen([sys.executable, "-c", WRITE, loud])
                assert other.wait(timeout=60) == 0
                events = collect(w, has(Change.CREATED, loud), settle=0.5)
        finally:
            left_out.kill()
    assert [(e.kind, e.path) for e in events] == [(Change.CREATED, loud), (Change.MODIFIED, loud)]
    assert {e.pid for e in events} == {other.pid}


def test_pids_asked_for_select_fanotify_and_inotify_is_refused(shm: str) -> None:
    with Watcher(shm, pids=True) as w:
        assert w.backends == {shm: "fanotify"}
    with pytest.raises(BackendUnavailableError, match="cannot report the pid of each change"):
        Watcher(shm, backend="inotify", ignore_own=True).start()


# ------------------------------------------------------------------ what lies outside


@pytest.mark.parametrize("paused", [False, True], ids=["reading", "reader-paused"])
def test_activity_elsewhere_on_the_file_system_never_reaches_the_stream(
    shm: str, paused: bool
) -> None:
    """A sibling tree on the same tmpfs is flooded; only the root's own changes come.

    Paused: the consumer reads nothing while the flood runs, so the kernel queue
    (16,384 events) overflows; the engine rescans the root, and still nothing from
    outside it is reported.
    """
    elsewhere = os.path.join(os.path.dirname(shm), "elsewhere")
    os.mkdir(elsewhere)
    marker = os.path.join(shm, "marker")
    with Watcher(shm, backend="fanotify", max_queue=50 if paused else 100_000) as w:
        mirror = Mirror.of(shm)
        if paused:  # the watcher's queue full, it stops reading the kernel's
            for i in range(200):
                Path(shm, f"early{i}").write_text("x")
            deadline = time.monotonic() + 60
            while not w.backlog.paused and time.monotonic() < deadline:
                time.sleep(0.01)
            assert w.backlog.paused
        with reading(w, paused=paused) as consumed:
            flood = subprocess.Popen([sys.executable, "-c", CREATOR, elsewhere, "30000"])
            Path(shm, "during").write_text("x")
            assert flood.wait(timeout=300) == 0
            Path(marker).write_text("x")
        mirror.apply(consumed)
        rest = converge(w, mirror, timeout=60)
    events = consumed + rest
    assert marker in paths_of(events)
    assert all(p == shm or p.startswith(shm + os.sep) for p in paths_of(events))
    if paused:
        assert Change.RESCAN in {e.kind for e in rest}


# ------------------------------------------------------------------ renames


def test_renames_across_directories_are_paired_without_waiting(shm: str) -> None:
    """The kernel pairs both ends: the move comes long before an unpaired half would
    be given up on (``pair_wait``)."""
    for name in ("a", "b"):
        os.mkdir(os.path.join(shm, name))
    Path(shm, "a", "f").write_text("x")
    os.mkdir(os.path.join(shm, "a", "d"))
    Path(shm, "a", "d", "inside").write_text("y")
    with Watcher(shm, backend="fanotify", pair_wait=120) as w:
        mirror = Mirror.of(shm)
        os.rename(os.path.join(shm, "a", "f"), os.path.join(shm, "b", "g"))
        os.rename(os.path.join(shm, "a", "d"), os.path.join(shm, "b", "e"))
        events = collect(w, has(Change.MOVED, os.path.join(shm, "b", "e")), timeout=60)
        mirror.apply(events)
        converge(w, mirror)
    moves = [(e.kind, e.src_path, e.path) for e in events]
    assert moves == [
        (Change.MOVED, os.path.join(shm, "a", "f"), os.path.join(shm, "b", "g")),
        (Change.MOVED, os.path.join(shm, "a", "d"), os.path.join(shm, "b", "e")),
    ]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_name_made_again_after_its_rename_is_reported(shm: str, kind: str) -> None:
    """Read paused, the kernel folds the second creation of ``x`` into the first
    one's event, still unread: what is read says ``x`` was made, then renamed to
    ``y``, and nothing after. The engine looks at both names again."""

    def make(path: str) -> None:
        if kind == "file":
            Path(path).write_text("x")
        else:
            os.mkdir(path)

    with Watcher(shm, backend="fanotify", max_queue=1) as w:
        mirror = Mirror.of(shm)
        Path(shm, "hold").touch()
        deadline = time.monotonic() + 30
        while not w.backlog.paused:
            assert time.monotonic() < deadline, "reading never paused"
            time.sleep(0.01)
        make(os.path.join(shm, "x"))
        os.rename(os.path.join(shm, "x"), os.path.join(shm, "y"))
        make(os.path.join(shm, "x"))
        converge(w, mirror)


class NoRename(_sys.Kernel):
    """A kernel before Linux 5.17: marks that ask for FAN_RENAME are refused."""

    def mark(self, fd: int, flags: int, mask: int, dirfd: int) -> None:
        if flags & _abi.FAN_MARK_ADD and mask & _abi.FAN_RENAME:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        super().mark(fd, flags, mask, dirfd)


class OldKernel(_sys.Kernel):
    """A kernel before Linux 5.9: no FAN_REPORT_DFID_NAME."""

    def init(self, flags: int) -> int:
        if flags & _abi.FAN_REPORT_NAME:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return super().init(flags)


def test_without_fan_rename_the_unpaired_halves_still_make_moves(
    shm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FanotifyBackend, "kernel", NoRename)
    probed = FanotifyBackend.probe(shm)
    assert probed.available
    assert "FAN_RENAME needs Linux 5.17" in probed.reason
    for name in ("a", "b"):
        os.mkdir(os.path.join(shm, name))
    Path(shm, "a", "f").write_text("x")
    with Watcher(shm, backend="fanotify") as w:
        mirror = Mirror.of(shm)
        os.rename(os.path.join(shm, "a", "f"), os.path.join(shm, "b", "g"))
        os.rename(os.path.join(shm, "b"), os.path.join(shm, "c"))
        events = converge(w, mirror)
    assert [(e.kind, e.src_path, e.path) for e in events] == [
        (Change.MOVED, os.path.join(shm, "a", "f"), os.path.join(shm, "b", "g")),
        (Change.MOVED, os.path.join(shm, "b"), os.path.join(shm, "c")),
    ]


# ------------------------------------------------------------------ what the kernel says of itself


def test_a_directory_s_own_attributes_are_reported(shm: str) -> None:
    sub = os.path.join(shm, "sub")
    os.mkdir(sub)
    with Watcher(shm, backend="fanotify") as w:
        os.chmod(sub, 0o700)
        events = collect(w, has(Change.ATTRIB, sub), settle=0.3)
    assert [(e.kind, e.path) for e in events] == [(Change.ATTRIB, sub)]


# ------------------------------------------------------------------ the probe, and bad input


def test_an_old_kernel_is_named_in_the_probe_and_auto_takes_inotify(
    shm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FanotifyBackend, "kernel", OldKernel)
    probed = FanotifyBackend.probe(shm)
    assert not probed.available
    assert "needs Linux 5.9 or later (FAN_REPORT_DFID_NAME)" in probed.reason
    with Watcher(shm) as w:
        assert w.backends == {shm: "inotify"}
    with pytest.raises(BackendUnavailableError, match=r"FAN_REPORT_DFID_NAME.*\n.*"):
        Watcher(shm, pids=True).start()


PROBE = "import sys; from crosswatch_fanotify import FanotifyBackend; " \
    "print(FanotifyBackend.probe(sys.argv[1]))"
PR_CAPBSET_DROP, CAP_SYS_ADMIN = 24, 21


def _without_cap_sys_admin() -> None:
    """In the child, before exec: CAP_SYS_ADMIN out of the bounding set, so that even
    root runs the probe without it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0:
        os._exit(99)


def test_without_privilege_the_probe_says_what_is_missing(shm: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", PROBE, shm], capture_output=True, text=True,
                         env=env, timeout=60, preexec_fn=_without_cap_sys_admin)
    assert out.returncode == 0, out.stderr
    assert "available=False" in out.stdout
    assert "needs CAP_SYS_ADMIN (run as root)" in out.stdout


def test_a_file_system_without_handles_is_named_and_another_backend_watches_it(
    fanotify: None, tmp_path: Path
) -> None:
    backing = tmp_path / "backing"
    backing.mkdir()
    with FoldingFS(str(backing)) as fs:
        probed = FanotifyBackend.probe(fs.mountpoint)
        assert not probed.available
        assert "fuse gives no file handles" in probed.reason
        with Watcher(fs.mountpoint) as w:
            assert w.backends[fs.mountpoint] != "fanotify"
        with pytest.raises(BackendUnavailableError, match="fuse gives no file handles"):
            Watcher(fs.mountpoint, ignore_own=True).start()


# ------------------------------------------------------------------ mounts


def mount_tmpfs(point: str) -> None:
    if not shutil.which("mount"):
        pytest.skip("needs mount(8)")
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")


def test_another_file_system_mounted_inside_the_tree_is_marked_too(shm: str) -> None:
    before, after = os.path.join(shm, "before"), os.path.join(shm, "after")
    os.mkdir(before)
    os.mkdir(after)
    mount_tmpfs(before)
    try:
        Path(before, "old").write_text("there before watching")
        with Watcher(shm, backend="fanotify") as w:
            mirror = Mirror.of(shm)
            mount_tmpfs(after)
            try:
                converge(w, mirror)  # the mount table says it
                Path(before, "new").write_text("x")
                os.mkdir(os.path.join(after, "d"))
                Path(after, "d", "f").write_text("y")
                events = converge(w, mirror)
            finally:
                subprocess.run(["umount", after], check=True)
            converge(w, mirror)  # the unmounted directory's contents are gone again
    finally:
        subprocess.run(["umount", before], check=True)
    assert (Change.CREATED, os.path.join(before, "new")) in [(e.kind, e.path) for e in events]


def test_a_mount_without_handles_inside_the_tree_is_polled(shm: str) -> None:
    """A FUSE file system bound inside the tree cannot be marked: it is polled instead,
    and the watcher says so."""
    if not shutil.which("mount"):
        pytest.skip("needs mount(8)")
    backing = os.path.join(os.path.dirname(shm), "backing")
    point = os.path.join(shm, "fuse")
    os.mkdir(backing)
    os.mkdir(point)
    warned: list[str] = []
    with FoldingFS(backing) as fs:
        subprocess.run(["mount", "--bind", fs.mountpoint, point], check=True)
        try:
            Path(point, "there").write_text("before watching")
            with Watcher(shm, backend="fanotify", poll_interval=0.05,
                         on_warning=warned.append) as w:
                mirror = Mirror.of(shm)
                Path(point, "new").write_text("seen by polling")
                Path(shm, "beside").write_text("seen by fanotify")
                events = converge(w, mirror)
        finally:
            subprocess.run(["umount", point], check=True)
    assert {os.path.join(point, "new"), os.path.join(shm, "beside")} <= paths_of(events)
    assert any("no file handles" in message for message in warned), warned


def test_a_root_that_is_a_mount_point_is_watched(shm: str) -> None:
    mount_tmpfs(shm)
    try:
        with Watcher(shm, backend="fanotify") as w:
            mirror = Mirror.of(shm)
            os.mkdir(os.path.join(shm, "d"))
            Path(shm, "d", "f").write_text("x")
            converge(w, mirror)
    finally:
        subprocess.run(["umount", shm], check=True)


# ------------------------------------------------------------------ resources


def test_close_releases_the_group_and_its_marks(shm: str) -> None:
    before = open_fds()
    os.mkdir(os.path.join(shm, "d"))
    w = Watcher(shm, backend="fanotify").start()
    Path(shm, "d", "f").write_text("x")
    collect(w, has(Change.CREATED, os.path.join(shm, "d", "f")))
    w.close()
    assert open_fds() == before


# ------------------------------------------------------------------ the command line


def test_the_command_line_asks_for_pids_and_leaves_out_a_pid(shm: str) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "crosswatch", "backends", "--pids", "--json", shm],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert '"choice": "fanotify"' in listed.stdout
    quiet = [sys.executable, "-c", WRITE_WHEN_TOLD, os.path.join(shm, "quiet")]
    # As context managers, the processes' pipes are closed here, not by a collection
    # of garbage in some later test that counts descriptors.
    with subprocess.Popen(quiet, stdin=subprocess.PIPE) as left_out, subprocess.Popen(
        [sys.executable, "-m", "crosswatch", "watch", "--ignore-pid", str(left_out.pid),
         "--format", "{kind} {pid} {path}", shm],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as watch:
        try:
            assert watch.stderr is not None
            assert watch.stdout is not None
            assert b"watching" in watch.stderr.readline()  # established
            assert left_out.stdin is not None
            left_out.stdin.write(b"go\n")
            left_out.stdin.close()
            assert left_out.wait(timeout=60) == 0
            loud = subprocess.Popen([sys.executable, "-c", WRITE, os.path.join(shm, "loud")])
            assert loud.wait(timeout=60) == 0
            line = watch.stdout.readline().decode()
        finally:
            watch.terminate()
            left_out.kill()
    assert line == f"created {loud.pid} {os.path.join(shm, 'loud')}\n"


# ------------------------------------------------------------------ selection


def test_auto_prefers_inotify_until_the_tree_outgrows_its_watches(
    shm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crosswatch_inotify import _limits

    for i in range(40):
        os.mkdir(os.path.join(shm, f"d{i}"))
    with Watcher(shm) as w:
        assert w.backends == {shm: "inotify"}
    # Few inotify watches left for this user (as after another program took them):
    # the tree does not fit, and fanotify needs none.
    monkeypatch.setattr(_limits, "watch_limit", lambda: 30)
    report = crosswatch.probe(shm)
    assert report.choice == "fanotify", report.reason
    with Watcher(shm) as w:
        assert w.backends == {shm: "fanotify"}


def fanotify_marks(watcher: Watcher) -> list[str]:
    """The marks of the watcher's fanotify group, as the kernel lists them."""
    fd = watcher.backend("fanotify")._fd  # type: ignore[attr-defined]
    with open(f"/proc/self/fdinfo/{fd}") as f:
        return [line for line in f if line.startswith("fanotify ") and "sdev:" in line]


def test_the_directories_above_a_root_are_marked_alone_not_their_file_systems(
    shm: str,
) -> None:
    """A whole-file-system mark above the root (``/``, say) would wake the watcher for
    every change there: the fate of the path to the root is watched by inode marks."""
    with Watcher(shm, backend="fanotify") as w:
        marks = fanotify_marks(w)
    whole = [m for m in marks if " ino:" not in m]
    assert len(whole) == 1, marks  # the root's own file system
    assert len(marks) == 1 + len([p for p in Path(shm).parents if p != Path("/")])


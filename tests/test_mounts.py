"""The mount table: parsing, lookups, mounts over and under watched trees, virtual file
systems."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import crosswatch
from crosswatch import Change, Watcher, _mounts
from crosswatch._errors import BackendUnavailableError, CrosswatchWarning
from crosswatch._plugins import Plugins
from crosswatch.testing import Mirror, converge, ends_with, linux_only, needs_posix_paths, tmpfs

# Lines as the kernel writes them (proc_pid_mountinfo(5)): optional fields before the
# "-", octal escapes for space, tab, newline and backslash, raw bytes otherwise.
TABLE = (
    b"21 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    b"22 21 0:21 / /proc rw,nosuid - proc proc rw\n"
    b"23 21 0:22 / /sys rw shared:2 master:7 - sysfs sysfs rw\n"
    b"24 23 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    b"25 21 0:30 / /srv/with\\040space\\011tab\\012nl\\134bs rw - tmpfs my\\040src rw\n"
    b"26 21 0:31 /sub /srv/caf\xe9 rw - ext4 /dev/vdb rw\n"
    b"27 21 0:32 / /data rw - tmpfs tmpfs rw\n"
    b"28 27 0:33 / /data/inner rw - xfs /dev/vdc rw\n"
    b"29 27 0:34 / /data rw - btrfs /dev/vdd rw\n"
    b"30 21 0:35 / /a/b rw - xfs /dev/vde rw\n"
    b"31 21 0:36 / /a rw - nfs server:/x rw\n"
    b"not a mount line\n"
    b"32 21 bad / /broken rw - ext4 x rw\n"
    b"\n"
)


def table() -> list[_mounts.Mount]:
    return _mounts.parse(TABLE)


def test_lines_are_parsed_with_their_escapes_undone() -> None:
    parsed = table()
    assert [m.id for m in parsed] == list(range(21, 32))  # bad lines skipped
    assert parsed[0] == _mounts.Mount(21, 1, (254, 0), "/", "/", "ext4", "/dev/vda")
    assert parsed[4].point == "/srv/with space\ttab\nnl\\bs"
    assert parsed[4].source == "my src"
    assert os.fsencode(parsed[5].point) == b"/srv/caf\xe9"
    assert parsed[5].root == "/sub"
    assert parsed[2].fs_type == "sysfs"  # past two optional fields


def test_unescape_takes_only_three_octal_digits() -> None:
    assert _mounts.unescape(b"a\\040b\\0401\\134\\x") == b"a b 1\\\\x"


def test_the_mount_a_path_is_on() -> None:
    t = table()

    def on(path: str) -> int | None:
        found = _mounts.mount_of(path, t)
        return None if found is None else found.id

    assert on("/") == 21
    assert on("/home/user") == 21
    assert on("/proc") == 22
    assert on("/proc/1/status") == 22
    assert on("/processes") == 21  # a prefix of the name is not a parent
    assert on("/sys/fs/cgroup/pids/x") == 24
    assert on("/srv/with space\ttab\nnl\\bs/f") == 25
    assert on(os.fsdecode(b"/srv/caf\xe9/f")) == 26
    assert on("/data/f") == 29  # stacked on 27 at the same point: the last one shows
    assert on("/data/inner/f") == 29  # 28 is on 27, which 29 hides
    assert on("/a/b/f") == 31  # /a mounted after /a/b hides it
    assert _mounts.mount_of("/x", []) is None


@needs_posix_paths  # fs_type resolves the table's paths
def test_fs_type_virtual_and_mounts_under() -> None:
    t = table()
    assert _mounts.fs_type("/proc/1", t) == "proc"
    assert _mounts.fs_type("/a/b", t) == "nfs"
    assert _mounts.virtual("/proc/1", t) == "proc"
    assert _mounts.virtual("/sys/fs/cgroup/pids", t) == "cgroup"
    assert _mounts.virtual("/sys/kernel", t) == "sysfs"
    assert _mounts.virtual("/home", t) is None
    assert [m.id for m in _mounts.under("/data", t)] == [28]
    assert [m.id for m in _mounts.under("/sys", t)] == [24]
    assert _mounts.under("/proc", t) == []


def test_no_table_means_no_claim(tmp_path: Path) -> None:
    assert _mounts.read(str(tmp_path / "missing")) is None
    assert _mounts.fs_type(str(tmp_path), []) is None
    assert _mounts.virtual(str(tmp_path), []) is None


@pytest.mark.skipif(not os.path.exists(_mounts.MOUNTINFO), reason="needs /proc/self/mountinfo")
def test_this_system_table() -> None:
    t = _mounts.read()
    assert t is not None
    assert _mounts.fs_type("/proc/self") == "proc"
    root = _mounts.mount_of("/", t)
    assert root is not None
    assert root.point == "/"
    st = os.stat("/proc")
    proc = _mounts.mount_of("/proc", t)
    assert proc is not None
    assert proc.device == (os.major(st.st_dev), os.minor(st.st_dev))


# ------------------------------------------------------------ virtual file systems


def _cgroup_dir() -> str | None:
    t = _mounts.read() or []
    for m in t:
        if m.fs_type in ("cgroup", "cgroup2") and os.path.isdir(m.point):
            return m.point
    return None


VIRTUAL = [
    pytest.param("/proc", id="proc"),
    pytest.param("/proc/self", id="proc-self"),
    pytest.param("/sys", id="sys"),
    pytest.param(_cgroup_dir(), id="cgroup"),
]


def _virtual(path: str | None) -> str:
    if path is None or not os.path.isdir(path) or _mounts.virtual(path) is None:
        pytest.skip(f"{path} is not a virtual file system here")
    return path


@pytest.mark.parametrize("path", VIRTUAL)
def test_every_probe_and_selection_say_changes_there_are_not_reported(path: str | None) -> None:
    where = _virtual(path)
    kind = _mounts.virtual(where)
    report = crosswatch.probe(where)
    assert report.choice is None
    assert f"changes on {kind} are not reported by the kernel" in report.reason
    # Every backend that could watch here says so; one that cannot run on this OS at
    # all (a macOS or Windows plugin) says that instead, and claims nothing either.
    usable = [r for r in report.results if r.available]
    assert usable
    for result in usable:
        assert f"changes on {kind} are not reported by the kernel" in result.reason
    with pytest.raises(BackendUnavailableError, match="not reported by the kernel"):
        Watcher(where, recursive=False).start()
    names = list(Plugins().backends)
    if len(names) > 1:
        with pytest.raises(BackendUnavailableError, match="not reported by the kernel"):
            Watcher(where, backend=names, recursive=False).start()


@pytest.mark.parametrize("path", VIRTUAL)
def test_a_forced_backend_watches_there_with_a_warning(path: str | None) -> None:
    where = _virtual(path)
    report = crosswatch.probe(where, backend="polling")
    assert report.choice == "polling"
    assert "virtual file system" in report.reason
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Watcher(where, backend="polling", recursive=False) as w:
            assert w.backends == {where: "polling"}
    assert [str(c.message) for c in caught if c.category is CrosswatchWarning] == [
        f"watching with polling: {where!r} is on {_mounts.virtual(where)}, a virtual file "
        "system: the changes the kernel makes there itself are not reported, at most "
        "writes and directories made through file calls"
    ]


def test_the_cli_shows_it() -> None:
    where = _virtual("/proc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROSSWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "crosswatch", "backends", where],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    out = result.stdout.decode()
    assert result.returncode == 4, out
    usable = [r for r in crosswatch.probe(where).results if r.available]
    assert out.count("changes on proc are not reported by the kernel") == 1 + len(usable)
    assert "no backend can watch it: changes on proc are not reported" in out


# ------------------------------------------------------------ real mounts

BACKENDS = [
    "polling",
    pytest.param("inotify", marks=linux_only("the inotify backend")),
    pytest.param("fanotify", marks=linux_only("the fanotify backend")),
]
#: tmpfs and bind mounts made with mount(8), and the kernel's mount table.
REAL_MOUNTS = linux_only("mounts tmpfs and bind mounts with mount(8)")


@pytest.fixture
def shm() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root and mount(8)")
    with tempfile.TemporaryDirectory(dir=tmpfs()) as tmp:
        yield tmp


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in Plugins().backends:
        pytest.skip(f"backend {name!r} is not installed")
    return name


@contextlib.contextmanager
def mounted(point: str, *how: str) -> Iterator[None]:
    """A tmpfs (or ``how``, e.g. ``--bind src``) mounted at ``point``, unmounted after
    unless it was already."""
    args = ["mount", *(how or ("-t", "tmpfs", "tmpfs")), point]
    if subprocess.run(args, capture_output=True).returncode != 0:
        pytest.skip(f"cannot {' '.join(args)}")
    try:
        yield
    finally:
        if os.path.ismount(point) and subprocess.run(["umount", point]).returncode != 0:
            subprocess.run(["umount", "-l", point], check=True)


def watcher(root: str, backend: str) -> Watcher:
    return Watcher(root, backend=backend, poll_interval=0.05)


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("through", ["", "link"])
def test_a_file_system_mounted_over_the_root_ends_it(
    shm: str, backend: str, through: str
) -> None:
    real = os.path.join(shm, "real", "root")
    os.makedirs(real)
    root = real
    if through:  # the root's path goes through a symbolic link; the mount table's does not
        os.symlink("real", os.path.join(shm, through))
        root = os.path.join(shm, through, "root")
    Path(root, "before").write_text("hidden by the mount")
    with watcher(root, backend) as w, mounted(real):
        Path(root, "after").write_text("on the mounted file system")
        assert ends_with(w) == [(Change.DELETED, root)]


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_file_system_mounted_over_a_directory_above_the_root_ends_it(
    shm: str, backend: str
) -> None:
    above = os.path.join(shm, "above")
    root = os.path.join(above, "dir", "root")
    os.makedirs(root)
    with watcher(root, backend) as w, mounted(above):
        os.makedirs(root)  # the same path, on the mounted file system
        Path(root, "f").write_text("x")
        assert ends_with(w) == [(Change.DELETED, root)]


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_file_system_mounted_inside_the_tree_is_reported_and_watched(
    shm: str, backend: str
) -> None:
    source = os.path.join(shm, "source")
    root = os.path.join(shm, "root")
    point = os.path.join(root, "dir", "mnt")
    os.makedirs(source)
    os.makedirs(point)
    Path(point, "under").write_text("hidden by the mount")
    with mounted(source):
        os.makedirs(os.path.join(source, "sub"))
        Path(source, "sub", "f").write_text("on the mounted file system")
        with watcher(root, backend) as w:
            mirror = Mirror.of(root)
            with mounted(point, "--bind", source):
                events = converge(w, mirror)
                # Another directory at the mount point's path: the old one is deleted.
                assert [(e.kind, e.path) for e in events] == [
                    (Change.DELETED, point),
                    (Change.CREATED, point),
                    (Change.CREATED, os.path.join(point, "sub")),
                    (Change.CREATED, os.path.join(point, "sub", "f")),
                ]
                later = os.path.join(point, "sub", "later")
                Path(later).write_text("new")
                events = converge(w, mirror)
                assert [e.kind for e in events if e.path == later][:1] == [Change.CREATED]
                Path(point, "sub", "f").write_text("changed")
                events = converge(w, mirror)
                assert (Change.MODIFIED, os.path.join(point, "sub", "f")) in {
                    (e.kind, e.path) for e in events
                }
            events = converge(w, mirror)  # unmounted: what was below shows again
            assert [(e.kind, e.path) for e in events] == [
                (Change.DELETED, point),
                (Change.CREATED, point),
                (Change.CREATED, os.path.join(point, "under")),
            ]
            Path(point, "under").write_text("watched again")
            events = converge(w, mirror)
            assert (Change.MODIFIED, os.path.join(point, "under")) in {
                (e.kind, e.path) for e in events
            }


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_mount_inside_a_directory_renamed_since_it_was_watched_is_found(
    shm: str, backend: str
) -> None:
    root = os.path.join(shm, "root")
    os.makedirs(os.path.join(root, "old", "mnt"))
    with watcher(root, backend) as w:
        mirror = Mirror.of(root)
        os.rename(os.path.join(root, "old"), os.path.join(root, "new"))
        converge(w, mirror)
        point = os.path.join(root, "new", "mnt")
        with mounted(point):
            Path(point, "f").write_text("on the mounted file system")
            events = converge(w, mirror)
            assert (Change.CREATED, os.path.join(point, "f")) in {(e.kind, e.path) for e in events}
            Path(point, "f").write_text("changed")  # watched there
            events = converge(w, mirror)
            assert (Change.MODIFIED, os.path.join(point, "f")) in {(e.kind, e.path) for e in events}
        converge(w, mirror)


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_root_on_a_file_system_that_is_unmounted_ends(shm: str, backend: str) -> None:
    root = os.path.join(shm, "root")
    os.mkdir(root)
    with mounted(root):
        Path(root, "f").write_text("on the mounted file system")
        with watcher(root, backend) as w:
            subprocess.run(["umount", root], check=True)
            assert ends_with(w) == [(Change.DELETED, root)]


@REAL_MOUNTS
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_mount_beside_the_tree_changes_nothing(shm: str, backend: str) -> None:
    root = os.path.join(shm, "root")
    beside = os.path.join(shm, "beside")
    os.makedirs(os.path.join(root, "sub"))
    os.mkdir(beside)
    with watcher(root, backend) as w:
        mirror = Mirror.of(root)
        with mounted(beside):
            Path(beside, "f").write_text("not watched")
            Path(root, "sub", "g").write_text("watched")
            events = converge(w, mirror)
        assert {e.path for e in events} == {os.path.join(root, "sub", "g")}
        assert w.get(timeout=0.5) == []  # still watching

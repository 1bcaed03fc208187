"""FoldingFS: a real case- and normalization-insensitive file system, through the kernel."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import struct
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from crosswatch import Watcher
from crosswatch.testing import (
    FoldingFS,
    FuseServerError,
    FuseUnavailableError,
    Inotify,
    Mirror,
    _fuse_abi,
    collect,
    converge,
    needs_fuse,
    open_fds,
)
from crosswatch.testing._fuse_server import Server
from crosswatch.testing._inotify import CHANGES, IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO
from crosswatch.testing._storm import storm_and_converge

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the Linux kernel's FUSE protocol")


def mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.fixture
def backing() -> Iterator[str]:
    """The backing store, on tmpfs when there is one."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        yield tmp


@pytest.fixture
def fs(backing: str) -> Iterator[FoldingFS]:
    with FoldingFS(backing) as mounted:
        yield mounted


def at(fs: FoldingFS, *parts: str | bytes) -> str:
    return os.path.join(fs.mountpoint, *(os.fsdecode(p) for p in parts))


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def renameat2(src: str, dst: str, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), ctypes.c_uint(flags)):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), dst)


# ------------------------------------------------------------ folding semantics


@needs_fuse
def test_lookup_ignores_case(fs: FoldingFS) -> None:
    write(at(fs, "ReadMe.txt"), b"hello")
    assert read(at(fs, "README.TXT")) == b"hello"
    assert os.stat(at(fs, "readme.txt")).st_ino == os.stat(fs.behind("ReadMe.txt")).st_ino
    os.mkdir(at(fs, "Src"))
    write(at(fs, "SRC", "Main.py"), b"x")
    assert read(at(fs, "src", "MAIN.PY")) == b"x"
    assert not os.path.exists(at(fs, "ReadMe.txt2"))


@needs_fuse
def test_listing_keeps_the_spelling_an_entry_was_created_with(fs: FoldingFS) -> None:
    for name in ("MixedCase", "lower", "UPPER"):
        write(at(fs, name), b"")
    os.mkdir(at(fs, "SubDir"))
    write(at(fs, "subdir", "Inner"), b"")  # a lookup through another spelling
    assert sorted(os.listdir(fs.mountpoint)) == ["MixedCase", "SubDir", "UPPER", "lower"]
    assert os.listdir(at(fs, "SUBDIR")) == ["Inner"]
    assert sorted(os.listdir(fs.backing)) == ["MixedCase", "SubDir", "UPPER", "lower"]


@needs_fuse
def test_opening_a_folded_name_opens_the_entry_there(fs: FoldingFS) -> None:
    write(at(fs, "a"), b"old")
    write(at(fs, "A"), b"new")  # O_CREAT|O_TRUNC through another spelling
    assert os.listdir(fs.mountpoint) == ["a"]
    assert read(at(fs, "a")) == b"new"


@needs_fuse
def test_exclusive_create_of_a_folded_name_fails(fs: FoldingFS) -> None:
    write(at(fs, "a"), b"")
    with pytest.raises(FileExistsError):
        os.open(at(fs, "A"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.mkdir(at(fs, "Dir"))
    with pytest.raises(FileExistsError):
        os.mkdir(at(fs, "DIR"))
    with pytest.raises(FileExistsError):
        os.symlink("x", at(fs, "DIR"))
    assert sorted(os.listdir(fs.mountpoint)) == ["Dir", "a"]


@needs_fuse
def test_case_only_rename_of_a_file_respells_it_and_keeps_the_inode(fs: FoldingFS) -> None:
    write(at(fs, "a"), b"kept")
    ino = os.stat(at(fs, "a")).st_ino
    os.rename(at(fs, "a"), at(fs, "A"))
    assert os.listdir(fs.mountpoint) == ["A"]
    assert os.listdir(fs.backing) == ["A"]
    assert os.stat(at(fs, "a")).st_ino == ino
    assert os.stat(at(fs, "A")).st_ino == ino
    assert read(at(fs, "A")) == b"kept"


@needs_fuse
def test_case_only_rename_of_a_directory_does_nothing(fs: FoldingFS) -> None:
    """As documented: the kernel sees one inode, and a rename onto itself is a no-op."""
    os.mkdir(at(fs, "d"))
    write(at(fs, "D", "inner"), b"kept")
    os.rename(at(fs, "d"), at(fs, "D"))
    assert os.listdir(fs.backing) == ["d"]
    os.rename(fs.behind("d"), fs.behind("D"))  # respelled behind the kernel's back
    assert os.listdir(fs.mountpoint) == ["D"]
    assert read(at(fs, "d", "inner")) == b"kept"


@needs_fuse
def test_a_directory_is_one_inode_under_every_spelling(fs: FoldingFS) -> None:
    os.mkdir(at(fs, "Dir"))
    ino = Inotify()
    try:
        ino.add(at(fs, "Dir"), CHANGES)
        write(at(fs, "DIR", "f"), b"")
        write(at(fs, "dir", "g"), b"")
        got = [(mask, name) for mask, name, _ in records(ino) if mask == IN_CREATE]
    finally:
        ino.close()
    assert got == [(IN_CREATE, b"f"), (IN_CREATE, b"g")]
    assert os.stat(at(fs, "dir")).st_ino == os.stat(at(fs, "DIR")).st_ino


@needs_fuse
def test_nfc_and_nfd_name_one_entry(fs: FoldingFS) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")
    assert nfc != nfd
    write(at(fs, nfc), b"coffee")
    assert read(at(fs, nfd)) == b"coffee"
    assert read(at(fs, nfd.upper())) == b"coffee"  # and case on top of the form
    with pytest.raises(FileExistsError):
        os.open(at(fs, nfd), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert os.listdir(fs.mountpoint) == [nfc]  # the form it was created in
    os.rename(at(fs, nfc), at(fs, nfd))  # a form-only rename respells it too
    assert os.listdir(fs.mountpoint) == [nfd]


@needs_fuse
def test_rename_onto_a_folded_name_replaces_that_entry(fs: FoldingFS) -> None:
    write(at(fs, "a"), b"from a")
    write(at(fs, "B"), b"from B")
    ino = os.stat(at(fs, "a")).st_ino
    os.rename(at(fs, "a"), at(fs, "b"))
    assert os.listdir(fs.mountpoint) == ["b"]
    assert read(at(fs, "B")) == b"from a"
    assert os.stat(at(fs, "b")).st_ino == ino


@needs_fuse
def test_rename2_noreplace_and_exchange(fs: FoldingFS) -> None:
    write(at(fs, "a"), b"1")
    write(at(fs, "B"), b"2")
    with pytest.raises(FileExistsError):
        renameat2(at(fs, "a"), at(fs, "b"), 1)  # RENAME_NOREPLACE onto a folded name
    renameat2(at(fs, "A"), at(fs, "b"), 2)  # RENAME_EXCHANGE: spellings stay
    assert sorted(os.listdir(fs.mountpoint)) == ["B", "a"]
    assert (read(at(fs, "a")), read(at(fs, "b"))) == (b"2", b"1")
    renameat2(at(fs, "a"), at(fs, "c"), 1)
    assert sorted(os.listdir(fs.mountpoint)) == ["B", "c"]


@needs_fuse
def test_hard_link(fs: FoldingFS) -> None:
    write(at(fs, "File"), b"data")
    os.link(at(fs, "FILE"), at(fs, "Other"))
    assert os.stat(at(fs, "other")).st_ino == os.stat(at(fs, "file")).st_ino
    assert os.stat(at(fs, "other")).st_nlink == 2
    assert sorted(os.listdir(fs.mountpoint)) == ["File", "Other"]
    with pytest.raises(FileExistsError):
        os.link(at(fs, "File"), at(fs, "file"))
    os.unlink(at(fs, "FILE"))
    assert read(at(fs, "Other")) == b"data"
    assert os.stat(at(fs, "other")).st_nlink == 1


@needs_fuse
def test_symlink(fs: FoldingFS) -> None:
    write(at(fs, "Target"), b"pointed at")
    os.symlink("target", at(fs, "Link"))  # the target resolves through the mount, folded
    assert os.readlink(at(fs, "LINK")) == "target"
    assert os.path.islink(at(fs, "link"))
    assert read(at(fs, "link")) == b"pointed at"
    assert os.readlink(fs.behind("Link")) == "target"


@needs_fuse
def test_truncate_chmod_and_times(fs: FoldingFS) -> None:
    path = at(fs, "f")
    write(path, b"x" * 100)
    os.truncate(at(fs, "F"), 10)
    assert os.stat(path).st_size == 10
    with open(path, "r+b") as f:
        f.truncate(3)
    assert read(path) == b"xxx"
    with open(at(fs, "F"), "wb"):  # O_TRUNC
        pass
    assert os.stat(fs.behind("f")).st_size == 0
    os.chmod(at(fs, "F"), 0o640)
    assert os.stat(fs.behind("f")).st_mode & 0o7777 == 0o640
    os.utime(at(fs, "F"), ns=(1_000_000_001, 2_000_000_002))
    st = os.stat(path)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_001, 2_000_000_002)


@needs_fuse
def test_big_write_and_read_round_trip(fs: FoldingFS) -> None:
    data = os.urandom(8 * 1024 * 1024 + 12345)  # many requests, a ragged end
    write(at(fs, "Big"), data)
    assert read(fs.behind("Big")) == data
    assert read(at(fs, "BIG")) == data
    with open(at(fs, "big"), "rb") as f:
        f.seek(5_000_000)
        assert f.read(100) == data[5_000_000:5_000_100]


@needs_fuse
def test_a_name_that_is_not_utf8_passes_through_and_compares_exactly(fs: FoldingFS) -> None:
    name = b"caf\xe9"  # Latin-1
    root = os.fsencode(fs.mountpoint)
    write(os.fsdecode(os.path.join(root, name)), b"latin")
    assert os.listdir(root) == [name]
    assert os.listdir(os.fsencode(fs.backing)) == [name]
    assert read(os.fsdecode(os.path.join(root, name))) == b"latin"
    assert not os.path.exists(os.path.join(root, b"CAF\xe9"))
    assert not os.path.exists(os.path.join(root, b"CAF\xc9"))


@needs_fuse
def test_an_entry_removed_while_open_can_still_be_stat(fs: FoldingFS) -> None:
    os.mkdir(at(fs, "d"))
    fd = os.open(at(fs, "D"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.rmdir(at(fs, "d"))
        assert os.fstat(fd).st_nlink == 0
        assert os.listdir(fd) is not None  # what a real file system allows too
    finally:
        os.close(fd)
    with open(at(fs, "f"), "wb") as f:
        os.unlink(at(fs, "F"))
        f.write(b"still")
        f.flush()
        assert os.fstat(f.fileno()).st_size == 5


@needs_fuse
def test_statfs_and_access(fs: FoldingFS) -> None:
    assert os.statvfs(fs.mountpoint).f_bsize > 0
    write(at(fs, "f"), b"")
    assert os.access(at(fs, "F"), os.R_OK | os.W_OK)


@needs_fuse
def test_the_mount_has_its_own_device(fs: FoldingFS) -> None:
    write(at(fs, "f"), b"")
    assert os.stat(at(fs, "f")).st_dev != os.stat(fs.behind("f")).st_dev
    assert os.stat(at(fs, "f")).st_dev == os.stat(fs.mountpoint).st_dev


# ------------------------------------------------------------ inotify


def records(ino: Inotify) -> list[tuple[int, bytes, int]]:
    out = []
    while ino.wait(0.5):
        out += [(r.mask & ~0x40000000, r.name, r.cookie) for r in ino.read()]
    return out


@needs_fuse
def test_inotify_hears_changes_made_through_the_mount(fs: FoldingFS) -> None:
    ino = Inotify()
    try:
        ino.add(fs.mountpoint, CHANGES)
        write(at(fs, "a"), b"")
        os.rename(at(fs, "a"), at(fs, "A"))  # case-only
        os.unlink(at(fs, "a"))  # named as the caller spells it, not as stored
        got = records(ino)
    finally:
        ino.close()
    kinds = [(mask, name) for mask, name, _ in got if mask in
             (IN_CREATE, IN_MOVED_FROM, IN_MOVED_TO, IN_DELETE)]
    assert kinds == [(IN_CREATE, b"a"), (IN_MOVED_FROM, b"a"), (IN_MOVED_TO, b"A"),
                     (IN_DELETE, b"a")], got
    cookies = {cookie for mask, _, cookie in got if mask in (IN_MOVED_FROM, IN_MOVED_TO)}
    assert len(cookies) == 1
    assert 0 not in cookies


@needs_fuse
def test_changes_behind_the_kernels_back_are_seen_but_not_heard(fs: FoldingFS) -> None:
    write(at(fs, "seen"), b"")
    ino = Inotify()
    try:
        ino.add(fs.mountpoint, CHANGES)
        write(fs.behind("Remote"), b"from elsewhere")
        os.rename(fs.behind("seen"), fs.behind("Renamed"))
        assert sorted(os.listdir(fs.mountpoint)) == ["Remote", "Renamed"]
        assert read(at(fs, "remote")) == b"from elsewhere"
        assert not os.path.exists(at(fs, "seen"))
        assert records(ino) == []
    finally:
        ino.close()
    assert fs.behind(at(fs, "x", "y")) == os.path.join(fs.backing, "x", "y")
    with pytest.raises(ValueError, match="not under the mount point"):
        fs.behind("/elsewhere")


# ------------------------------------------------------------ lifecycle and bad input


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "crosswatch-foldingfs"]


@needs_fuse
def test_everything_closes(backing: str) -> None:
    before = open_fds()
    with FoldingFS(backing) as fs:
        write(at(fs, "f"), b"x")
        kept = open(at(fs, "F"), "rb")  # noqa: SIM115 - open across the unmount
        assert f" {fs.mountpoint} " in mounts()
        assert server_threads()
        kept.close()
        os.listdir(fs.mountpoint)
    assert f" {fs.mountpoint} " not in mounts()
    assert not os.path.exists(fs.mountpoint)
    assert not server_threads()
    assert open_fds() == before
    assert os.listdir(backing) == ["f"]


@needs_fuse
def test_a_file_left_open_does_not_hang_the_exit(backing: str) -> None:
    fs = FoldingFS(backing, timeout=1.0)
    with fs:
        write(at(fs, "f"), b"x")
        kept = open(at(fs, "f"), "rb")  # noqa: SIM115 - keeps the detached mount busy
    try:  # the connection was closed under it: it fails, it does not hang
        with pytest.raises(OSError, match=r"Errno (107|103)"):
            kept.read()
    finally:
        with contextlib.suppress(OSError):  # its flush fails the same way
            kept.close()
    assert not server_threads()
    assert not os.path.exists(fs.mountpoint)


class _Crash(BaseException):
    """Escapes the per-request handler, as a bug in the server loop would."""


@needs_fuse
def test_a_dead_server_thread_fails_callers_and_the_exit(
    backing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = open_fds()
    fs = FoldingFS(backing)
    outcome: list[BaseException | None] = []

    def stat_in_mount() -> None:
        try:
            os.stat(at(fs, "x"))
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    with pytest.raises(FuseServerError, match="server thread failed"), fs:  # noqa: PT012
        assert fs._server is not None

        def crash(buf: bytes) -> bytes | None:
            raise _Crash

        monkeypatch.setattr(fs._server, "handle", crash)
        caller = threading.Thread(target=stat_in_mount)
        caller.start()
        caller.join(10)
        assert not caller.is_alive(), "a caller hangs on the dead server"
    assert outcome
    assert isinstance(outcome[0], OSError)
    assert outcome[0].errno in (errno.ENOTCONN, errno.ECONNABORTED)
    assert f" {fs.mountpoint} " not in mounts()
    assert open_fds() == before


def request(opcode: int, body: bytes, *, unique: int = 7, nodeid: int = 1) -> bytes:
    size = _fuse_abi.IN_HEADER.size + len(body)
    return _fuse_abi.IN_HEADER.pack(size, opcode, unique, nodeid, 0, 0, 0, 0, 0) + body


def answer(raw: bytes | None) -> tuple[int, int]:
    assert raw is not None
    length, error, unique = _fuse_abi.OUT_HEADER.unpack_from(raw)
    assert length == len(raw)
    return error, unique


@linux_only
def test_requests_the_server_cannot_parse_get_eio(tmp_path: Path) -> None:
    server = Server(os.fsencode(tmp_path))
    (tmp_path / "f").write_bytes(b"")
    assert answer(server.handle(request(_fuse_abi.LOOKUP, b"f\0")))[0] == 0
    assert answer(server.handle(request(_fuse_abi.LOOKUP, b"f"))) == (-errno.EIO, 7)  # no NUL
    assert answer(server.handle(request(_fuse_abi.SETATTR, b"\0" * 5)))[0] == -errno.EIO
    assert answer(server.handle(request(_fuse_abi.WRITE, b"\xff" * 3)))[0] == -errno.EIO
    cut = request(_fuse_abi.GETATTR, b"\0" * 16)[:-4]  # shorter than its header says
    assert answer(server.handle(cut)) == (-errno.EIO, 7)
    assert server.handle(b"\1\2\3") is None  # not even a unique to answer to
    assert answer(server.handle(request(9999, b"")))[0] == -errno.ENOSYS
    assert answer(server.handle(request(22, b"\0" * 8)))[0] == -errno.ENOSYS  # GETXATTR
    assert server.handle(request(_fuse_abi.FORGET, b"\1")) is None  # no reply, no crash
    assert answer(server.handle(request(_fuse_abi.LOOKUP, b"nope\0")))[0] == -errno.ENOENT
    assert answer(server.handle(request(_fuse_abi.GETATTR, struct.pack("=IIQ", 0, 0, 0),
                                        nodeid=12345)))[0] == -errno.ENOENT
    server.close()


@linux_only
def test_unavailable_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = FoldingFS.available()
    assert reason is not None
    assert "root" in reason
    with pytest.raises(FuseUnavailableError, match="root"), FoldingFS(tmp_path):
        pass


@linux_only
def test_unavailable_without_the_device(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(FoldingFS, "device", str(tmp_path / "no-fuse"))
    reason = FoldingFS.available()
    assert reason is not None
    assert "no-fuse" in reason
    with pytest.raises(FuseUnavailableError, match="no FUSE"), FoldingFS(tmp_path):
        pass


def test_unavailable_off_linux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    reason = FoldingFS.available()
    assert reason is not None
    assert "Linux only" in reason
    with pytest.raises(FuseUnavailableError, match="Linux only"), FoldingFS(tmp_path):
        pass


# ------------------------------------------------------------ crosswatch over it


@needs_fuse
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["polling", "inotify"])
def test_a_storm_over_a_folding_mount_converges(backing: str, backend: str) -> None:
    """The storm's names never collide by case: this shows the mount carries a storm."""
    with FoldingFS(backing) as fs:
        root = at(fs, "root")
        os.mkdir(root)
        with Watcher(root, backend=backend, poll_interval=0.05) as w:
            ops, consumed = storm_and_converge(w, root, seed=1, timeout=60, settle=1.0)
    print(f"{ops} operations over {backend}")
    assert ops > 200
    assert consumed, "the storm produced no events"


#: An open defect, not a pass: with inotify, a storm that spells names in any case
#: still leaves, rarely, entries in the mirror under a spelling the disk no longer
#: has (0 of 70 runs here since renames onto another spelling are handled, 5 of 30
#: before; seen once since in a full portable run). Not strict: it passes mostly.
INOTIFY_RESPELL_OPEN = pytest.mark.xfail(
    strict=False, raises=AssertionError,
    reason="open defect: inotify over a folding file system rarely keeps an entry "
           "under a spelling the disk no longer has (see docs/architecture.md)")


@needs_fuse
@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["polling", pytest.param("inotify", marks=INOTIFY_RESPELL_OPEN)]
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_storm_that_spells_names_in_any_case_converges(
    backing: str, backend: str, seed: int
) -> None:
    """The writers reach entries by other spellings (``N3/n0`` for ``n3/n0``): the
    events name each entry as its directory's listing spells it, and the mirror
    built from them equals the disk."""
    with FoldingFS(backing) as fs:
        root = at(fs, "root")
        os.mkdir(root)
        with Watcher(root, backend=backend, poll_interval=0.05) as w:
            ops, consumed = storm_and_converge(w, root, seed=seed, timeout=60, settle=1.0,
                                               respell=True)
    print(f"{ops} operations over {backend}")
    assert ops > 200
    assert consumed, "the storm produced no events"


@needs_fuse
@pytest.mark.parametrize("backend", ["polling", "inotify"])
def test_a_watcher_follows_changes_made_through_other_spellings(
    backing: str, backend: str
) -> None:
    with FoldingFS(backing) as fs:
        root = at(fs, "root")
        os.mkdir(root)
        with Watcher(root, backend=backend, poll_interval=0.05) as w:
            mirror = Mirror.of(root, strict=False)

            def step() -> None:  # one change at a time: the engine sees each on its own
                mirror.apply(collect(w, lambda _: False, timeout=0, settle=0.4))

            write(os.path.join(root, "a"), b"")
            step()
            with open(os.path.join(root, "A"), "ab") as f:  # the same file, spelled otherwise
                f.write(b"x")
            step()
            os.rename(os.path.join(root, "a"), os.path.join(root, "A"))
            step()
            os.mkdir(os.path.join(root, "d"))
            step()
            write(os.path.join(root, "D", "f"), b"")
            step()
            os.unlink(os.path.join(root, "a"))  # now stored as "A"
            converge(w, mirror, timeout=5, settle=0.5)
            assert mirror.entries == {os.path.join(root, "d"): True,
                                      os.path.join(root, "d", "f"): False}


@needs_fuse
@pytest.mark.parametrize("backend", ["polling", "inotify"])
@pytest.mark.parametrize("source", ["inside", "outside"])
def test_a_rename_onto_another_spelling_replaces_that_entry(
    backing: str, backend: str, source: str
) -> None:
    """``rename("x", "B")`` over a cached ``b`` leaves one entry, ``B``: the cached
    ``b`` is reported gone, as its path is not the one the move names. From outside
    the root, the move has no other half and is taken as a new entry."""
    with FoldingFS(backing) as fs:
        root, away = at(fs, "root"), at(fs, "away")
        os.mkdir(root)
        os.mkdir(away)
        here = root if source == "inside" else away
        with Watcher(root, backend=backend, poll_interval=0.05) as w:
            mirror = Mirror.of(root, strict=False)
            write(os.path.join(root, "b"), b"old")
            os.mkdir(os.path.join(root, "e"))
            mirror.apply(collect(w, lambda _: False, timeout=0, settle=0.4))
            write(os.path.join(here, "x"), b"new")
            os.mkdir(os.path.join(here, "y"))
            mirror.apply(collect(w, lambda _: False, timeout=0, settle=0.4))
            os.rename(os.path.join(here, "x"), os.path.join(root, "B"))
            os.rename(os.path.join(here, "y"), os.path.join(root, "E"))  # onto an empty one
            converge(w, mirror, timeout=5, settle=0.5)
            assert mirror.entries == {os.path.join(root, "B"): False,
                                      os.path.join(root, "E"): True}

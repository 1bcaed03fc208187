"""The kqueue emulation itself: per-descriptor vnode notes from inotify, as kqueue gives them."""

from __future__ import annotations

import errno
import os
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from crosswatch_kqueue import _abi
from crosswatch_kqueue.testing import EmulatedQueue, KqueueEmulation

from crosswatch.testing import open_fds

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the emulation needs inotify"
)
ABI = _abi.current(platform=sys.platform)
ALL = ABI.watch_notes
CLEAR = ABI.ev_add | ABI.ev_clear


class Kq:
    """A queue and the descriptors a test registered on it."""

    def __init__(self) -> None:
        self.system = KqueueEmulation()
        self.kq: EmulatedQueue = self.system.kqueue()
        self.fds: list[int] = []

    def add(self, path: str, flags: int = CLEAR, notes: int = ALL, udata: int = 0) -> int:
        fd = self.system.open(path)
        self.fds.append(fd)
        change = self.system.kevent(fd, ABI.evfilt_vnode, flags, notes, udata or fd + 1000)
        assert self.kq.control([change], 0, 0) == []
        return fd

    def notes(self) -> dict[int, int]:
        """What each descriptor has pending, read now (fd -> fflags)."""
        events = self.kq.control(None, 100, 0)
        assert len({e.ident for e in events}) == len(events)  # one kevent per knote
        return {e.ident: e.fflags for e in events}

    def close(self) -> None:
        for fd in self.fds:
            self.system.close(fd)
        self.kq.close()


@pytest.fixture
def kq() -> Iterator[Kq]:
    before = open_fds()
    q = Kq()
    yield q
    q.close()
    assert open_fds() == before  # the queue's inotify instance, epoll and pipe closed


def test_file_notes(kq: Kq, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    fd = kq.add(str(f))
    f.write_bytes(b"xyz")  # same size: written, not extended
    assert kq.notes() == {fd: ABI.note_write}
    with f.open("ab") as out:
        out.write(b"more")
    assert kq.notes() == {fd: ABI.note_write | ABI.note_extend}
    os.chmod(f, 0o600)
    assert kq.notes() == {fd: ABI.note_attrib}
    os.link(f, tmp_path / "g")
    assert kq.notes() == {fd: ABI.note_link}
    os.rename(f, tmp_path / "h")
    assert kq.notes() == {fd: ABI.note_rename}
    os.unlink(tmp_path / "g")  # at every unlink, as kqueue says: not only the last
    assert kq.notes() == {fd: ABI.note_delete}
    assert kq.notes() == {}


def test_directory_notes(kq: Kq, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    fd = kq.add(str(d))
    (d / "f").write_bytes(b"x")
    assert kq.notes() == {fd: ABI.note_write}
    (d / "f").write_bytes(b"longer")  # a file's writes are not its directory's
    os.chmod(d / "f", 0o600)
    assert kq.notes() == {}
    os.rename(d / "f", d / "g")
    assert kq.notes() == {fd: ABI.note_write}
    (d / "sub").mkdir()
    assert kq.notes() == {fd: ABI.note_write | ABI.note_link}
    os.rename(d / "sub", d / "sub2")  # renamed within: no subdirectory came or went
    assert kq.notes() == {fd: ABI.note_write}
    os.rename(d / "sub2", tmp_path / "out")
    assert kq.notes() == {fd: ABI.note_write | ABI.note_link}
    os.chmod(d, 0o700)
    assert kq.notes() == {fd: ABI.note_attrib}
    os.rename(d, tmp_path / "e")
    assert kq.notes() == {fd: ABI.note_rename}
    os.unlink(tmp_path / "e" / "g")
    os.rmdir(tmp_path / "e")  # while the descriptor is open: inotify says nothing of it
    assert kq.notes() == {fd: ABI.note_write | ABI.note_delete}


def test_a_subdirectory_going_does_not_look_like_removal(kq: Kq, tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    fd = kq.add(str(tmp_path / "d"))
    (tmp_path / "other").mkdir()
    os.rmdir(tmp_path / "d" / "sub")  # its link count falls, and it is still there
    os.rmdir(tmp_path / "other")  # its parent's IN_DELETE has the link count looked at
    assert kq.notes() == {fd: ABI.note_write | ABI.note_link}


def test_ev_clear_accumulates_until_read(kq: Kq, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    fd = kq.add(str(f))
    level = kq.add(str(f), flags=ABI.ev_add)  # a second descriptor, without EV_CLEAR
    for _ in range(3):
        with f.open("ab") as out:
            out.write(b"x")
    os.chmod(f, 0o640)
    both = ABI.note_write | ABI.note_extend | ABI.note_attrib
    assert kq.notes() == {fd: both, level: both}
    assert kq.notes() == {level: both}  # not cleared: reported again


def test_notes_asked_for_only(kq: Kq, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    fd = kq.add(str(f), notes=ABI.note_delete | ABI.note_rename)
    f.write_bytes(b"data")
    os.chmod(f, 0o600)
    assert kq.notes() == {}
    os.rename(f, tmp_path / "g")
    assert kq.notes() == {fd: ABI.note_rename}


def test_closing_a_descriptor_removes_its_knote(kq: Kq, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    fd = kq.add(str(f))
    f.write_bytes(b"pending")
    kq.fds.remove(fd)
    kq.system.close(fd)
    assert kq.notes() == {}
    g = tmp_path / "g"
    g.write_bytes(b"")
    again = kq.add(str(g))  # the same number, most likely: nothing of f's comes with it
    assert kq.notes() == {}
    g.write_bytes(b"x")
    assert kq.notes() == {again: ABI.note_write | ABI.note_extend}


def test_events_carry_no_names_cookies_or_paths(kq: Kq, tmp_path: Path) -> None:
    fd = kq.add(str(tmp_path), udata=77)
    (tmp_path / "name").write_bytes(b"")
    os.rename(tmp_path / "name", tmp_path / "other")
    events = kq.kq.control(None, 10, 0)
    assert events == [_abi.KEvent(fd, ABI.evfilt_vnode, CLEAR, ABI.note_write, 0, 77)]


def test_the_queue_is_selectable_while_notes_are_pending(kq: Kq, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"")
    fds = [kq.add(str(tmp_path / name)) for name in ("a", "b")]
    assert select.select([kq.kq], [], [], 0)[0] == []
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(b"x")
    assert select.select([kq.kq], [], [], 5)[0] == [kq.kq]
    first = kq.kq.control(None, 1, 0)  # one of two: the other is still pending
    assert len(first) == 1
    assert select.select([kq.kq], [], [], 0)[0] == [kq.kq]
    second = kq.kq.control(None, 1, 0)
    assert {e.ident for e in first + second} == set(fds)
    assert select.select([kq.kq], [], [], 0)[0] == []
    assert kq.kq.control(None, 1, 0.05) == []  # a timeout waits, then gives nothing


def test_receipts_and_errors(kq: Kq, tmp_path: Path) -> None:
    fd = kq.system.open(str(tmp_path))
    kq.fds.append(fd)
    bad = os.open(os.devnull, os.O_RDONLY)
    os.close(bad)  # a descriptor number that is not open
    flags = CLEAR | ABI.ev_receipt
    changes = [kq.system.kevent(fd, ABI.evfilt_vnode, flags, ALL, 1),
               kq.system.kevent(bad, ABI.evfilt_vnode, flags, ALL, 2)]
    got = kq.kq.control(changes, 2, 0)
    assert [(e.udata, e.flags & ABI.ev_error, e.data) for e in got] == [
        (1, ABI.ev_error, 0), (2, ABI.ev_error, errno.EBADF)]
    with pytest.raises(OSError, match="Bad file descriptor") as raised:  # no room: it fails
        kq.kq.control([kq.system.kevent(bad, ABI.evfilt_vnode, CLEAR, ALL)], 0, 0)
    assert raised.value.errno == errno.EBADF
    delete = kq.system.kevent(bad, ABI.evfilt_vnode, ABI.ev_delete, 0)
    assert kq.kq.control([delete], 1, 0)[0].data == errno.ENOENT


def test_injected_failures(kq: Kq, tmp_path: Path) -> None:
    kq.system.fail_open(errno.EMFILE, at=2)
    kq.fds.append(kq.system.open(str(tmp_path)))
    with pytest.raises(OSError, match="Too many open files") as raised:
        kq.system.open(str(tmp_path))
    assert raised.value.errno == errno.EMFILE
    fd = kq.system.open(str(tmp_path))  # once only
    kq.fds.append(fd)
    kq.system.fail_add(errno.ENOMEM)
    change = kq.system.kevent(fd, ABI.evfilt_vnode, CLEAR | ABI.ev_receipt, ALL, 5)
    assert kq.kq.control([change], 1, 0)[0].data == errno.ENOMEM
    assert kq.kq.control([change], 1, 0)[0].data == 0
    kq.kq.post(fd, flags=ABI.ev_error, data=errno.EIO)
    (event,) = kq.kq.control(None, 4, 0)
    assert (event.udata, event.flags & ABI.ev_error, event.data) == (5, ABI.ev_error, errno.EIO)


def test_a_link_is_watched_itself(kq: Kq, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "link")
    fd = kq.system.open(str(tmp_path / "link"), link=True)
    kq.fds.append(fd)
    change = kq.system.kevent(fd, ABI.evfilt_vnode, CLEAR, _abi.fate_notes(ABI), 9)
    kq.kq.control([change], 0, 0)
    (tmp_path / "real" / "f").write_bytes(b"")  # where it leads: not the link
    assert kq.notes() == {}
    os.rename(tmp_path / "link", tmp_path / "link2")
    assert kq.notes() == {fd: ABI.note_rename}
    os.unlink(tmp_path / "link2")
    assert kq.notes() == {fd: ABI.note_delete}


def test_an_overflow_of_inotify_is_rebuilt_from_the_inodes(kq: Kq, tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for name in "abce":
        (d / name).write_bytes(b"x")
    dfd, a, b, c, e = (kq.add(str(p)) for p in (d, d / "a", d / "b", d / "c", d / "e"))
    time.sleep(0.05)  # past the file system's clock tick
    with (d / "a").open("ab") as f:
        f.write(b"more")
    os.chmod(d / "b", 0o600)
    os.rename(d / "c", d / "c2")
    os.unlink(d / "e")
    kq.kq.overflow()  # none of the records above is read
    notes = kq.notes()
    assert notes[a] == ABI.note_write | ABI.note_extend
    assert notes[b] == ABI.note_attrib
    assert notes[c] & ABI.note_rename
    assert notes[e] & ABI.note_delete
    assert notes[dfd] & ABI.note_write
    assert kq.notes() == {}

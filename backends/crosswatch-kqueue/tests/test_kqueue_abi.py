"""kqueue's pure layer: the documented values, and kevents decoded into observations."""

from __future__ import annotations

import errno
import types

import pytest
from crosswatch_kqueue import _abi
from crosswatch_kqueue._abi import DARWIN, FREEBSD, Decoded, KEvent, Vnode, decode

from crosswatch.backend import (
    Action,
    DirDirty,
    EntryChange,
    Gone,
    SubtreeLost,
    WatchError,
    WatchLimitError,
)

# Handles: the root's watch 1, directory "d"'s watch 2; file "d/f" has none.
ROOT = Vnode("", True, watch=1)
DIR = Vnode("d", True, parent=1, name="d", watch=2)
FILE = Vnode("d/f", False, parent=2, name="f")

A = FREEBSD
DELETE, WRITE, EXTEND, ATTRIB = A.note_delete, A.note_write, A.note_extend, A.note_attrib
LINK, RENAME, REVOKE = A.note_link, A.note_rename, A.note_revoke
VNODE = A.evfilt_vnode


def ev(fflags: int, flags: int = A.ev_add | A.ev_clear, data: int = 0, ident: int = 7) -> KEvent:
    return KEvent(ident, VNODE, flags, fflags, data, 0)


def test_documented_values_of_macos_and_freebsd() -> None:
    for abi in (DARWIN, FREEBSD):
        notes = (abi.note_delete, abi.note_write, abi.note_extend, abi.note_attrib,
                 abi.note_link, abi.note_rename, abi.note_revoke)
        assert notes == (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40)
        assert abi.evfilt_vnode == -4
        assert (abi.ev_add, abi.ev_delete, abi.ev_enable, abi.ev_disable) == (1, 2, 4, 8)
        assert (abi.ev_oneshot, abi.ev_clear, abi.ev_receipt, abi.ev_dispatch) == (
            0x10, 0x20, 0x40, 0x80)
        assert (abi.ev_error, abi.ev_eof) == (0x4000, 0x8000)
        assert abi.watch_notes == 0x7F
        assert abi.watch_flags == 0x25
    assert DARWIN.note_funlock == 0x100  # FreeBSD's 0x100 is NOTE_CLOSE
    assert FREEBSD.note_funlock is None
    assert DARWIN.note_funlock == _abi.FREEBSD_NOTE_CLOSE
    assert _abi.documented("darwin") is DARWIN
    assert _abi.documented("freebsd14") is FREEBSD


def test_values_from_select_win_over_the_table() -> None:
    fake = types.ModuleType("select")
    fake.KQ_FILTER_VNODE = 3  # type: ignore[attr-defined]  # NetBSD's
    fake.KQ_NOTE_WRITE = 0x2  # type: ignore[attr-defined]
    fake.KQ_EV_ERROR = "not an int"  # type: ignore[attr-defined]
    abi = _abi.current(fake, platform="netbsd10")
    assert abi.evfilt_vnode == 3
    assert abi.ev_error == 0x4000
    assert abi == _abi.Abi(evfilt_vnode=3)
    assert _abi.current(types.ModuleType("select"), platform="darwin") == DARWIN
    import select

    if not hasattr(select, "kqueue"):  # no KQ_* names: the table is used
        assert _abi.current(select, platform="freebsd14") == FREEBSD


def test_kevent_from_select_like_object() -> None:
    obj = types.SimpleNamespace(ident=5, filter=-4, flags=0x25, fflags=2, data=0, udata=9)
    assert KEvent.of(obj) == KEvent(5, -4, 0x25, 2, 0, 9)


# (event, vnode, expected): one per note and combination, on a file, a directory, the root.
CASES = [
    # directories: entries changed
    (ev(WRITE), DIR, Decoded((DirDirty(2),))),
    (ev(EXTEND), DIR, Decoded((DirDirty(2),))),
    (ev(LINK), DIR, Decoded((DirDirty(2),))),
    (ev(WRITE | LINK | EXTEND), DIR, Decoded((DirDirty(2),))),
    (ev(ATTRIB), DIR, Decoded((EntryChange(1, "d", Action.ATTRIB, True),))),
    (ev(WRITE | ATTRIB), DIR,
     Decoded((EntryChange(1, "d", Action.ATTRIB, True), DirDirty(2)))),
    # directories: fate
    (ev(DELETE), DIR, Decoded((DirDirty(1), Gone(2)), close=True)),
    (ev(REVOKE), DIR, Decoded((DirDirty(1), Gone(2)), close=True)),
    (ev(DELETE | WRITE | ATTRIB | LINK), DIR, Decoded((DirDirty(1), Gone(2)), close=True)),
    (ev(0, flags=A.ev_eof), DIR, Decoded((DirDirty(1), Gone(2)), close=True)),
    (ev(RENAME), DIR, Decoded((DirDirty(1),))),
    (ev(RENAME | ATTRIB), DIR, Decoded((DirDirty(1),))),
    (ev(RENAME | WRITE), DIR, Decoded((DirDirty(1), DirDirty(2)))),
    # files
    (ev(WRITE), FILE, Decoded((EntryChange(2, "f", Action.MODIFIED, False),))),
    (ev(EXTEND), FILE, Decoded((EntryChange(2, "f", Action.MODIFIED, False),))),
    (ev(WRITE | EXTEND), FILE, Decoded((EntryChange(2, "f", Action.MODIFIED, False),))),
    (ev(ATTRIB), FILE, Decoded((EntryChange(2, "f", Action.ATTRIB, False),))),
    (ev(LINK), FILE, Decoded((EntryChange(2, "f", Action.ATTRIB, False),))),
    (ev(ATTRIB | LINK), FILE, Decoded((EntryChange(2, "f", Action.ATTRIB, False),))),
    (ev(WRITE | ATTRIB), FILE, Decoded((
        EntryChange(2, "f", Action.MODIFIED, False), EntryChange(2, "f", Action.ATTRIB, False)))),
    (ev(DELETE), FILE, Decoded((DirDirty(2),), close=True)),
    (ev(RENAME), FILE, Decoded((DirDirty(2),), close=True)),
    (ev(REVOKE), FILE, Decoded((DirDirty(2),), close=True)),
    (ev(RENAME | WRITE), FILE, Decoded((DirDirty(2),), close=True)),  # its name is stale
    (ev(DELETE | ATTRIB | LINK), FILE, Decoded((DirDirty(2),), close=True)),
    # the root
    (ev(WRITE), ROOT, Decoded((DirDirty(1),))),
    (ev(LINK | EXTEND), ROOT, Decoded((DirDirty(1),))),
    (ev(ATTRIB), ROOT, Decoded((EntryChange(1, "", Action.ATTRIB, True),))),
    (ev(ATTRIB | WRITE), ROOT,
     Decoded((EntryChange(1, "", Action.ATTRIB, True), DirDirty(1)))),
    (ev(RENAME), ROOT, Decoded((DirDirty(1),))),  # its path is verified, the watch kept
    (ev(RENAME | WRITE | ATTRIB), ROOT, Decoded((DirDirty(1),))),
    (ev(DELETE), ROOT, Decoded((Gone(1),), close=True)),
    (ev(REVOKE), ROOT, Decoded((Gone(1),), close=True)),
    (ev(DELETE | RENAME | WRITE), ROOT, Decoded((Gone(1),), close=True)),
    (ev(0, flags=A.ev_eof | A.ev_oneshot), ROOT, Decoded((Gone(1),), close=True)),
    # nothing, or nothing known
    (ev(0), FILE, Decoded()),
    (ev(0), ROOT, Decoded()),
    (ev(0x80 | 0x100 | 0x200 | 0x400 | 0x00F0_0000), FILE, Decoded()),  # NOTE_OPEN, NOTE_CLOSE…
    (ev(0xFFFF_FF80), DIR, Decoded()),
    (ev(WRITE | 0xFFFF_FF00), DIR, Decoded((DirDirty(2),))),
    (ev(WRITE, flags=0x25 | 0x1000 | 0x2000), FILE,
     Decoded((EntryChange(2, "f", Action.MODIFIED, False),))),
    (KEvent(7, -1, 0, WRITE, 0, 0), FILE, Decoded()),  # EVFILT_READ: not ours
    (KEvent(7, -11, A.ev_error, 0, 5, 0), FILE, Decoded()),  # another filter's error
    (ev(WRITE | DELETE), None, Decoded()),  # a descriptor already forgotten
    # EV_ERROR
    (ev(0, flags=A.ev_error, data=0), DIR, Decoded()),  # EV_RECEIPT: done
    (ev(0, flags=A.ev_error, data=errno.ENOENT), DIR,
     Decoded((DirDirty(1), Gone(2)), close=True)),
    (ev(0, flags=A.ev_error, data=errno.EBADF), FILE, Decoded((DirDirty(2),), close=True)),
    (ev(0, flags=A.ev_error, data=errno.ENOENT), ROOT, Decoded((Gone(1),), close=True)),
]


@pytest.mark.parametrize(("event", "vnode", "expected"), CASES)
def test_decode(event: KEvent, vnode: Vnode | None, expected: Decoded) -> None:
    assert decode(event, vnode, FREEBSD) == expected
    assert decode(event, vnode, DARWIN) == expected  # the same values for these


def test_note_funlock_is_ignored_on_macos() -> None:
    assert DARWIN.note_funlock is not None
    assert decode(ev(DARWIN.note_funlock), FILE, DARWIN) == Decoded()
    assert decode(ev(DARWIN.note_funlock | WRITE), DIR, DARWIN) == Decoded((DirDirty(2),))


def test_another_filter_value_is_honoured() -> None:
    netbsd = _abi.Abi(evfilt_vnode=3)
    event = KEvent(7, 3, 0x25, WRITE, 0, 0)
    assert decode(event, DIR, netbsd) == Decoded((DirDirty(2),))
    assert decode(event, DIR, FREEBSD) == Decoded()


@pytest.mark.parametrize(
    ("err", "vnode", "kind", "observations"),
    [
        (errno.EACCES, DIR, WatchError, (Gone(2),)),
        (errno.EACCES, ROOT, WatchError, (Gone(1),)),
        (errno.EPERM, FILE, WatchError, (SubtreeLost(2, ""),)),
        (errno.EMFILE, FILE, WatchLimitError, (SubtreeLost(2, ""),)),
        (errno.ENOMEM, DIR, WatchLimitError, (Gone(2),)),
        (10**9, DIR, WatchError, (Gone(2),)),  # no such errno: still a message
    ],
)
def test_ev_error_is_a_clear_error(
    err: int, vnode: Vnode, kind: type[WatchError], observations: tuple[object, ...]
) -> None:
    got = decode(ev(0, flags=A.ev_error | A.ev_add, data=err), vnode, FREEBSD)
    assert got.close
    assert got.observations == observations
    assert type(got.error) is kind
    assert got.error.errno == err
    message = str(got.error)
    assert "kqueue" in message
    assert repr(vnode.path or "the root") in message
    if kind is WatchLimitError:
        assert "ulimit -n" in message


def test_garbled_events_never_crash() -> None:
    import random

    rng = random.Random(14)
    for _ in range(5000):
        event = KEvent(
            rng.getrandbits(64),
            rng.choice([VNODE, -1, -2, 3, rng.randint(-2**15, 2**15)]),
            rng.getrandbits(16),
            rng.getrandbits(32),
            rng.choice([0, errno.ENOENT, errno.EACCES, rng.randint(-2**63, 2**63 - 1)]),
            rng.getrandbits(64),
        )
        for vnode in (ROOT, DIR, FILE, None):
            got = decode(event, vnode, rng.choice([DARWIN, FREEBSD]))
            assert isinstance(got, Decoded)
            assert all(isinstance(o, DirDirty | EntryChange | Gone | SubtreeLost)
                       for o in got.observations)


def test_a_vnode_must_be_placed() -> None:
    with pytest.raises(ValueError, match="watch handle"):
        Vnode("d", True, parent=1, name="d")
    with pytest.raises(ValueError, match="directory's watch handle"):
        Vnode("f", False)

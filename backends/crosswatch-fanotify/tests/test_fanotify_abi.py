"""The event decoder, against events built byte by byte from the documented layout."""

from __future__ import annotations

import os
import struct

import pytest
from crosswatch_fanotify import _abi

from crosswatch.backend import Action, EntryChange, Gone, Renamed, SubtreeLost

FSID = struct.pack("=ii", 0x1234, -7)
OTHER_FSID = struct.pack("=ii", 0x1234, 8)


def handle(ino: int) -> bytes:
    """A struct file_handle as tmpfs writes one: 12 bytes (inode, generation, ...)."""
    f_handle = struct.pack("=QI", ino, 3)
    return struct.pack("=Ii", len(f_handle), 1) + f_handle


def key(ino: int, fsid: bytes = FSID) -> bytes:
    return fsid + handle(ino)


def record(info_type: int, ino: int, name: bytes | None, fsid: bytes = FSID) -> bytes:
    """One fid record: header, fsid, file handle, then the name and a NUL, padded to 4."""
    body = fsid + handle(ino) + (b"" if name is None else name + b"\0")
    body += b"\0" * (-(len(body) + _abi.INFO_HEADER.size) % 4)
    return _abi.INFO_HEADER.pack(info_type, 0, _abi.INFO_HEADER.size + len(body)) + body


def event(mask: int, *records: bytes, pid: int = 4242) -> bytes:
    infos = b"".join(records)
    size = _abi.METADATA.size + len(infos)
    return _abi.METADATA.pack(size, _abi.METADATA_VERSION, 0, _abi.METADATA.size, mask, -1,
                              pid) + infos


DIRS = {key(10): "top", key(11): "sub"}


def decode(buf: bytes, selves: dict[tuple[bytes, bytes], object] | None = None) -> list[object]:
    return list(_abi.observations(buf, DIRS, selves or {}))  # type: ignore[arg-type]


def test_the_layouts_are_the_documented_sizes() -> None:
    assert _abi.METADATA.size == 24
    assert _abi.INFO_HEADER.size == 4
    assert _abi.FILE_HANDLE.size == 8


def test_a_file_created_in_a_watched_directory() -> None:
    buf = event(_abi.FAN_CREATE, record(_abi.INFO_DFID_NAME, 10, b"new.txt"))
    assert decode(buf) == [EntryChange("top", "new.txt", Action.CREATED, False, None, 4242)]


def test_a_directory_made_carries_its_kind() -> None:
    buf = event(_abi.FAN_CREATE | _abi.FAN_ONDIR, record(_abi.INFO_DFID_NAME, 11, b"d"))
    assert decode(buf) == [EntryChange("sub", "d", Action.CREATED, True, None, 4242)]


def test_events_in_other_directories_are_dropped() -> None:
    buf = event(_abi.FAN_CREATE, record(_abi.INFO_DFID_NAME, 99, b"elsewhere"))
    buf += event(_abi.FAN_MODIFY, record(_abi.INFO_DFID_NAME, 10, b"f", fsid=OTHER_FSID))
    buf += event(_abi.FAN_MODIFY, record(_abi.INFO_DFID_NAME, 10, b"f"))
    assert decode(buf) == [EntryChange("top", "f", Action.MODIFIED, False, None, 4242)]


@pytest.mark.parametrize(
    ("mask", "actions"),
    [
        (_abi.FAN_CREATE | _abi.FAN_MODIFY, [Action.CREATED, Action.MODIFIED]),
        (_abi.FAN_CREATE | _abi.FAN_DELETE, [Action.DELETED]),
        (_abi.FAN_DELETE | _abi.FAN_CREATE | _abi.FAN_MODIFY, [Action.DELETED, Action.MODIFIED]),
        (_abi.FAN_MODIFY | _abi.FAN_ATTRIB, [Action.MODIFIED, Action.ATTRIB]),
        (_abi.FAN_MOVED_TO | _abi.FAN_MODIFY, [Action.CREATED, Action.MODIFIED]),
        (_abi.FAN_MOVED_FROM | _abi.FAN_MOVED_TO, [Action.DELETED]),
    ],
    ids=["created-modified", "created-deleted", "replaced", "modified-attrib", "moved-in",
         "moved-out-and-in"],
)
def test_merged_events_tell_the_engine_to_trust_the_disk_when_the_entry_left(
    mask: int, actions: list[Action]
) -> None:
    """The kernel merges unread events about one entry and keeps no order of them."""
    buf = event(mask, record(_abi.INFO_DFID_NAME, 10, b"f"))
    assert [obs.action for obs in decode(buf)] == actions  # type: ignore[attr-defined]


def test_a_directory_reports_its_own_changes_under_the_name_dot() -> None:
    buf = event(_abi.FAN_ATTRIB | _abi.FAN_ONDIR, record(_abi.INFO_DFID_NAME, 11, b"."))
    buf += event(_abi.FAN_DELETE_SELF | _abi.FAN_MOVE_SELF | _abi.FAN_ONDIR,
                 record(_abi.INFO_DFID_NAME, 11, b"."))
    assert decode(buf) == [
        EntryChange("sub", "", Action.ATTRIB, True),
        EntryChange("sub", "", Action.DELETED, True),
        Gone("sub"),
    ]


def test_a_rename_is_paired_by_the_kernel() -> None:
    buf = event(
        _abi.FAN_RENAME | _abi.FAN_ONDIR,
        record(_abi.INFO_OLD_DFID_NAME, 10, b"a"),
        record(_abi.INFO_NEW_DFID_NAME, 11, b"b"),
        pid=77,
    )
    assert decode(buf) == [Renamed("top", "a", "sub", "b", True, 77)]


def test_a_rename_with_one_end_outside_is_a_deletion_or_a_creation() -> None:
    out = event(_abi.FAN_RENAME, record(_abi.INFO_OLD_DFID_NAME, 10, b"a"),
                record(_abi.INFO_NEW_DFID_NAME, 99, b"b"))
    into = event(_abi.FAN_RENAME, record(_abi.INFO_OLD_DFID_NAME, 99, b"a"),
                 record(_abi.INFO_NEW_DFID_NAME, 11, b"b"))
    assert decode(out + into) == [
        EntryChange("top", "a", Action.DELETED, False, None, 4242),
        EntryChange("sub", "b", Action.CREATED, False, None, 4242),
    ]


def test_the_halves_of_a_rename_without_fan_rename_come_unpaired() -> None:
    buf = event(_abi.FAN_MOVED_FROM, record(_abi.INFO_DFID_NAME, 10, b"a"))
    buf += event(_abi.FAN_MOVED_TO, record(_abi.INFO_DFID_NAME, 11, b"b"))
    assert decode(buf) == [
        EntryChange("top", "a", Action.MOVED_FROM, False, None, 4242),
        EntryChange("sub", "b", Action.MOVED_TO, False, None, 4242),
    ]


def test_an_overflow_loses_everything() -> None:
    assert decode(event(_abi.FAN_Q_OVERFLOW)) == [SubtreeLost(None)]


def test_an_entry_watched_for_its_fate_is_known_by_its_parent_and_name() -> None:
    selves = {(key(99), b"above"): "fate"}
    renamed = event(_abi.FAN_RENAME | _abi.FAN_ONDIR, record(_abi.INFO_OLD_DFID_NAME, 99, b"above"),
                    record(_abi.INFO_NEW_DFID_NAME, 99, b"moved"))
    replaced = event(_abi.FAN_RENAME | _abi.FAN_ONDIR, record(_abi.INFO_OLD_DFID_NAME, 99, b"x"),
                     record(_abi.INFO_NEW_DFID_NAME, 99, b"above"))
    removed = event(_abi.FAN_DELETE | _abi.FAN_ONDIR, record(_abi.INFO_DFID_NAME, 99, b"above"))
    assert decode(renamed + replaced + removed, selves) == [
        EntryChange("fate", "", Action.MOVED_FROM, True),
        EntryChange("fate", "", Action.DELETED, True),
        EntryChange("fate", "", Action.DELETED, True),
    ]


def test_names_that_are_not_utf8_round_trip() -> None:
    buf = event(_abi.FAN_CREATE, record(_abi.INFO_DFID_NAME, 10, b"caf\xe9"))
    (obs,) = decode(buf)
    assert os.fsencode(obs.name) == b"caf\xe9"  # type: ignore[attr-defined]


def test_a_truncated_or_malformed_buffer_stops_cleanly() -> None:
    good = event(_abi.FAN_CREATE, record(_abi.INFO_DFID_NAME, 10, b"f"))
    assert decode(good + good[:10]) == decode(good)
    bad = _abi.METADATA.pack(3, _abi.METADATA_VERSION, 0, 24, _abi.FAN_CREATE, -1, 1)
    assert decode(bad + good) == []


def test_the_fsid_from_statvfs_is_the_one_events_carry() -> None:
    packed = (0x1234 & 0xFFFFFFFF) | ((-7 & 0xFFFFFFFF) << 32)
    assert _abi.fsid_bytes(packed) == FSID


def test_a_rename_given_late_is_looked_at_on_both_ends_not_paired() -> None:
    """Given again once its directory is watched, a rename's other end may have been
    applied already, or its old name taken by an entry the listing found."""
    buf = event(_abi.FAN_RENAME, record(_abi.INFO_OLD_DFID_NAME, 10, b"a"),
                record(_abi.INFO_NEW_DFID_NAME, 11, b"b"), pid=5)
    assert _abi.replay(list(_abi.events(buf)), DIRS, {}, late=True) == [  # type: ignore[arg-type]
        EntryChange("top", "a", Action.DELETED, False, None, 5),
        EntryChange("sub", "b", Action.CREATED, False, None, 5),
    ]


def test_events_kept_for_directories_not_watched_stay_within_their_bound() -> None:
    """Bounded memory: past the bound, everything kept is dropped at once, and keeping
    starts over; a directory's events come back in order, once."""
    kept = _abi.Kept(bound=4)
    made = [_abi.Event(_abi.FAN_CREATE, pid, ()) for pid in range(7)]
    for i, ev in enumerate(made[:4]):
        kept.add(key(i % 2), ev)
    assert len(kept) == 4
    assert kept.pop(key(0)) == [made[0], made[2]]
    assert kept.pop(key(0)) == []
    assert len(kept) == 2
    kept.add(key(1), made[4])
    kept.add(key(2), made[5])
    assert len(kept) == 4  # at the bound
    kept.add(key(2), made[6])  # past it: all dropped, then this one kept
    assert len(kept) == 1
    assert kept.pop(key(1)) == []
    assert kept.pop(key(2)) == [made[6]]
    assert len(kept) == 0

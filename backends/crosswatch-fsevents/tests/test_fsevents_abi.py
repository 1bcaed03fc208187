"""FSEvents' pure layer: constants, callback arrays decoded into observations."""

from __future__ import annotations

import os
from collections.abc import Hashable

import pytest
from crosswatch_fsevents import _abi
from crosswatch_fsevents._abi import (
    Decoder,
    FSEventsDecodeError,
    kFSEventStreamEventFlagEventIdsWrapped,
    kFSEventStreamEventFlagHistoryDone,
    kFSEventStreamEventFlagItemChangeOwner,
    kFSEventStreamEventFlagItemCloned,
    kFSEventStreamEventFlagItemCreated,
    kFSEventStreamEventFlagItemInodeMetaMod,
    kFSEventStreamEventFlagItemIsDir,
    kFSEventStreamEventFlagItemIsFile,
    kFSEventStreamEventFlagItemIsSymlink,
    kFSEventStreamEventFlagItemModified,
    kFSEventStreamEventFlagItemRemoved,
    kFSEventStreamEventFlagItemRenamed,
    kFSEventStreamEventFlagItemXattrMod,
    kFSEventStreamEventFlagKernelDropped,
    kFSEventStreamEventFlagMount,
    kFSEventStreamEventFlagMustScanSubDirs,
    kFSEventStreamEventFlagNone,
    kFSEventStreamEventFlagOwnEvent,
    kFSEventStreamEventFlagRootChanged,
    kFSEventStreamEventFlagUnmount,
    kFSEventStreamEventFlagUserDropped,
)

from crosswatch.backend import Action, DirDirty, EntryChange, Renamed, SubtreeLost

FILE = kFSEventStreamEventFlagItemIsFile
DIR = kFSEventStreamEventFlagItemIsDir
CREATED = kFSEventStreamEventFlagItemCreated
REMOVED = kFSEventStreamEventFlagItemRemoved
RENAMED = kFSEventStreamEventFlagItemRenamed
MODIFIED = kFSEventStreamEventFlagItemModified
ROOT = "/Users/me/proj"


def decoder(*roots: tuple[Hashable, str]) -> Decoder:
    d = Decoder()
    for handle, path in roots or (("R", ROOT),):
        d.add(handle, path)
    return d


# ------------------------------------------------------------------ constants


def test_the_flags_have_the_values_of_the_header() -> None:
    create = {
        "UseCFTypes": 0x01, "NoDefer": 0x02, "WatchRoot": 0x04, "IgnoreSelf": 0x08,
        "FileEvents": 0x10, "MarkSelf": 0x20, "UseExtendedData": 0x40,
    }
    event = {
        "MustScanSubDirs": 0x01, "UserDropped": 0x02, "KernelDropped": 0x04,
        "EventIdsWrapped": 0x08, "HistoryDone": 0x10, "RootChanged": 0x20, "Mount": 0x40,
        "Unmount": 0x80, "ItemCreated": 0x100, "ItemRemoved": 0x200,
        "ItemInodeMetaMod": 0x400, "ItemRenamed": 0x800, "ItemModified": 0x1000,
        "ItemFinderInfoMod": 0x2000, "ItemChangeOwner": 0x4000, "ItemXattrMod": 0x8000,
        "ItemIsFile": 0x10000, "ItemIsDir": 0x20000, "ItemIsSymlink": 0x40000,
        "OwnEvent": 0x80000, "ItemIsHardlink": 0x100000, "ItemIsLastHardlink": 0x200000,
        "ItemCloned": 0x400000,
    }
    for name, value in create.items():
        assert getattr(_abi, f"kFSEventStreamCreateFlag{name}") == value, name
    for name, value in event.items():
        assert getattr(_abi, f"kFSEventStreamEventFlag{name}") == value, name
    assert sum(event.values()) == _abi.KNOWN
    assert _abi.kFSEventStreamEventIdSinceNow == 2**64 - 1
    assert _abi.kFSEventStreamEventExtendedFileIDKey == "fileID"
    assert _abi.kFSEventStreamEventExtendedDataPathKey == "path"
    assert _abi.STREAM_FLAGS & _abi.kFSEventStreamCreateFlagFileEvents
    assert _abi.STREAM_FLAGS & _abi.kFSEventStreamCreateFlagUseExtendedData


# ------------------------------------------------------------------ item events


def test_items_only_created_or_removed_are_looked_at_the_rest_dirty_their_directory_once(
) -> None:
    d = decoder()
    out = d.decode(
        [f"{ROOT}/a", f"{ROOT}/sub/b", f"{ROOT}/sub/c", f"{ROOT}/sub/new/", f"{ROOT}/sub/d",
         f"{ROOT}/e"],
        [CREATED | FILE, REMOVED | FILE, CREATED | MODIFIED | FILE, CREATED | DIR,
         REMOVED | MODIFIED | FILE, CREATED | REMOVED | FILE],
        [10, 11, 12, 13, 14, 15],
    )
    assert out == [
        EntryChange("R", "a", Action.CREATED, False),
        EntryChange("R", "sub/b", Action.DELETED, False),
        EntryChange("R", "sub/new", Action.CREATED, True),
        EntryChange("R", "e", Action.DELETED, False),  # both, order lost: a look
        DirDirty("R", "sub"),
    ]
    assert d.latest_id == 15


def test_coalesced_flags_on_one_path_are_one_look_at_its_directory() -> None:
    """Created, written and removed within the latency: the disk decides."""
    everything = CREATED | MODIFIED | REMOVED | RENAMED | kFSEventStreamEventFlagItemInodeMetaMod
    out = decoder().decode([f"{ROOT}/d/f"], [everything | FILE], [5])
    assert out == [DirDirty("R", "d")]


def test_writes_and_metadata_are_entry_changes_the_engine_checks() -> None:
    out = decoder().decode(
        [f"{ROOT}/f", f"{ROOT}/g", f"{ROOT}/h", f"{ROOT}/d", f"{ROOT}/l", f"{ROOT}/w"],
        [
            MODIFIED | FILE,
            kFSEventStreamEventFlagItemInodeMetaMod | FILE,
            kFSEventStreamEventFlagItemXattrMod | kFSEventStreamEventFlagItemChangeOwner | FILE,
            kFSEventStreamEventFlagItemInodeMetaMod | DIR,
            MODIFIED | kFSEventStreamEventFlagItemIsSymlink,
            MODIFIED | kFSEventStreamEventFlagItemInodeMetaMod | FILE,  # a write: one event
        ],
        [1, 2, 3, 4, 5, 6],
    )
    assert out == [
        EntryChange("R", "f", Action.MODIFIED, False),
        EntryChange("R", "g", Action.ATTRIB, False),
        EntryChange("R", "h", Action.ATTRIB, False),
        EntryChange("R", "d", Action.ATTRIB, True),
        EntryChange("R", "l", Action.MODIFIED, False),
        EntryChange("R", "w", Action.MODIFIED, False),
    ]


def test_a_clone_is_a_new_entry_and_a_directory_written_is_listed() -> None:
    out = decoder().decode(
        [f"{ROOT}/x/copy", f"{ROOT}/y"],
        [kFSEventStreamEventFlagItemCloned | FILE, MODIFIED | DIR],
        [1, 2],
    )
    assert out == [DirDirty("R", "x"), DirDirty("R", "y")]


def test_an_event_on_the_root_itself() -> None:
    out = decoder().decode(
        [ROOT, ROOT + "/"],
        [REMOVED | DIR, kFSEventStreamEventFlagItemInodeMetaMod | DIR],
        [1, 2],
    )
    # Removed: the engine checks the root (it ends if its path leads elsewhere now);
    # attributes: the root's stat is compared when its directory is diffed.
    assert out == [EntryChange("R", "", Action.DELETED, True), DirDirty("R", "")]


def test_a_directory_level_event_names_the_directory_to_list() -> None:
    """Streams without file events: flags None, the path is a directory, with a slash."""
    out = decoder().decode([f"{ROOT}/src/"], [kFSEventStreamEventFlagNone], [3])
    assert out == [DirDirty("R", "src")]


def test_own_events_and_kind_bits_alone_are_looks() -> None:
    out = decoder().decode([f"{ROOT}/a/b"], [kFSEventStreamEventFlagOwnEvent | FILE], [3])
    assert out == [DirDirty("R", "a")]


# ------------------------------------------------------------------ renames


def test_two_renamed_events_with_one_file_id_are_one_rename() -> None:
    out = decoder().decode(
        [f"{ROOT}/old", f"{ROOT}/sub/new", f"{ROOT}/other"],
        [RENAMED | FILE, RENAMED | FILE, MODIFIED | FILE],
        [20, 21, 22],
        [777, 777, 5],
    )
    assert out == [
        Renamed("R", "old", "R", "sub/new", False),
        EntryChange("R", "other", Action.MODIFIED, False),
    ]


def test_what_a_paired_event_says_besides_its_rename_is_kept() -> None:
    """Written before or after the move: news of the file at its last place;
    created before the move or removed after it: a look where that was."""
    out = decoder().decode(
        [f"{ROOT}/a", f"{ROOT}/d/b", f"{ROOT}/c", f"{ROOT}/e"],
        [CREATED | MODIFIED | RENAMED | FILE, RENAMED | FILE, RENAMED | FILE, RENAMED | FILE],
        [1, 2, 3, 4],
        [6, 6, 7, 7],
    )
    assert out == [
        Renamed("R", "a", "R", "d/b", False),
        EntryChange("R", "a", Action.CREATED, False),
        EntryChange("R", "d/b", Action.MODIFIED, False),
        Renamed("R", "c", "R", "e", False),
    ]
    out = decoder().decode(
        [f"{ROOT}/x", f"{ROOT}/y"],
        [RENAMED | FILE, RENAMED | REMOVED | kFSEventStreamEventFlagItemInodeMetaMod | FILE],
        [1, 2],
        [8, 8],
    )
    assert out == [
        Renamed("R", "x", "R", "y", False),
        EntryChange("R", "y", Action.DELETED, False),
        EntryChange("R", "y", Action.ATTRIB, False),
    ]


def test_a_chain_of_renames_of_one_file_is_each_move() -> None:
    out = decoder().decode(
        [f"{ROOT}/a", f"{ROOT}/b", f"{ROOT}/c"],
        [RENAMED | DIR] * 3,
        [1, 2, 3],
        [9, 9, 9],
    )
    assert out == [Renamed("R", "a", "R", "b", True), Renamed("R", "b", "R", "c", True)]


def test_a_swap_pairs_each_file_by_its_id() -> None:
    out = decoder().decode(
        [f"{ROOT}/a", f"{ROOT}/t", f"{ROOT}/b", f"{ROOT}/a", f"{ROOT}/t", f"{ROOT}/b"],
        [RENAMED | FILE] * 6,
        [1, 2, 3, 4, 5, 6],
        [1, 1, 2, 2, 1, 1],
    )
    assert out == [
        Renamed("R", "a", "R", "t", False),
        Renamed("R", "b", "R", "a", False),
        Renamed("R", "t", "R", "b", False),
    ]


def test_an_unpaired_rename_is_a_hint_for_its_place() -> None:
    """Moved in or out of the tree, or its partner in another callback: with a file
    id, a look at the entry (there or not); without, its directory is diffed, where
    the other half may be."""
    out = decoder().decode(
        [f"{ROOT}/in/x", f"{ROOT}/out/y", f"{ROOT}/w/z", f"{ROOT}/v/u"],
        [RENAMED | FILE, RENAMED | FILE, RENAMED | FILE, RENAMED | MODIFIED | FILE],
        [1, 2, 3, 4],
        [1, 2, None, 5],
    )
    assert out == [
        EntryChange("R", "in/x", Action.DELETED, False),
        EntryChange("R", "out/y", Action.DELETED, False),
        DirDirty("R", "w"),
        DirDirty("R", "v"),
    ]


def test_renames_without_file_ids_are_hints_for_both_places_in_one_run() -> None:
    """The engine diffs directories dirty together as one: it pairs them by inode."""
    out = decoder().decode(
        [f"{ROOT}/a/x", f"{ROOT}/b/x", f"{ROOT}/a/y"],
        [RENAMED | FILE, RENAMED | FILE, MODIFIED | FILE],
        [1, 2, 3],
    )
    assert out == [
        EntryChange("R", "a/y", Action.MODIFIED, False),
        DirDirty("R", "a"),
        DirDirty("R", "b"),
    ]


def test_a_directory_dirty_before_a_later_rename_is_also_dirty_where_it_went() -> None:
    """The run of dirty directories comes after the renames: one named where it was
    before a rename of the callback moved it is also named where it is now."""
    out = decoder().decode(
        [f"{ROOT}/a/deep/f", f"{ROOT}/a", f"{ROOT}/c", f"{ROOT}/c/g"],
        [CREATED | MODIFIED | FILE, RENAMED | DIR, RENAMED | DIR, CREATED | MODIFIED | FILE],
        [1, 2, 3, 4],
        [None, 9, 9, None],
    )
    assert out == [
        Renamed("R", "a", "R", "c", True),
        DirDirty("R", "a/deep"),
        DirDirty("R", "c/deep"),
        DirDirty("R", "c"),
    ]


def test_a_rename_onto_its_own_path_or_out_of_the_roots_is_a_hint() -> None:
    d = decoder()
    out = d.decode(
        [f"{ROOT}/same", f"{ROOT}/same", "/elsewhere/x", f"{ROOT}/in"],
        [RENAMED | FILE] * 4,
        [1, 2, 3, 4],
        [4, 4, 5, 5],
    )
    assert out == [
        EntryChange("R", "same", Action.DELETED, False),  # once
        EntryChange("R", "in", Action.DELETED, False),
    ]
    assert d.strays == 1


def test_a_rename_across_two_roots_is_a_hint_on_each() -> None:
    d = decoder(("A", "/r/a"), ("B", "/r/b"))
    out = d.decode(["/r/a/f", "/r/b/f"], [RENAMED | FILE] * 2, [1, 2], [3, 3])
    assert out == [EntryChange("A", "f", Action.DELETED, False),
                   EntryChange("B", "f", Action.DELETED, False)]


# ------------------------------------------------------------------ roots and paths


def test_a_root_given_through_a_link_matches_its_resolved_path() -> None:
    d = Decoder()
    d.add("T", "/tmp/w", "/private/tmp/w")
    out = d.decode(["/private/tmp/w/f", "/tmp/w/g"], [MODIFIED | FILE] * 2, [1, 2])
    assert out == [
        EntryChange("T", "f", Action.MODIFIED, False),
        EntryChange("T", "g", Action.MODIFIED, False),
    ]


def test_nested_roots_each_hear_of_a_change_under_both() -> None:
    d = decoder(("outer", "/r"), ("inner", "/r/in"))
    out = d.decode(["/r/in/f"], [MODIFIED | FILE], [1])
    assert out == [
        EntryChange("outer", "in/f", Action.MODIFIED, False),
        EntryChange("inner", "f", Action.MODIFIED, False),
    ]


def test_paths_outside_every_root_are_ignored_and_counted() -> None:
    d = decoder()
    out = d.decode(
        ["/Users/me/projector/f", "/Users/me", f"{ROOT}/f"], [MODIFIED | FILE] * 3, [1, 2, 3]
    )
    assert out == [EntryChange("R", "f", Action.MODIFIED, False)]
    assert (d.strays, d.last_stray) == (2, "/Users/me")


def test_a_removed_root_no_longer_matches() -> None:
    d = decoder()
    d.remove("R")
    d.remove("R")
    assert d.decode([f"{ROOT}/f"], [MODIFIED | FILE], [1]) == []


def test_a_root_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        Decoder().add("R", "rel/path")
    with pytest.raises(ValueError, match="at least one"):
        Decoder().add("R")


def test_paths_that_are_not_utf8_are_carried_as_surrogate_escapes() -> None:
    raw = ROOT.encode() + b"/caf\xe9"
    out = decoder().decode([raw], [MODIFIED | FILE], [1])
    assert out == [EntryChange("R", "caf\udce9", Action.MODIFIED, False)]
    assert os.fsencode("caf\udce9") == b"caf\xe9"


# ------------------------------------------------------------------ losses, roots, mounts


def test_must_scan_subdirs_is_the_subtree_at_its_path() -> None:
    d = decoder()
    out = d.decode(
        [f"{ROOT}/deep/", f"{ROOT}/deep/x"],
        [kFSEventStreamEventFlagMustScanSubDirs, MODIFIED | FILE],
        [1, 2],
    )
    # The write inside the lost subtree is covered by its rescan.
    assert out == [SubtreeLost("R", "deep")]


def test_a_loss_above_the_roots_or_anywhere_else_is_every_root() -> None:
    d = decoder(("A", "/r/a"), ("B", "/r/b"), ("C", "/s/c"))
    assert d.decode(["/r/"], [kFSEventStreamEventFlagMustScanSubDirs], [1]) == [
        SubtreeLost("A"),
        SubtreeLost("B"),
    ]
    assert d.decode(["/q"], [kFSEventStreamEventFlagMustScanSubDirs], [2]) == [
        SubtreeLost("A"),
        SubtreeLost("B"),
        SubtreeLost("C"),
    ]


@pytest.mark.parametrize(
    "dropped", [kFSEventStreamEventFlagUserDropped, kFSEventStreamEventFlagKernelDropped]
)
def test_dropped_events_are_a_loss_of_everything_the_stream_watches(dropped: int) -> None:
    d = decoder(("A", "/r/a"), ("B", "/r/b"))
    out = d.decode(
        ["/r/a/x", "/r/a/sub"],
        [CREATED | FILE, dropped | kFSEventStreamEventFlagMustScanSubDirs],
        [1, 2],
    )
    assert out == [SubtreeLost("A"), SubtreeLost("B")]


def test_root_changed_makes_the_engine_verify_the_roots_path() -> None:
    d = decoder(("outer", "/r"), ("inner", "/r/in/root"))
    out = d.decode(["/r/in/root"], [kFSEventStreamEventFlagRootChanged], [0])
    # The outer root looks at the entry; the inner one verifies its path.
    assert out == [DirDirty("outer", "in"), DirDirty("inner", "")]
    assert d.latest_id is None  # RootChanged carries id 0


def test_mounts_inside_are_rescanned_and_at_or_above_verify_the_root() -> None:
    d = decoder(("A", "/v/a"))
    for flag in (kFSEventStreamEventFlagMount, kFSEventStreamEventFlagUnmount):
        assert d.decode(["/v/a/vol"], [flag], [1]) == [SubtreeLost("A", "vol")]
        assert d.decode(["/v/a"], [flag], [2]) == [DirDirty("A", "")]
        assert d.decode(["/v"], [flag], [3]) == [DirDirty("A", "")]
        assert d.decode(["/elsewhere"], [flag], [4]) == []


def test_history_done_and_wrapped_ids_are_state_not_changes() -> None:
    d = decoder()
    out = d.decode(
        ["", f"{ROOT}/f", "/"],
        [
            kFSEventStreamEventFlagHistoryDone,
            MODIFIED | FILE,
            kFSEventStreamEventFlagEventIdsWrapped,
        ],
        [500, 501, 3],
    )
    assert out == [EntryChange("R", "f", Action.MODIFIED, False)]
    assert d.history_done
    assert (d.wrapped, d.latest_id) == (1, 3)
    d.decode([f"{ROOT}/g"], [MODIFIED | FILE], [4])
    assert d.latest_id == 4


def test_the_latest_id_is_kept_across_callbacks() -> None:
    d = decoder()
    d.decode([f"{ROOT}/a", f"{ROOT}/b"], [MODIFIED | FILE] * 2, [41, 42])
    d.decode([f"{ROOT}/c"], [kFSEventStreamEventFlagRootChanged], [0])
    assert d.latest_id == 42


def test_unknown_flag_bits_are_kept_and_their_event_is_still_a_hint() -> None:
    d = decoder()
    out = d.decode(
        [f"{ROOT}/a/new", f"{ROOT}/b"], [0x10000000 | FILE | 0x00800000, 0x20000000], [1, 2]
    )
    # Kind bits with an unknown one: its directory; unknown alone: the entry itself.
    assert out == [DirDirty("R", "a"), DirDirty("R", "b")]
    assert d.unknown_bits == 0x30800000


# ------------------------------------------------------------------ extended data


def test_extended_data_gives_paths_and_file_ids() -> None:
    entries = [
        {"path": f"{ROOT}/a", "fileID": 12},
        {"path": f"{ROOT}/b".encode(), "fileID": 12},
        {"path": f"{ROOT}/c"},
    ]
    paths, ids = _abi.split_extended(entries)
    assert ids == [12, 12, None]
    out = decoder().decode(paths, [RENAMED | FILE, RENAMED | FILE, CREATED | FILE], [1, 2, 3], ids)
    assert out == [Renamed("R", "a", "R", "b", False), EntryChange("R", "c", Action.CREATED, False)]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([["not", "a", "dict"]], "not a dictionary"),
        ([{"fileID": 3}], "no path"),
        ([{"path": 7}], "no path"),
        ([{"path": "/a", "fileID": "12"}], "not an integer"),
        ([{"path": "/a", "fileID": True}], "not an integer"),
    ],
)
def test_garbled_extended_data_is_a_clear_error(entries: list[object], message: str) -> None:
    with pytest.raises(FSEventsDecodeError, match=message):
        _abi.split_extended(entries)


# ------------------------------------------------------------------ garbled callbacks


@pytest.mark.parametrize(
    ("paths", "flags", "ids", "file_ids", "message"),
    [
        (["/a", "/b"], [MODIFIED], [1, 2], None, "2 paths, 1 flags, 2 event ids"),
        (["/a"], [MODIFIED], [], None, "1 paths, 1 flags, 0 event ids"),
        (["/a"], [MODIFIED], [1], [1, 2], "2 file ids"),
        (["/a"], [-1], [1], None, "flags -1"),
        (["/a"], [2**32], [1], None, "32-bit"),
        (["/a"], ["x"], [1], None, "flags 'x'"),
        (["/a"], [MODIFIED], [2**64], None, "64-bit"),
        (["/a"], [MODIFIED], [None], None, "id None"),
        (["/a"], [True], [1], None, "flags True"),
        (["/a"], [MODIFIED], [1], [-5], "file id -5"),
        ([None], [MODIFIED], [1], None, "path is a NoneType"),
        (["relative/x"], [MODIFIED], [1], None, "not absolute"),
        ([""], [MODIFIED], [1], None, "not absolute"),
        ([b"/a\0b"], [MODIFIED], [1], None, "NUL"),
    ],
)
def test_garbled_arrays_are_a_clear_error_and_change_nothing(
    paths: list[object], flags: list[object], ids: list[object], file_ids: list[object] | None,
    message: str,
) -> None:
    d = decoder()
    d.decode([f"{ROOT}/f"], [MODIFIED | FILE], [7])
    with pytest.raises(FSEventsDecodeError, match=message):
        d.decode(paths, flags, ids, file_ids)
    assert d.latest_id == 7
    assert d.lost() == [SubtreeLost("R")]


def test_an_empty_callback_is_nothing() -> None:
    assert decoder().decode([], [], [], []) == []

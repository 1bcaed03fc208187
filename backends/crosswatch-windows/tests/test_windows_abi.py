"""The Windows backend's pure layer: records decoded byte for byte, and what they mean."""

from __future__ import annotations

import ctypes
import struct
import sys

import pytest
from crosswatch_windows import WindowsBackend, _abi
from crosswatch_windows._backend import buffer_size
from crosswatch_windows._kernel32 import Kernel32, WindowsOnlyError

from crosswatch import ConfigError, CrosswatchWarning
from crosswatch.backend import Action, DirDirty, EntryChange, Options, Renamed, SubtreeLost

ADDED, REMOVED, MODIFIED = 1, 2, 3
OLD, NEW = 4, 5
H = "root"


def utf16(name: str) -> bytes:
    return name.encode("utf-16-le", "surrogatepass")


def plain(action: int, name: str, *, last: bool = False, pad: int = 0) -> bytes:
    """A FILE_NOTIFY_INFORMATION as the OS writes it: padded to 4 bytes unless last."""
    raw = utf16(name)
    body = struct.pack("<III", 0, action, len(raw)) + raw
    if last:
        return body + b"\0" * pad
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<I", len(body)) + body[4:]


def extended(
    action: int, name: str, *, file_id: int, parent: int = 5, attributes: int = 0x20,
    size: int = 0, last: bool = False,
) -> bytes:
    """A FILE_NOTIFY_EXTENDED_INFORMATION, padded to 8 bytes unless last."""
    raw = utf16(name)
    times = (132_000_000_000_000_001, 132_000_000_000_000_002, 132_000_000_000_000_003,
             132_000_000_000_000_004)
    head = struct.pack("<II", 0, action) + struct.pack("<4q", *times)
    head += struct.pack("<2q", 4096, size) + struct.pack("<II", attributes, 0)
    head += struct.pack("<QQ", file_id, parent) + struct.pack("<I", len(raw))
    assert len(head) == 84
    body = head + raw
    if last:
        return body
    body += b"\0" * (-len(body) % 8)
    return struct.pack("<I", len(body)) + body[4:]


def chain(*parts: bytes) -> bytes:
    """Records joined; the last one is made with last=True by the caller."""
    return b"".join(parts)


# ------------------------------------------------------------------ layouts


def test_the_struct_layouts_match_the_c_layouts() -> None:
    assert _abi.NOTIFY_HEADER.size == _abi.FileNotifyInformation.FileName.offset == 12
    assert _abi.EXTENDED_HEADER.size == _abi.FileNotifyExtendedInformation.FileName.offset == 84
    ext = _abi.FileNotifyExtendedInformation
    assert [ext.CreationTime.offset, ext.FileSize.offset, ext.FileAttributes.offset] == [8, 48, 56]
    assert [ext.FileId.offset, ext.ParentFileId.offset, ext.FileNameLength.offset] == [64, 72, 80]
    assert ctypes.sizeof(ext) == 88


def test_the_action_codes_are_the_documented_ones() -> None:
    assert (
        _abi.FILE_ACTION_ADDED, _abi.FILE_ACTION_REMOVED, _abi.FILE_ACTION_MODIFIED,
        _abi.FILE_ACTION_RENAMED_OLD_NAME, _abi.FILE_ACTION_RENAMED_NEW_NAME,
    ) == (1, 2, 3, 4, 5)
    assert _abi.ERROR_NOTIFY_ENUM_DIR == 1022


# ------------------------------------------------------------------ decoding


def test_a_single_record() -> None:
    buf = plain(ADDED, "a.txt", last=True)
    assert buf == b"\0\0\0\0\x01\0\0\0\x0a\0\0\0a\0.\0t\0x\0t\0"
    assert _abi.records(buf) == [_abi.Record(ADDED, "a.txt")]


def test_several_records_padded_to_four_bytes() -> None:
    buf = chain(plain(ADDED, "abc"), plain(MODIFIED, "sub\\d.txt"), plain(REMOVED, "x", last=True))
    assert struct.unpack_from("<I", buf)[0] == 20  # 12 + 6 name bytes, padded to 20
    assert _abi.records(buf) == [
        _abi.Record(ADDED, "abc"),
        _abi.Record(MODIFIED, "sub\\d.txt"),
        _abi.Record(REMOVED, "x"),
    ]


def test_extended_records_carry_file_ids_sizes_and_attributes() -> None:
    buf = chain(
        extended(ADDED, "dir", file_id=0x0001_0000_0000_0042, attributes=0x10),
        extended(MODIFIED, "dir\\f", file_id=2**64 - 1, parent=0x0001_0000_0000_0042, size=77,
                 last=True),
    )
    first, second = _abi.records(buf, extended=True)
    assert (first.action, first.name) == (ADDED, "dir")
    assert first.extended is not None
    assert second.extended is not None
    assert first.extended.file_id == 0x0001_0000_0000_0042
    assert first.extended.is_dir
    assert second.extended.file_id == 2**64 - 1
    assert second.extended.parent_file_id == 0x0001_0000_0000_0042
    assert (second.extended.file_size, second.extended.allocated_length) == (77, 4096)
    assert second.extended.creation_time == 132_000_000_000_000_001
    assert second.extended.last_access_time == 132_000_000_000_000_004
    assert not second.extended.is_dir


def test_non_ascii_and_surrogate_pair_names() -> None:
    names = ["été", "日本語\\ファイル", "emoji-\U0001f600.txt", "lone-\udc80"]
    buf = chain(*(plain(ADDED, n) for n in names[:-1]), plain(ADDED, names[-1], last=True))
    assert [r.name for r in _abi.records(buf)] == names
    assert len(utf16("\U0001f600")) == 4  # a surrogate pair: two UTF-16 units


def test_trailing_padding_after_the_last_record_is_fine() -> None:
    assert _abi.records(plain(ADDED, "a", last=True, pad=2)) == [_abi.Record(ADDED, "a")]


def test_an_empty_buffer_has_no_records() -> None:
    assert _abi.records(b"") == []


# ------------------------------------------------------------------ garbled buffers


def garbled(buf: bytes, match: str, *, extended: bool = False) -> None:
    with pytest.raises(_abi.GarbledBufferError, match=match):
        _abi.records(buf, extended=extended)


def test_a_buffer_cut_inside_a_header() -> None:
    garbled(plain(ADDED, "abc", last=True)[:10], "header does not fit")
    garbled(extended(ADDED, "abc", file_id=1, last=True)[:60], "header does not fit",
            extended=True)


def test_a_buffer_cut_inside_a_name() -> None:
    garbled(plain(ADDED, "abcdef", last=True)[:-2], "runs 2 bytes past the end")


def test_an_offset_past_the_end() -> None:
    buf = bytearray(plain(ADDED, "ab", last=True))
    struct.pack_into("<I", buf, 0, 400)
    garbled(bytes(buf), "cut short, or an offset points past its end")


def test_an_odd_name_length() -> None:
    buf = bytearray(plain(ADDED, "ab", last=True))
    struct.pack_into("<I", buf, 8, 3)
    garbled(bytes(buf), "name length 3 is odd")


def test_a_huge_name_length() -> None:
    buf = bytearray(plain(ADDED, "ab", last=True))
    struct.pack_into("<I", buf, 8, 0xFFFF_FFFE)
    garbled(bytes(buf), "past the end")


def test_an_unaligned_offset() -> None:
    buf = bytearray(chain(plain(ADDED, "abc"), plain(ADDED, "d", last=True)))
    struct.pack_into("<I", buf, 0, 18)
    garbled(bytes(buf), "not a multiple of 4")


def test_an_offset_that_loops_back_or_stays() -> None:
    buf = bytearray(chain(plain(ADDED, "abc"), plain(ADDED, "d", last=True)))
    struct.pack_into("<I", buf, 0, 4)  # into its own header: would read the record again
    garbled(bytes(buf), "falls inside this record")
    # A second record pointing back to the first is the same: an offset cannot go back.
    loop = bytearray(chain(plain(ADDED, "ab"), plain(ADDED, "cd", last=True)))
    struct.pack_into("<I", loop, 16, 4)
    garbled(bytes(loop), "falls inside this record")


def test_a_chain_that_ends_early() -> None:
    buf = bytearray(chain(plain(ADDED, "abc"), plain(ADDED, "d", last=True)))
    struct.pack_into("<I", buf, 0, 0)
    garbled(bytes(buf), "bytes follow the last record")


@pytest.mark.parametrize("name", ["a\\\\b", "\\a", "a\\", "..\\x", "a\\.", "a/b", "a\0b"])
def test_a_name_that_is_no_relative_path(name: str) -> None:
    garbled(plain(ADDED, name, last=True), "not a relative path")


def test_random_garbage_never_crashes_or_hangs() -> None:
    import random

    rng = random.Random(14)
    good = chain(plain(ADDED, "abc"), plain(OLD, "x\\y"), plain(NEW, "x\\z", last=True))
    for _ in range(3000):
        buf = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        cut = bytes(buf[: rng.randint(0, len(buf))]) if rng.random() < 0.3 else bytes(buf)
        for ext in (False, True):
            try:
                _abi.records(cut, extended=ext)
            except _abi.GarbledBufferError:
                pass


# ------------------------------------------------------------------ observations


def test_entry_actions_map_to_entry_changes_with_engine_separators() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(plain(ADDED, "a"), plain(MODIFIED, "sub\\b"), plain(REMOVED, "sub\\deep\\c"),
                plain(_abi.FILE_ACTION_MODIFIED_STREAM, "s"),
                plain(_abi.FILE_ACTION_ADDED_STREAM, "sub\\t:meta", last=True))
    assert t.completed(H, buf) == [
        EntryChange(H, "a", Action.CREATED),
        EntryChange(H, "sub/b", Action.MODIFIED),
        EntryChange(H, "sub/deep/c", Action.DELETED),
        EntryChange(H, "s", Action.MODIFIED),
        EntryChange(H, "sub/t", Action.MODIFIED),
    ]


def test_backslash_names_pass_unchanged_where_backslash_is_the_separator() -> None:
    t = _abi.Translator(sep="\\")
    assert t.completed(H, plain(ADDED, "sub\\b", last=True)) == [
        EntryChange(H, "sub\\b", Action.CREATED)
    ]


def test_the_default_separator_is_the_engines() -> None:
    import os

    got = _abi.Translator().completed(H, plain(ADDED, "sub\\b", last=True))
    assert got == [EntryChange(H, os.path.join("sub", "b"), Action.CREATED)]


def test_a_rename_pair_is_one_renamed() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(plain(OLD, "d\\old"), plain(NEW, "d\\new"), plain(ADDED, "z", last=True))
    assert t.completed(H, buf) == [
        Renamed(H, "d/old", H, "d/new"),
        EntryChange(H, "z", Action.CREATED),
    ]


def test_an_extended_rename_says_whether_a_directory_moved() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(extended(OLD, "a", file_id=9, attributes=0x10),
                extended(NEW, "b", file_id=9, attributes=0x10, last=True))
    assert t.completed(H, buf, extended=True) == [Renamed(H, "a", H, "b", True)]


def test_a_rename_pair_split_across_buffers_shares_a_cookie() -> None:
    t = _abi.Translator(sep="/")
    first = t.completed(H, chain(plain(ADDED, "x"), plain(OLD, "old", last=True)))
    second = t.completed(H, chain(plain(NEW, "new"), plain(MODIFIED, "x", last=True)))
    assert first[0] == EntryChange(H, "x", Action.CREATED)
    moved_from, moved_to = first[1], second[0]
    assert isinstance(moved_from, EntryChange)
    assert isinstance(moved_to, EntryChange)
    assert (moved_from.name, moved_from.action) == ("old", Action.MOVED_FROM)
    assert (moved_to.name, moved_to.action) == ("new", Action.MOVED_TO)
    assert moved_from.cookie is not None
    assert moved_from.cookie == moved_to.cookie
    assert second[1] == EntryChange(H, "x", Action.MODIFIED)


def test_a_carried_old_name_pairs_only_on_its_own_handle() -> None:
    t = _abi.Translator(sep="/")
    (moved_from,) = t.completed("one", plain(OLD, "old", last=True))
    (other,) = t.completed("two", plain(NEW, "new", last=True))
    (mine,) = t.completed("one", plain(NEW, "new", last=True))
    assert isinstance(moved_from, EntryChange)
    assert isinstance(other, EntryChange)
    assert isinstance(mine, EntryChange)
    assert other.cookie != moved_from.cookie
    assert mine.cookie == moved_from.cookie


def test_unpaired_halves_get_cookies_nothing_else_has() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(
        plain(NEW, "in"), plain(OLD, "out"), plain(ADDED, "y"), plain(OLD, "end", last=True)
    )
    moved_in, moved_out, created, trailing = t.completed(H, buf)
    assert isinstance(moved_in, EntryChange)
    assert isinstance(moved_out, EntryChange)
    assert isinstance(trailing, EntryChange)
    assert moved_in.action is Action.MOVED_TO
    assert moved_out.action is Action.MOVED_FROM
    assert created == EntryChange(H, "y", Action.CREATED)
    cookies = {moved_in.cookie, moved_out.cookie, trailing.cookie}
    assert None not in cookies
    assert len(cookies) == 3
    # The next buffer does not start with the new name: the carried half is not used.
    (late,) = t.completed(H, plain(ADDED, "q", last=True))
    (stray,) = t.completed(H, plain(NEW, "later", last=True))
    assert late == EntryChange(H, "q", Action.CREATED)
    assert isinstance(stray, EntryChange)
    assert stray.cookie not in cookies


def test_a_move_to_another_directory_pairs_by_file_id() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(extended(REMOVED, "a\\f", file_id=77), extended(ADDED, "b\\f", file_id=77),
                extended(REMOVED, "gone", file_id=78), extended(ADDED, "new", file_id=79),
                extended(REMOVED, "zero", file_id=0),
                extended(ADDED, "zero2", file_id=0, last=True))
    assert t.completed(H, buf, extended=True) == [
        Renamed(H, "a/f", H, "b/f", False),
        EntryChange(H, "gone", Action.DELETED, False),
        EntryChange(H, "new", Action.CREATED, False),
        EntryChange(H, "zero", Action.DELETED, False),
        EntryChange(H, "zero2", Action.CREATED, False),
    ]


def test_without_file_ids_a_move_stays_a_deletion_and_a_creation() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(plain(REMOVED, "a\\f"), plain(ADDED, "b\\f", last=True))
    assert t.completed(H, buf) == [
        EntryChange(H, "a/f", Action.DELETED),
        EntryChange(H, "b/f", Action.CREATED),
    ]


def test_a_move_pairs_across_the_new_parents_modification() -> None:
    # What Windows writes for a move to another directory of the tree: the old name
    # removed, the new parent modified, the new name added.
    t = _abi.Translator(sep="/")
    buf = chain(extended(REMOVED, "a\\f", file_id=77), extended(MODIFIED, "b", file_id=3,
                attributes=0x10), extended(ADDED, "b\\f", file_id=77),
                extended(MODIFIED, "a", file_id=2, attributes=0x10, last=True))
    assert t.completed(H, buf, extended=True) == [
        Renamed(H, "a/f", H, "b/f", False),
        EntryChange(H, "b", Action.MODIFIED, True),
        EntryChange(H, "a", Action.MODIFIED, True),
    ]
    # Anything else between them, or three modifications, and they are not paired.
    for between in ([extended(ADDED, "c", file_id=9)], [extended(MODIFIED, "x", file_id=4)] * 3):
        buf = chain(extended(REMOVED, "a\\f", file_id=77), *between,
                    extended(ADDED, "b\\f", file_id=77, last=True))
        found = t.completed(H, buf, extended=True)
        assert found[0] == EntryChange(H, "a/f", Action.DELETED, False)
        assert found[-1] == EntryChange(H, "b/f", Action.CREATED, False)


def test_a_removal_and_modifications_that_end_a_buffer_are_a_deletion() -> None:
    # What Windows writes for a deletion: no half is carried to the next buffer.
    t = _abi.Translator(sep="/")
    first = t.completed(H, chain(extended(REMOVED, "a\\f", file_id=8),
                                 extended(MODIFIED, "a", file_id=3, attributes=0x10, last=True)),
                        extended=True)
    assert first == [EntryChange(H, "a/f", Action.DELETED, False),
                     EntryChange(H, "a", Action.MODIFIED, True)]
    (added,) = t.completed(H, extended(ADDED, "b\\f", file_id=8, last=True), extended=True)
    assert added == EntryChange(H, "b/f", Action.CREATED, False)


def test_a_move_by_file_id_split_across_buffers_shares_a_cookie() -> None:
    t = _abi.Translator(sep="/")
    (moved_from,) = t.completed(H, extended(REMOVED, "a", file_id=5, attributes=0x10, last=True),
                                extended=True)
    (moved_to,) = t.completed(H, extended(ADDED, "b", file_id=5, attributes=0x10, last=True),
                              extended=True)
    assert moved_from == EntryChange(H, "a", Action.MOVED_FROM, True, moved_from.cookie)
    assert moved_to == EntryChange(H, "b", Action.MOVED_TO, True, moved_from.cookie)
    assert moved_from.cookie is not None
    # Another file added first: the removal was a deletion, which the engine settles.
    (trailing,) = t.completed(H, extended(REMOVED, "c", file_id=6, last=True), extended=True)
    (other,) = t.completed(H, extended(ADDED, "d", file_id=7, last=True), extended=True)
    assert isinstance(trailing, EntryChange)
    assert trailing.action is Action.MOVED_FROM
    assert other == EntryChange(H, "d", Action.CREATED, False)


def test_an_unknown_action_makes_the_engine_look_at_the_directory() -> None:
    t = _abi.Translator(sep="/")
    buf = chain(plain(0x77, "sub\\f"), plain(0, "top", last=True))
    assert t.completed(H, buf) == [DirDirty(H, "sub"), DirDirty(H, "")]


def test_a_zero_byte_result_is_a_lost_subtree() -> None:
    assert _abi.Translator().completed(H, b"") == [SubtreeLost(H)]


def test_error_notify_enum_dir_is_a_lost_subtree() -> None:
    got = _abi.Translator().completed(H, b"", error=_abi.ERROR_NOTIFY_ENUM_DIR)
    assert got == [SubtreeLost(H)]


def test_other_errors_are_not_the_translators() -> None:
    with pytest.raises(ValueError, match="error 5 is not a notification result"):
        _abi.Translator().completed(H, b"", error=5)


def test_a_garbled_buffer_is_a_lost_subtree_with_a_warning() -> None:
    t = _abi.Translator(sep="/")
    t.completed(H, plain(OLD, "old", last=True))  # a half carried over
    buf = chain(plain(ADDED, "fine"), plain(ADDED, "cut", last=True))[:-2]
    with pytest.warns(CrosswatchWarning, match="garbled at byte 20: the 6-byte name.*rescanning"):
        assert t.completed(H, buf) == [SubtreeLost(H)]
    # The carried half went with the loss: a new name now pairs with nothing.
    (moved_to,) = t.completed(H, plain(NEW, "new", last=True))
    assert isinstance(moved_to, EntryChange)
    assert moved_to.cookie != 1


def test_a_lost_subtree_drops_a_carried_half() -> None:
    t = _abi.Translator(sep="/")
    (moved_from,) = t.completed(H, plain(OLD, "old", last=True))
    assert t.completed(H, b"") == [SubtreeLost(H)]
    (moved_to,) = t.completed(H, plain(NEW, "new", last=True))
    assert isinstance(moved_from, EntryChange)
    assert isinstance(moved_to, EntryChange)
    assert moved_to.cookie != moved_from.cookie


# ------------------------------------------------------------------ the plugin


@pytest.mark.skipif(sys.platform == "win32", reason="the probe on other OSes")
def test_the_probe_says_it_needs_windows() -> None:
    probe = WindowsBackend.probe(".")
    assert (probe.backend, probe.available) == ("windows", False)
    assert probe.reason == "needs Windows (ReadDirectoryChangesW)"


@pytest.mark.skipif(sys.platform == "win32", reason="kernel32 is there on Windows")
def test_kernel32_and_the_backend_refuse_to_open_off_windows() -> None:
    door = Kernel32()  # made at import time too: it loads nothing until called
    assert not door.available()
    with pytest.raises(WindowsOnlyError, match="only on Windows"):
        door.create_file(".", 1, 7, 3, 0x42000000)
    with pytest.raises(WindowsOnlyError, match="only on Windows"):
        WindowsBackend(Options())


def test_the_plugin_registers_the_backend_and_selection_passes_over_it() -> None:
    import crosswatch_windows

    from crosswatch._plugins import Plugins
    from crosswatch._select import probe_all

    plugins = Plugins(autoload=False, extra=[crosswatch_windows])
    assert plugins.backends["windows"] is WindowsBackend
    assert WindowsBackend.capabilities.recursive
    (windows,) = [p for p in probe_all(".", plugins) if p.backend == "windows"]
    assert not windows.available
    assert "ReadDirectoryChangesW" in windows.reason


def test_the_buffer_size_option() -> None:
    assert buffer_size(Options()) == 65536
    assert buffer_size(Options(extra={"buffer_size": 4096})) == 4096
    for bad in (4097, 16, 2**30, "64k", True):
        with pytest.raises(ConfigError, match="buffer_size"):
            buffer_size(Options(extra={"buffer_size": bad}))


@pytest.mark.skipif(sys.platform == "win32", reason="the import on other OSes")
def test_importing_and_probing_touch_no_windows_api() -> None:
    import subprocess

    # Traps where kernel32 would be reached; the probe runs as on Windows too.
    code = """if True:
        import ctypes, sys

        class Trap:
            def __getattr__(self, name):
                raise AssertionError("a Windows API was touched: " + name)

            def __call__(self, *args, **kwargs):
                raise AssertionError("a Windows API was called")

        ctypes.WinDLL = ctypes.windll = ctypes.WinError = Trap()
        import crosswatch_windows, crosswatch_windows._kernel32
        from crosswatch_windows import WindowsBackend
        print(WindowsBackend.probe(".").reason)
        sys.platform = "win32"
        print(WindowsBackend.probe(".").reason)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here, there = out.stdout.splitlines()
    assert here == "needs Windows (ReadDirectoryChangesW)"
    assert there == "one recursive ReadDirectoryChangesW handle per root"

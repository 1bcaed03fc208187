"""The core's OS facts (``crosswatch._os``) and their fallbacks, forced here."""

from __future__ import annotations

import os
import selectors
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crosswatch import Change, Watcher, _os
from crosswatch.testing import collect, force_portable, needs_fuse, open_fds
from crosswatch.testing._platform import WINDOWS, case_folds

#: Windows sockets are handles, not C runtime descriptors: ``fstat`` cannot tell
#: their type, and the descriptors listed do not include them.
SOCKETS_ARE_FDS = not WINDOWS


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch) -> None:
    force_portable(monkeypatch)


def _waits(selector: selectors.BaseSelector, timeout: float) -> bool:
    """Does the selector see its waker readable within ``timeout``?"""
    return bool(selector.select(timeout))


@pytest.mark.parametrize(
    "pipes",
    [
        pytest.param(True, marks=pytest.mark.skipif(
            WINDOWS, reason="Windows select takes sockets only, never pipes")),
        False,
    ],
    ids=["pipe", "socketpair"],
)
def test_a_waker_wakes_a_selector_from_another_thread(
    pipes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_os, "SELECTS_PIPES", pipes)
    before = open_fds()
    waker = _os.Waker()
    if pipes or SOCKETS_ARE_FDS:
        mode = os.fstat(waker.fileno()).st_mode
        assert stat.S_ISFIFO(mode) if pipes else stat.S_ISSOCK(mode)
    with selectors.DefaultSelector() as selector:
        selector.register(waker.fileno(), selectors.EVENT_READ)
        assert not _waits(selector, 0)
        thread = threading.Timer(0.05, waker.wake)
        thread.start()
        assert _waits(selector, 20.0)
        thread.join()
        for _ in range(100_000):  # far past any buffer: it never blocks
            waker.wake()
        waker.drain()
        assert not _waits(selector, 0)  # drained: the next wait sleeps
        waker.wake()
        assert _waits(selector, 0)
        selector.unregister(waker.fileno())
    waker.close()
    waker.close()
    waker.wake()  # closed: nothing happens
    waker.drain()
    assert waker.fileno() == -1
    assert open_fds() == before


def _modes(fds: set[int]) -> list[int]:
    """The file types of those of ``fds`` still open (one was ``/proc/self/fd``'s)."""
    modes = []
    for fd in fds:
        try:
            modes.append(os.fstat(fd).st_mode)
        except OSError:
            pass
    return modes


def _listed(opened: _os.Opened) -> list[str]:
    try:
        with _os.entries(opened) as it:
            return sorted(e.name for e in it)
    finally:
        _os.close(opened)


@pytest.mark.parametrize("by_fd", [True, False], ids=["descriptor", "path"])
def test_a_directory_is_opened_with_its_stat_and_listed(
    by_fd: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if by_fd:
        if not hasattr(os, "O_DIRECTORY") or os.scandir not in os.supports_fd:
            pytest.skip("this OS lists no directory by descriptor")
        monkeypatch.setattr(_os, "DIR_FLAGS", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        monkeypatch.setattr(_os, "LISTS_BY_FD", True)
    else:
        force_portable(monkeypatch)
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    before = open_fds()
    opened, st = _os.open_listing(str(tmp_path))
    assert _listed(opened) == ["d", "f"]
    assert isinstance(opened, int) is by_fd
    assert os.path.samestat(st, os.stat(tmp_path))
    assert open_fds() == before
    with pytest.raises(NotADirectoryError):
        _os.open_listing(str(tmp_path / "f"))
    with pytest.raises(FileNotFoundError):
        _os.open_listing(str(tmp_path / "missing"))
    assert open_fds() == before


def _swap(path: Path, aside: Path) -> None:
    """Put another directory at ``path``, the one there moved to ``aside``."""
    os.rename(path, aside)
    path.mkdir()
    (path / "other").write_text("x")


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_listing_fallback_detects_a_directory_replaced_while_opened(
    when: str, portable: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path led elsewhere between the first stat and the listing's open (it
    lists the other directory), or between the open and the second stat."""
    target, aside = tmp_path / "d", tmp_path / "aside"
    target.mkdir()
    (target / "mine").write_text("x")
    real = os.scandir

    def scandir(path: str) -> Iterator[os.DirEntry[str]]:
        if when == "before":
            _swap(target, aside)
        listing = real(path)
        if when == "after":
            _swap(target, aside)
        return listing

    monkeypatch.setattr(os, "scandir", scandir)
    before = open_fds()
    with pytest.raises(_os.Replaced) as replaced:
        _os.open_listing(str(target))
    assert isinstance(replaced.value, FileNotFoundError)  # the engine looks again later
    assert replaced.value.filename == str(target)
    assert open_fds() == before  # the listing opened is closed


def test_the_scanner_lists_by_path_where_descriptors_cannot(
    portable: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the fallbacks forced, no directory is opened as a descriptor and the
    watcher waits on a socket pair; events come as ever."""
    (tmp_path / "sub").mkdir()
    opened_dirs: list[str] = []
    real_open: Callable[..., int] = os.open

    def spy(path: str, flags: int, *args: object, **kwargs: object) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            opened_dirs.append(path)
        return fd

    monkeypatch.setattr(os, "open", spy)
    before = open_fds()
    with Watcher(str(tmp_path), backend="polling", poll_interval=0.05) as w:
        modes = _modes(open_fds() - before)
        assert any(stat.S_ISSOCK(m) for m in modes) or not SOCKETS_ARE_FDS
        assert not any(stat.S_ISFIFO(m) for m in modes)
        (tmp_path / "sub" / "f").write_text("x")
        events = collect(w, lambda ev: any(e.path.endswith("f") for e in ev))
    assert (Change.CREATED, str(tmp_path / "sub" / "f")) in {(e.kind, e.path) for e in events}
    assert opened_dirs == []
    assert open_fds() == before


_BARE_OS = """
import importlib, os, pkgutil, sys
for name in ("O_DIRECTORY", "O_PATH", "O_CLOEXEC"):
    if hasattr(os, name):  # macOS has no O_PATH; Windows none of them
        delattr(os, name)
os.supports_fd.discard(os.scandir)
os.supports_dir_fd.clear()
import crosswatch
for module in pkgutil.walk_packages(crosswatch.__path__, "crosswatch."):
    if module.name != "crosswatch.__main__":
        importlib.import_module(module.name)
from crosswatch import _longpath, _os
assert not _os.LISTS_BY_FD and not _longpath.WALKS
print("imported")
"""


def test_the_core_imports_where_the_os_has_no_directory_descriptors() -> None:
    """No ``O_DIRECTORY``, ``O_PATH``, ``O_CLOEXEC``, ``scandir(fd)`` or ``dir_fd``
    (as on Windows): every module of the core still imports."""
    done = subprocess.run(
        [sys.executable, "-c", _BARE_OS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "imported\n"


# ---------------------------------------------------------------- names that fold


def test_a_file_system_that_tells_cases_apart_is_found_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case_folds(tmp_path):
        pytest.skip("the temporary directory's file system folds case (macOS, Windows)")
    monkeypatch.setattr(_os, "FOLDS_NAMES", None)
    (tmp_path / "Entry").write_text("")
    assert _os.folds_names(str(tmp_path), ["Entry"]) is False
    (tmp_path / "ENTRY").write_text("")  # both spellings, two entries: still apart
    assert _os.folds_names(str(tmp_path), ["Entry", "ENTRY"]) is False
    assert _os.folds_names(str(tmp_path)) is False  # by the path's own names


@needs_fuse
def test_a_file_system_that_folds_names_is_found_so(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from crosswatch.testing import FoldingFS

    monkeypatch.setattr(_os, "FOLDS_NAMES", None)
    with FoldingFS(tmp_path) as fs:
        top = os.path.join(fs.mountpoint, "123")  # no letter of its own to swap
        os.mkdir(top)
        Path(top, "Entry").write_text("")
        assert _os.folds_names(top, ["Entry"]) is True
        inner = os.path.join(fs.mountpoint, "inner")
        os.mkdir(inner)
        assert _os.folds_names(inner) is True  # by its own name, in the mount


def test_some_names_come_from_a_first_listing_without_unpacking_it(tmp_path: Path) -> None:
    from crosswatch import _tree

    for n in range(5):
        (tmp_path / f"f{n}").write_text("")
    children = _tree.Children(_tree.Node(str(tmp_path), None, os.stat(tmp_path)))
    with os.scandir(tmp_path) as it:
        children.take_first_listing(list(it))
    assert children.packed()
    names = children.some_names(3)
    assert len(names) == 3
    assert set(names) <= {f"f{n}" for n in range(5)}
    assert sorted(children.some_names(10)) == [f"f{n}" for n in range(5)]
    assert children.packed()  # still held whole


def test_without_a_letter_to_swap_the_os_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_os, "FOLDS_NAMES", None)
    bare = tmp_path / "1"
    bare.mkdir()
    (bare / "2").write_text("")
    monkeypatch.setattr(_os, "_spellings", lambda path, names: iter(()))
    for platform, expected in (("linux", False), ("win32", True)):
        monkeypatch.setattr(sys, "platform", platform)
        assert _os.folds_names(str(bare)) is expected


def test_where_the_os_says_so_every_root_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_os, "FOLDS_NAMES", True)
    assert _os.folds_names(str(tmp_path)) is True


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("readme.TXT", "README.txt"),
        ("caf\u00e9", "cafe\u0301"),  # composed and decomposed
        ("CAF\u00c9", "cafe\u0301"),
        ("stra\u00dfe", "STRASSE"),  # caseless matching: full case folding
    ],
)
def test_two_spellings_of_one_name_fold_alike(one: str, other: str) -> None:
    from crosswatch._engine._spellings import folded

    assert folded(one) == folded(other)


def test_different_names_fold_apart() -> None:
    from crosswatch._engine._spellings import folded

    assert folded("a") != folded("b")
    assert folded("caf\u00e9") != folded("cafe")


def test_where_a_listing_lacks_identities_entries_are_stated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Windows, where ``DirEntry.stat()`` has zeros for ``st_dev``/``st_ino``:
    a rename found by a rescan must still pair by identity."""
    force_portable(monkeypatch)
    calls: list[str] = []
    real_lstat = os.lstat

    def counting(path: object, *args: object, **kwargs: object) -> os.stat_result:
        calls.append(str(path))
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    (tmp_path / "a").write_text("x")
    with Watcher(tmp_path, backend="polling", poll_interval=0.05) as w:
        monkeypatch.setattr(os, "lstat", counting)
        os.rename(tmp_path / "a", tmp_path / "b")
        events = collect(w, lambda evs: any(e.kind is Change.MOVED for e in evs), timeout=20)
    moved = [e for e in events if e.kind is Change.MOVED]
    assert [(e.src_path, e.path) for e in moved] == [
        (str(tmp_path / "a"), str(tmp_path / "b"))
    ]
    assert str(tmp_path / "b") in calls  # the listed entry was stated by path


def test_a_first_listing_with_file_ids_past_64_bits_is_stored_entry_by_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crosswatch import _tree

    (tmp_path / "a").write_text("")
    (tmp_path / "b").write_text("")
    # ReFS file ids are 128 bits: the packed listing cannot hold them
    monkeypatch.setattr(_tree, "_INODE", lambda entry: 2**64 + len(entry.name))
    children = _tree.Children(_tree.Node(str(tmp_path), None, os.stat(tmp_path)))
    with os.scandir(tmp_path) as it:
        assert children.take_first_listing(list(it)) is None
    assert not children  # nothing stored: the caller stores them one by one

"""Path I/O past PATH_MAX: the same answers as the plain calls give for short paths."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crosswatch import _longpath as longpath
from crosswatch.testing import open_fds, tmpfs
from crosswatch.testing._deep import BY_FD, in_dir, make_chain, remove_tree, touch

DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
DEPTH = 1500  # "/level" * 1500: more than twice PATH_MAX

pytestmark = pytest.mark.skipif(
    not (BY_FD and longpath.WALKS),
    reason="paths past PATH_MAX are walked through directory descriptors (dir_fd), "
    "which this OS lacks (Windows)",
)


@pytest.fixture
def deep(tmp_path: Path) -> Iterator[str]:
    """A chain of DEPTH directories (on tmpfs where there is one): the deepest one's path."""
    top = tempfile.mkdtemp(dir=tmpfs() or str(tmp_path))
    os.rmdir(top)
    make_chain(top, "level", DEPTH)
    yield top + "/level" * DEPTH
    remove_tree(top)


def test_a_deep_directory_is_opened_and_stated_through_pieces(deep: str) -> None:
    assert len(os.fsencode(deep)) > 2 * longpath.PATH_MAX
    with pytest.raises(OSError, match="too long") as refused:
        os.lstat(deep)
    assert refused.value.errno == errno.ENAMETOOLONG  # what the plain call says
    touch(deep, "f")
    os.symlink("nowhere", "link", dir_fd=(fd := longpath.open_dir(deep, DIR)))
    os.close(fd)
    before = open_fds()
    fd = longpath.open_dir(deep, DIR)
    try:
        assert sorted(os.listdir(fd)) == ["f", "link"]
        assert os.path.samestat(os.fstat(fd), longpath.lstat(deep))
    finally:
        os.close(fd)
    assert stat.S_ISREG(longpath.lstat(os.path.join(deep, "f")).st_mode)
    assert stat.S_ISLNK(longpath.lstat(os.path.join(deep, "link")).st_mode)  # not followed
    assert open_fds() == before  # the descriptors on the way are closed


def test_errors_past_the_limit_name_the_whole_path(deep: str) -> None:
    missing = os.path.join(deep, "missing")
    with pytest.raises(FileNotFoundError) as gone:
        longpath.lstat(missing)
    assert gone.value.filename == missing
    touch(deep, "f")
    with pytest.raises(NotADirectoryError):
        longpath.open_dir(os.path.join(deep, "f"), DIR)
    for level in (1, 700):  # a piece on the way is missing: the first one, a later one
        cut = deep.replace("/level" * level, "/level" * (level - 1) + "/gap", 1)
        with pytest.raises(FileNotFoundError) as gone:
            longpath.open_dir(cut, DIR)
        assert gone.value.filename == cut


def test_a_name_too_long_is_refused_as_the_plain_call_refuses_it(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "n" * 300)
    with pytest.raises(OSError, match="too long") as refused:
        longpath.lstat(path)
    assert refused.value.errno == errno.ENAMETOOLONG
    assert refused.value.filename == path


def test_without_descriptor_walks_long_paths_stay_refused(
    deep: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(longpath, "WALKS", False)
    with pytest.raises(OSError, match="too long") as refused:
        longpath.lstat(deep)
    assert refused.value.errno == errno.ENAMETOOLONG
    assert longpath.entries_out_of_reach(deep)
    short = os.path.dirname(deep[: longpath.PATH_MAX // 2])
    assert not longpath.entries_out_of_reach(short)
    in_dir(short, os.fstat)  # short paths are opened as ever

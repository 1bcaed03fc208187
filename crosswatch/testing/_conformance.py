"""The conformance suite every backend's tests subclass.

Each test changes real files, collects the watcher's events, feeds them to a strict
:class:`Mirror` (which fails on duplicates, bad order or unknown entries) and
checks that the mirror equals the disk once things are quiet. Waits are generous;
nothing depends on timing beyond that.
"""

from __future__ import annotations

import gc
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .. import _longpath as longpath
from .. import _os
from .._backend import Backend
from .._events import Change, Event
from .._longpath import PATH_MAX
from .._watch import Watcher
from ._collect import collect, converge, ends_with, kinds
from ._deep import BY_FD, in_dir, make_chain, remove_tree, touch
from ._marks import needs_byte_names, needs_symlinks
from ._mirror import Mirror, snapshot
from ._operations import random_operation
from ._platform import WINDOWS, open_fds, tmpfs
from ._scripted import FileOps

__all__ = ["BackendConformance"]


class BackendConformance:
    """Subclass with ``backend = "name"`` (or a Backend class) to run the suite."""

    backend: ClassVar[str | type[Backend]]
    #: Extra time to wait after expectations are met, to catch late duplicates.
    settle: ClassVar[float] = 0.3
    poll_interval: ClassVar[float] = 0.05
    #: Does the backend see what is done through directory descriptors? (An emulation
    #: fed by FileOps, which works by path, does not.)
    sees_descriptor_ops: ClassVar[bool] = True

    @pytest.fixture
    def root(self, tmp_path: Path) -> str:
        path = tmp_path / "root"
        path.mkdir()
        return str(path)

    @pytest.fixture
    def deep_base(self, tmp_path: Path) -> Iterator[str]:
        """An empty directory for a very deep tree (on tmpfs where there is one),
        removed at any depth afterwards."""
        base = tempfile.mkdtemp(dir=tmpfs() or str(tmp_path))
        yield base
        remove_tree(base)

    @pytest.fixture
    def ops(self) -> FileOps:
        return FileOps()

    @pytest.fixture
    def open_watcher(self, ops: FileOps) -> Iterator[Callable[..., Watcher]]:
        opened: list[Watcher] = []

        def open_(*paths: str, **options: Any) -> Watcher:
            options.setdefault("poll_interval", self.poll_interval)
            w = Watcher(*paths, backend=self.backend, **options).start()
            opened.append(w)
            self.connect(w, ops)
            return w

        yield open_
        for w in opened:
            w.close()

    def connect(self, watcher: Watcher, ops: FileOps) -> None:
        """Hook for emulated backends: make ``ops`` report to the watcher's backend."""

    # ------------------------------------------------------------- the tests

    def test_file_lifecycle(self, root: str, ops: FileOps, open_watcher: Any) -> None:
        w = open_watcher(root)
        mirror = Mirror.of(root)
        f = os.path.join(root, "f.txt")
        ops.write(f, b"one")
        events = converge(w, mirror, settle=self.settle)
        assert kinds(events, f)[:1] == ["created"]
        ops.write(f, b"two two", append=True)
        events = collect(w, lambda ev: "modified" in kinds(ev, f), settle=self.settle)
        assert "modified" in kinds(events, f)
        assert not any(e.replaced for e in events)  # the same file, written to
        mirror.apply(events)
        ops.remove(f)
        events = converge(w, mirror, settle=self.settle)
        assert kinds(events, f) == ["deleted"]

    def test_nested_directories_reported_once_parents_first(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        w = open_watcher(root)
        mirror = Mirror.of(root)
        deep = os.path.join(root, "a", "b", "c")
        ops.makedirs(deep)
        ops.write(os.path.join(deep, "f"))
        # the strict mirror rejects duplicates and bad order
        events = converge(w, mirror, settle=self.settle)
        created = [e.path for e in events if e.kind is Change.CREATED]
        assert created == [
            os.path.join(root, "a"),
            os.path.join(root, "a", "b"),
            deep,
            os.path.join(deep, "f"),
        ]

    def test_rename_file_is_one_move(self, root: str, ops: FileOps, open_watcher: Any) -> None:
        src, dst = os.path.join(root, "old"), os.path.join(root, "new")
        ops.write(src)
        w = open_watcher(root)
        mirror = Mirror.of(root)
        ops.rename(src, dst)
        events = converge(w, mirror, settle=self.settle)
        assert [(e.kind, e.src_path, e.path) for e in events] == [(Change.MOVED, src, dst)]

    def test_renamed_directory_carries_its_subtree(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        ops.makedirs(os.path.join(root, "d", "sub"))
        ops.write(os.path.join(root, "d", "sub", "f"))
        w = open_watcher(root)
        mirror = Mirror.of(root)
        ops.rename(os.path.join(root, "d"), os.path.join(root, "e"))
        events = converge(w, mirror, settle=self.settle)
        assert [e.kind for e in events] == [Change.MOVED]
        moved_file = os.path.join(root, "e", "sub", "f")
        ops.write(moved_file, b"more", append=True)
        events = collect(w, lambda ev: "modified" in kinds(ev, moved_file), settle=self.settle)
        assert "modified" in kinds(events, moved_file)

    def test_delete_tree(self, root: str, ops: FileOps, open_watcher: Any) -> None:
        ops.makedirs(os.path.join(root, "t", "u"))
        for name in ("a", "b"):
            ops.write(os.path.join(root, "t", "u", name))
        w = open_watcher(root)
        mirror = Mirror.of(root)
        ops.rmtree(os.path.join(root, "t"))
        events = converge(w, mirror, settle=self.settle)
        assert kinds(events, os.path.join(root, "t")) == ["deleted"]

    def test_moves_across_the_tree_boundary(
        self, root: str, tmp_path: Path, ops: FileOps, open_watcher: Any
    ) -> None:
        outside = str(tmp_path / "outside")
        ops.makedirs(os.path.join(outside, "in", "deep"))
        ops.write(os.path.join(outside, "in", "deep", "f"))
        ops.write(os.path.join(root, "leaving"))
        w = open_watcher(root)
        mirror = Mirror.of(root)
        ops.rename(os.path.join(outside, "in"), os.path.join(root, "in"))
        ops.rename(os.path.join(root, "leaving"), os.path.join(outside, "leaving"))
        events = converge(w, mirror, settle=self.settle)
        assert kinds(events, os.path.join(root, "in", "deep", "f")) == ["created"]
        assert kinds(events, os.path.join(root, "leaving")) == ["deleted"]

    def test_single_file_survives_atomic_save(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        target = os.path.join(root, "config.toml")
        ops.write(target, b"a = 1")
        ops.write(os.path.join(root, "sibling"))
        w = open_watcher(target)
        for n in range(2):
            tmp = os.path.join(root, f".config.toml.tmp{n}")
            ops.write(tmp, b"a = %d" % (n + 2))
            ops.rename(tmp, target)
            events = collect(w, lambda ev: bool(kinds(ev, target)), settle=self.settle)
            assert kinds(events, target) == ["modified"]
            assert all(e.replaced for e in events)  # another file holds the path now
            assert {e.path for e in events} == {target}  # siblings are not reported
        ops.remove(target)
        events = collect(w, lambda ev: bool(kinds(ev, target)), settle=self.settle)
        assert kinds(events, target) == ["deleted"]
        ops.write(target, b"back")
        events = collect(w, lambda ev: bool(kinds(ev, target)), settle=self.settle)
        assert kinds(events, target)[:1] == ["created"]

    def test_root_deleted_ends_the_stream(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        ops.write(os.path.join(root, "f"))
        w = open_watcher(root)
        ops.rmtree(root)
        events: list[Event] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            batch = w.get(timeout=0.1)
            if batch is None:
                break
            events.extend(batch)
        else:
            pytest.fail("the stream did not end after its only root was deleted")
        assert (Change.DELETED, root) in [(e.kind, e.path) for e in events]

    def test_close_releases_descriptors_and_threads(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        ops.makedirs(os.path.join(root, "x", "y"))
        # Garbage of earlier tests (a socket, a listing held by a traceback's cycle) is
        # closed now, not by a collection in the middle of this count.
        gc.collect()
        fds, threads = open_fds(), set(threading.enumerate())
        w = Watcher(root, backend=self.backend, poll_interval=self.poll_interval).start()
        self.connect(w, ops)
        ops.write(os.path.join(root, "x", "y", "f"))
        collect(w, bool, timeout=5)
        w.close()
        w.close()  # twice is fine
        assert open_fds() == fds
        assert set(threading.enumerate()) == threads

    @needs_byte_names
    def test_names_that_are_not_utf8_round_trip(
        self, root: str, ops: FileOps, open_watcher: Any
    ) -> None:
        w = open_watcher(root)
        mirror = Mirror.of(root)
        raw = os.path.join(os.fsencode(root), b"caf\xe9-\xff")
        ops.write(os.fsdecode(raw))
        events = converge(w, mirror, settle=self.settle)
        assert [os.fsencode(e.path) for e in events if e.kind is Change.CREATED] == [raw]

    def test_ignore_patterns(self, root: str, ops: FileOps, open_watcher: Any) -> None:
        w = open_watcher(root, ignore=[".git", "build/*.o"])
        ops.makedirs(os.path.join(root, ".git", "objects"))
        ops.makedirs(os.path.join(root, "build"))
        ops.write(os.path.join(root, "build", "x.o"))
        ops.write(os.path.join(root, "build", "x.c"))
        want = os.path.join(root, "build", "x.c")
        events = collect(w, lambda ev: bool(kinds(ev, want)), settle=self.settle)
        assert {e.path for e in events} == {os.path.join(root, "build"), want}

    def test_not_recursive(self, root: str, ops: FileOps, open_watcher: Any) -> None:
        ops.makedirs(os.path.join(root, "sub"))
        w = open_watcher(root, recursive=False)
        ops.write(os.path.join(root, "sub", "hidden"))
        ops.write(os.path.join(root, "top"))
        top = os.path.join(root, "top")
        events = collect(w, lambda ev: bool(kinds(ev, top)), settle=self.settle)
        assert [e.path for e in events if e.kind is Change.CREATED] == [top]

    def test_idle_watcher_reports_nothing(self, root: str, open_watcher: Any) -> None:
        w = open_watcher(root)
        assert collect(w, lambda _: False, timeout=0, settle=self.settle) == []

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_random_operations_converge(
        self, root: str, ops: FileOps, open_watcher: Any, seed: int
    ) -> None:
        rng = random.Random(seed)
        w = open_watcher(root)
        mirror = Mirror.of(root)
        for _ in range(150):
            random_operation(rng, root, ops)
        converge(w, mirror, settle=self.settle)

    # ------------------------------------------------------------- the paths to the roots

    @pytest.mark.parametrize("how", ["renamed", "replaced"])
    def test_a_root_whose_parent_is_renamed_away_ends(
        self, tmp_path: Path, ops: FileOps, open_watcher: Any, how: str
    ) -> None:
        d = str(tmp_path / "d")
        root = os.path.join(d, "dir", "sub")
        os.makedirs(root)
        os.makedirs(os.path.join(d, "other", "sub"))
        w = open_watcher(root)
        try:
            ops.rename(os.path.join(d, "dir"), os.path.join(d, "dir-rename"))
        except PermissionError:
            if not WINDOWS:
                raise
            # Windows renames no directory above one held open (a backend's handle
            # on the root): nothing moved, so the watch goes on, telling nothing.
            assert collect(w, lambda _: False, timeout=0, settle=self.settle) == []
            assert os.path.isdir(root)
            return
        if how == "replaced":  # the path leads to another directory now
            ops.rename(os.path.join(d, "other"), os.path.join(d, "dir"))
        assert ends_with(w) == [(Change.DELETED, root)]

    @needs_symlinks
    def test_a_root_given_as_a_link_to_a_directory_is_followed(
        self, tmp_path: Path, ops: FileOps, open_watcher: Any
    ) -> None:
        real, link = str(tmp_path / "real"), str(tmp_path / "link")
        os.mkdir(real)
        os.mkdir(str(tmp_path / "real2"))
        os.symlink("real", link)
        w = open_watcher(link)
        ops.touch(os.path.join(real, "f"))
        events = collect(w, bool, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [(Change.CREATED, os.path.join(link, "f"))]
        ops.mkdir(os.path.join(real, "sub"))
        ops.touch(os.path.join(real, "sub", "g"))
        events = collect(w, lambda ev: len(ev) >= 2, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [
            (Change.CREATED, os.path.join(link, "sub")),
            (Change.CREATED, os.path.join(link, "sub", "g")),
        ]
        tmp = str(tmp_path / "tmp-link")
        ops.symlink("real2", tmp)
        if WINDOWS:  # a link to a directory is one: nothing replaces it
            ops.remove(link)
        ops.rename(tmp, link)  # the path leads to another directory now
        assert ends_with(w) == [(Change.DELETED, link)]

    @needs_symlinks
    @pytest.mark.parametrize("change", ["retargeted", "removed"])
    def test_a_root_given_as_a_link_to_a_file_is_followed(
        self, tmp_path: Path, ops: FileOps, open_watcher: Any, change: str
    ) -> None:
        os.mkdir(str(tmp_path / "real"))
        target, link = str(tmp_path / "real" / "f"), str(tmp_path / "link")
        Path(target).write_text("x")
        (tmp_path / "g").write_text("x")
        os.symlink(os.path.join("real", "f"), link)
        w = open_watcher(link)
        ops.write(target, b"written", append=True)
        events = collect(w, bool, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [(Change.MODIFIED, link)]
        ops.remove(target)
        # in two steps: a file re-created at once may reuse the inode number, and
        # the pair would look like a write
        events = collect(w, bool, settle=self.settle)
        ops.touch(target)
        events += collect(w, bool, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [
            (Change.DELETED, link),
            (Change.CREATED, link),
        ]
        if change == "retargeted":
            tmp = str(tmp_path / "tmp-link")
            ops.symlink("g", tmp)
            ops.rename(tmp, link)
        else:
            ops.remove(link)
        assert ends_with(w) == [(Change.DELETED, link)]

    @needs_symlinks
    def test_a_file_given_directly_and_through_a_link_is_reported_under_both(
        self, tmp_path: Path, ops: FileOps, open_watcher: Any
    ) -> None:
        target, other = str(tmp_path / "f"), str(tmp_path / "other")
        Path(target).write_text("x")
        Path(other).write_text("x")
        os.mkdir(str(tmp_path / "sub"))
        link = str(tmp_path / "sub" / "link")
        os.symlink(os.path.join("..", "f"), link)
        w = open_watcher(target, link, other)
        ops.write(target, b"written", append=True)
        events = collect(w, lambda ev: len(ev) >= 2, settle=self.settle)
        assert sorted((e.kind, e.path) for e in events) == sorted(
            [(Change.MODIFIED, link), (Change.MODIFIED, target)]
        )
        ops.remove(link)  # the link's use ends; the file is still watched as given
        events = collect(w, bool, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [(Change.DELETED, link)]
        ops.write(target, b"again", append=True)
        events = collect(w, bool, settle=self.settle)
        assert [(e.kind, e.path) for e in events] == [(Change.MODIFIED, target)]

    # ------------------------------------------------------------- depth

    def test_a_tree_deeper_than_path_max_is_watched_at_every_level(
        self, deep_base: str, open_watcher: Any
    ) -> None:
        if not self.sees_descriptor_ops:
            pytest.skip("the backend sees only what is done by path")
        if not (longpath.WALKS and _os.LISTS_BY_FD):
            pytest.skip("directories past PATH_MAX cannot be listed here (see the next test)")
        root, depth = os.path.join(deep_base, "root"), 2000

        def at(level: int, *names: str, renamed: bool = False) -> str:
            """The chain's directory at ``level`` (after the rename at 1,200 if asked)."""
            if renamed and level >= 1200:
                return os.path.join(at(1199), "renamed" + "/dir" * (level - 1200), *names)
            return os.path.join(root + "/dir" * level, *names)

        assert len(os.fsencode(at(depth))) > 1.9 * PATH_MAX  # three pieces at the bottom
        make_chain(root, "dir", depth)
        in_dir(at(1799), lambda fd: os.mkdir("side", dir_fd=fd))
        warned: list[str] = []
        w = open_watcher(root, on_warning=warned.append)
        mirror = Mirror.of(root)
        assert len(mirror.entries) == depth + 1

        def step(change: Callable[[], object], *expected: tuple[Change, str]) -> list[Event]:
            change()
            events = collect(w, lambda ev: set(expected) <= {(e.kind, e.path) for e in ev},
                             timeout=30, settle=self.settle)
            seen = [(e.kind, e.path) for e in events]
            assert set(expected) <= set(seen), [(k, p.count(os.sep)) for k, p in seen]
            deleted = [p.count(os.sep) for k, p in seen if k is Change.DELETED]
            wanted = [p.count(os.sep) for k, p in expected if k is Change.DELETED]
            assert deleted == wanted, "reported deleted (at these depths), but it exists"
            mirror.apply(events)
            return events

        def files() -> None:  # at two depths past PATH_MAX
            touch(at(depth), "f")
            touch(at(1500), "f")

        step(files, (Change.CREATED, at(depth, "f")), (Change.CREATED, at(1500, "f")))
        # A directory of the chain renamed: the 800 levels below it take the new path.
        def rename(fd: int) -> None:
            os.rename("dir", "renamed", src_dir_fd=fd, dst_dir_fd=fd)

        events = step(lambda: in_dir(at(1199), rename), (Change.MOVED, at(1200, renamed=True)))
        assert [e.src_path for e in events if e.kind is Change.MOVED] == [at(1200)]
        step(lambda: in_dir(at(1799, renamed=True), lambda fd: os.rmdir("side", dir_fd=fd)),
             (Change.DELETED, at(1799, "side", renamed=True)))
        step(lambda: touch(at(depth, renamed=True), "g"),
             (Change.CREATED, at(depth, "g", renamed=True)))
        disk = snapshot(root)
        assert mirror.entries == disk, mirror.diff(disk)
        assert warned == []

    def test_where_long_paths_cannot_be_walked_the_depth_is_told_once(
        self, deep_base: str, open_watcher: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if not self.sees_descriptor_ops:
            pytest.skip("the backend sees only what is done by path")
        root, step = os.path.join(deep_base, "root"), os.sep + "dir"
        try:
            make_chain(root, "dir", 1100)
        except OSError as exc:  # made by whole paths (Windows): they may be refused
            if BY_FD:
                raise
            pytest.skip(f"this OS refuses the tree's long paths: {exc}")
        touch(root + step * 1100, "old")
        monkeypatch.setattr(longpath, "WALKS", False)  # as where open takes no dir_fd
        warned: list[str] = []
        w = open_watcher(root, on_warning=warned.append)
        touch(root + step * 10, "f")
        shallow = os.path.join(root + step * 10, "f")
        events = collect(w, lambda ev: shallow in {e.path for e in ev}, settle=1.0)
        assert [(e.kind, e.path) for e in events] == [(Change.CREATED, shallow)]
        assert len(warned) == 1, warned
        assert f"(PATH_MAX {longpath.PATH_MAX})" in warned[0]
        assert "are not watched" in warned[0]
        events = collect(w, lambda _: False, timeout=0, settle=1.0)
        assert [e for e in events if e.kind is Change.DELETED] == []
        assert len(warned) == 1, warned

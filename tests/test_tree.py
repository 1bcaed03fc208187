"""The tree cache as the first reading of a tree leaves it.

A first listing is stored without a stat per file and, for most directories, kept as
one packed bytes object until the directory is used. These tests check that what the
cache then says about every kind of entry is what ``lstat`` says, whichever way it was
stored.
"""

from __future__ import annotations

import os
import socket
from array import array

import pytest

from crosswatch import _tree
from crosswatch._engine import Engine, Ignore
from crosswatch._engine._work import _written_since_renamed
from crosswatch._tree import Children, Kind, Node, kind_of
from crosswatch.testing import ScriptedBackend, needs_symlinks, symlinks_work
from crosswatch.testing._platform import FIFOS, UNIX_SOCKETS


@pytest.fixture
def engine() -> Engine:
    return Engine()


def _every_kind(root: str) -> dict[str, Kind]:
    """One entry of each kind the cache tells apart that this OS makes; name ->
    expected kind. (Windows: no FIFOs or socket files, links only with the privilege.)"""
    os.makedirs(os.path.join(root, "sub", "deeper"))
    with open(os.path.join(root, "file"), "w") as f:
        f.write("x")
    made = {"sub": Kind.DIR, "file": Kind.FILE}
    if symlinks_work():
        os.symlink("file", os.path.join(root, "link-to-file"))
        os.symlink("sub", os.path.join(root, "link-to-dir"))
        os.symlink("nowhere", os.path.join(root, "dangling"))
        made.update({"link-to-file": Kind.LINK, "link-to-dir": Kind.LINK, "dangling": Kind.LINK})
    if FIFOS:
        os.mkfifo(os.path.join(root, "fifo"))
        made["fifo"] = Kind.OTHER
    if UNIX_SOCKETS:
        with socket.socket(socket.AF_UNIX) as sock:
            _bind(sock, root, "sock")
        made["sock"] = Kind.OTHER
    return made


def _bind(sock: socket.socket, directory: str, name: str) -> None:
    """Bind ``sock`` to ``name`` in ``directory``; by a relative name where the whole
    path is too long for a socket address (104 bytes on macOS, whose temporary
    directories are deep)."""
    try:
        sock.bind(os.path.join(directory, name))
    except OSError:
        here = os.getcwd()
        os.chdir(directory)
        try:
            sock.bind(name)
        finally:
            os.chdir(here)


def _check_against_disk(top: Node, root: str) -> None:
    for name in sorted(os.listdir(root)):
        node = top.children.get(name)
        assert node is not None, name
        st = os.lstat(os.path.join(root, name))
        assert (node.kind, node.ino, node.dev) == (kind_of(st), st.st_ino, st.st_dev), name
    assert sorted(top.children) == sorted(os.listdir(root))


def _add(engine: Engine, root: str) -> Node:
    return engine.add_root(root, ScriptedBackend()).node


def test_every_kind_of_entry_is_cached_as_lstat_sees_it(engine: Engine, tmp_path: str) -> None:
    root = str(tmp_path)
    _every_kind(root)
    top = _add(engine, root)
    _check_against_disk(top, root)
    _check_against_disk(top.children["sub"], os.path.join(root, "sub"))


@needs_symlinks
def test_a_symlink_that_cannot_be_followed_is_still_cached(engine: Engine, tmp_path: str) -> None:
    # Following a self-loop fails with ELOOP, which the fast first reading cannot
    # classify: that directory is read entry by entry instead.
    root = str(tmp_path)
    _every_kind(root)
    os.symlink("loop", os.path.join(root, "loop"))
    top = _add(engine, root)
    _check_against_disk(top, root)


def test_ignored_names_are_left_out_of_a_first_reading(tmp_path: str) -> None:
    root = str(tmp_path)
    made = _every_kind(root)
    top = Engine(ignore=Ignore(["fifo", "link-*"])).add_root(root, ScriptedBackend()).node
    assert sorted(top.children) == [n for n in ["dangling", "file", "sock", "sub"] if n in made]


def test_a_directory_is_stated_from_its_own_listing(engine: Engine, tmp_path: str) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "a", "b"))
    os.chmod(os.path.join(root, "a", "b"), 0o700)
    top = _add(engine, root)
    for rel in ("a", "a/b"):
        node = top.children["a"] if rel == "a" else top.children["a"].children["b"]
        st = os.lstat(os.path.join(root, rel))
        assert (node.ino, node.mtime, node.meta) == (
            st.st_ino, st.st_mtime_ns, (st.st_mode, st.st_uid, st.st_gid)
        )


def test_directories_below_the_depth_limit_are_stated_but_not_listed(tmp_path: str) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "a", "b"))
    top = Engine().add_root(root, ScriptedBackend(), recursive=False).node
    node = top.children["a"]
    st = os.lstat(os.path.join(root, "a"))
    assert node.meta == (st.st_mode, st.st_uid, st.st_gid)
    assert node.mtime == st.st_mtime_ns
    assert len(node.children) == 0


# ------------------------------------------------------------- the kept listing


def _listed(tmp_path: str, files: int = 5) -> tuple[Children, str]:
    root = str(tmp_path)
    os.mkdir(os.path.join(root, "d"))
    for i in range(files):
        with open(os.path.join(root, f"f{i}"), "w"):
            pass
    if symlinks_work():
        os.symlink("f0", os.path.join(root, "l"))
    top = Engine().add_root(root, ScriptedBackend()).node
    children = top.children
    assert children.packed(), "a first reading keeps the listing"
    return children, root


def test_directories_are_found_without_unpacking_the_listing(tmp_path: str) -> None:
    children, _ = _listed(tmp_path)
    assert [n.name for n in children.dirs()] == ["d"]
    assert children.packed()


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda c: "f3" in c, id="in"),
        pytest.param(lambda c: len(c), id="len"),
        pytest.param(lambda c: sorted(c), id="iter"),
        pytest.param(lambda c: c.get("f3"), id="get"),
        pytest.param(lambda c: c["f3"], id="getitem"),
        pytest.param(lambda c: c.pop("f3"), id="pop"),
        pytest.param(lambda c: c.values(), id="values"),
        pytest.param(lambda c: c.items(), id="items"),
        pytest.param(lambda c: c.__delitem__("f3"), id="delitem"),
        pytest.param(lambda c: c.__setitem__("f3", c.pop("f4")), id="setitem"),  # f4 -> f3
    ],
)
def test_any_use_unpacks_the_listing_first(tmp_path: str, use) -> None:  # type: ignore[no-untyped-def]
    children, root = _listed(tmp_path)
    before = os.listdir(root)
    use(children)
    assert not children.packed()
    # Nothing was lost or replaced by the unpacking: what the use changed is all.
    names = set(children)
    assert names <= set(before)
    assert len(set(before) - names) <= 2
    assert children["d"].kind is Kind.DIR
    if symlinks_work():
        assert children["l"].kind is Kind.LINK
    for name in names - {"d", "l", "f3"}:
        assert children[name].kind is Kind.FILE
        assert children[name].ino == os.lstat(os.path.join(root, name)).st_ino


@pytest.mark.parametrize("inodes", [[3, 2**32 - 1, 7], [3, 2**32, 7], [2**64 - 1]],
                         ids=["narrow", "wide", "widest"])
def test_a_packed_listing_gives_back_its_names_and_inodes(inodes: list[int]) -> None:
    names = ["plain", "caf\u00e9", os.fsdecode(b"bad\xff")][: len(inodes)]
    wide = any(i >= 2**32 for i in inodes)
    packed = _tree._pack_listing(names, array("Q" if wide else "I", inodes), 12345)
    got_names, got_inodes = _tree._unpack_listing(packed)
    assert (got_names, list(got_inodes)) == (names, inodes)
    assert _tree._listing_names(packed, 2) == names[:2]
    leaf = Node.listed_dir("d", Node("/", None, os.lstat("/")), 9)
    assert Children.of_listing(leaf, packed).as_of == 12345


def test_a_leaf_of_files_holds_its_packed_listing_alone_until_used(tmp_path: str) -> None:
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "leaf"))
    os.mkdir(os.path.join(root, "empty"))
    for i in range(4):
        with open(os.path.join(root, "leaf", f"f{i}"), "w"):
            pass
    top = Engine().add_root(root, ScriptedBackend()).node
    leaf, empty = top.children["leaf"], top.children["empty"]
    for node in (leaf, empty):
        assert isinstance(node._kids, bytes), "no object for the entries of a leaf"
        assert node.subdirs() == []
    assert {n.name for n in top.walk(dirs_only=True)} == {top.name, "leaf", "empty"}
    assert isinstance(leaf._kids, bytes), "walking the directories leaves them packed"
    entries, listing, as_of = leaf.stored()
    assert entries == {}
    assert listing is not None
    assert sorted(listing[0]) == [f"f{i}" for i in range(4)]
    assert as_of == top.children.as_of
    assert empty.stored() == (_tree._NO_ENTRIES, None, as_of)
    assert isinstance(leaf._kids, bytes), "a reader of the stored entries leaves them packed"
    f2 = leaf.children["f2"]  # used: its entries are an object of their own now
    assert isinstance(leaf._kids, Children)
    assert leaf.children is leaf._kids
    assert f2.ino == os.lstat(os.path.join(root, "leaf", "f2")).st_ino
    assert f2.mtime == as_of  # known as of the listing
    assert sorted(leaf.children) == [f"f{i}" for i in range(4)]
    assert len(empty.children) == 0
    assert not empty.children


def test_a_write_is_told_from_a_rename_by_the_inode_times(tmp_path: str) -> None:
    """Content known only as of a time counts as written after a rename only if its
    last write is not older than its last change of metadata (which a rename is)."""
    root = os.path.join(tmp_path, "r")
    os.mkdir(root)
    path = os.path.join(root, "f")
    with open(path, "w") as f:
        f.write("x")
    top = Node(root, None, os.lstat(root))
    as_of = Node.listed_entry("f", top, Kind.FILE, os.lstat(path).st_ino, 0)
    stated = Node("f", top, os.lstat(path))
    # A metadata change (as a rename makes) after the last write.
    old = os.lstat(path).st_mtime_ns - 10**9
    os.utime(path, ns=(old, old))
    st = os.lstat(path)
    assert st.st_mtime_ns < st.st_ctime_ns
    assert not _written_since_renamed(as_of, st)
    assert _written_since_renamed(stated, st), "a stated content is compared as it is"
    with open(path, "a") as f:
        f.write("y")
    assert _written_since_renamed(as_of, os.lstat(path))

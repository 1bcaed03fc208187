"""What is left out: the default list of tooling directories, hidden entries, and
the pruning that saves their watches and scans."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import FAST, Cli

from crosswatch import Change, ConfigError, Watcher
from crosswatch._config import DEFAULT_IGNORE, from_file
from crosswatch._engine import Ignore
from crosswatch.testing import collect, linux_only

BACKENDS = ["polling", pytest.param("inotify", marks=linux_only("inotify"))]


def test_plain_names_are_a_lookup_and_globs_a_match() -> None:
    ignore = Ignore([".git", "*.tmp", "build/out"])
    assert ignore.exact == {".git"}
    assert ignore.match(".git", lambda: "x/.git")
    assert ignore.match("a.tmp", lambda: "a.tmp")
    assert ignore.match("out", lambda: "build/out")
    assert not ignore.match("out", lambda: "src/out")
    assert not ignore.match(".gitignore", lambda: ".gitignore")
    assert Ignore([".git"]).may_match(["a", ".git"])
    assert not Ignore([".git"]).may_match(["a", "b"])
    assert Ignore(["*.tmp"]).may_match(["a"])  # a glob must be matched to be sure


def test_hidden_false_leaves_out_dot_names_only() -> None:
    ignore = Ignore(hidden=False)
    assert ignore
    assert ignore.match(".env", lambda: ".env")
    assert not ignore.match("env", lambda: "env")
    assert not Ignore()


def make(root: Path, *files: str) -> None:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def changed(events: list[object], root: Path) -> set[str]:
    return {os.path.relpath(e.path, root) for e in events}  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_default_list_is_left_out_at_any_depth(tmp_path: Path, backend: str) -> None:
    make(tmp_path, ".git/HEAD", "src/node_modules/pkg/index.js", "src/a.py")
    with Watcher(tmp_path, backend=backend, poll_interval=0.05) as w:
        make(tmp_path, ".git/index", "src/node_modules/pkg/new.js", "src/__pycache__/a.pyc",
             "src/b.py")
        (tmp_path / "src" / "a.py").write_text("y")
        events = collect(w, lambda ev: {"src/a.py", "src/b.py"} <= changed(ev, tmp_path),
                         settle=0.5)
    assert changed(events, tmp_path) == {"src/a.py", "src/b.py"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_ignore_off_watches_them_too(tmp_path: Path, backend: str) -> None:
    make(tmp_path, ".git/HEAD")
    with Watcher(tmp_path, backend=backend, poll_interval=0.05, default_ignore=False) as w:
        make(tmp_path, ".git/index")
        events = collect(w, lambda ev: ".git/index" in changed(ev, tmp_path))
    assert ".git/index" in changed(events, tmp_path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hidden_false_leaves_out_hidden_entries_and_what_is_below(
    tmp_path: Path, backend: str
) -> None:
    with Watcher(tmp_path, backend=backend, poll_interval=0.05, hidden=False) as w:
        make(tmp_path, ".env", ".cache/x/y", "visible/.rc", "visible/z")
        events = collect(w, lambda ev: "visible/z" in changed(ev, tmp_path), settle=0.5)
    assert changed(events, tmp_path) == {"visible", "visible/z"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_root_on_the_list_is_watched_all_the_same(tmp_path: Path, backend: str) -> None:
    git = tmp_path / ".git"
    git.mkdir()
    with Watcher(git, backend=backend, poll_interval=0.05) as w:
        make(git, "objects/ab")
        events = collect(w, lambda ev: "objects/ab" in changed(ev, git))
    assert changed(events, git) == {"objects", "objects/ab"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_directory_renamed_onto_the_list_leaves_and_comes_back(
    tmp_path: Path, backend: str
) -> None:
    make(tmp_path, "deps/pkg/index.js")
    with Watcher(tmp_path, backend=backend, poll_interval=0.05) as w:
        (tmp_path / "deps").rename(tmp_path / "node_modules")
        gone = collect(w, lambda ev: any(e.kind is Change.DELETED for e in ev), settle=0.3)
        assert [(e.kind, os.path.basename(e.path)) for e in gone] == [(Change.DELETED, "deps")]
        (tmp_path / "node_modules").rename(tmp_path / "deps")
        back = collect(w, lambda ev: "deps/pkg/index.js" in changed(ev, tmp_path), settle=0.3)
    assert changed(back, tmp_path) == {"deps", "deps/pkg", "deps/pkg/index.js"}
    assert {e.kind for e in back} == {Change.CREATED}


# --------------------------------------------------------------------------- kernel watches


def inotify_watches() -> int:
    """The inotify watches this process holds, from each inotify descriptor's fdinfo."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                count += sum(line.startswith("inotify wd:") for line in f)
        except OSError:
            continue
    return count


@pytest.fixture
def shm() -> Iterator[Path]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        yield Path(tmp)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only: inotify")
def test_an_ignored_node_modules_of_10000_directories_costs_no_watch(shm: Path) -> None:
    make(shm, "src/app.js")
    modules = shm / "node_modules"
    for i in range(100):
        for j in range(100):
            (modules / f"p{i}" / f"d{j}").mkdir(parents=True)
    before = inotify_watches()
    with Watcher(shm, backend="inotify") as w:
        held = inotify_watches() - before
        (modules / "p0" / "d0" / "x.js").write_text("x")  # nothing to hear
        (shm / "src" / "app.js").write_text("y")
        events = collect(w, lambda ev: "src/app.js" in changed(ev, shm), settle=0.3)
    assert changed(events, shm) == {"src/app.js"}
    # the root and src, and a watch of each directory above the root, for its fate
    assert held <= 2 + str(shm).count(os.sep) - 1, f"{held} watches"
    with Watcher(shm, backend="inotify", default_ignore=False):
        assert inotify_watches() - before >= 10_101  # the same tree, not left out


# --------------------------------------------------------------------------- settings


def test_config_file_keys_are_flags(tmp_path: Path) -> None:
    path = tmp_path / "crosswatch.toml"
    path.write_text("default_ignore = false\nhidden = false\n")
    assert from_file(str(path)) == {"default_ignore": False, "hidden": False}
    path.write_text('hidden = "no"\n')
    with pytest.raises(ConfigError, match="hidden must be true or false, got str 'no'"):
        from_file(str(path))


def test_the_list_holds_the_usual_suspects() -> None:
    assert {".git", "__pycache__", "node_modules", ".venv", ".tox", ".mypy_cache"} <= set(
        DEFAULT_IGNORE
    )


@pytest.mark.parametrize(
    ("flag", "seen"), [(None, {"a"}), ("--no-default-ignore", {"a", ".git/x"})]
)
def test_the_command_line_turns_the_list_off(tmp_path: Path, flag: str | None, seen: set[str]
                                             ) -> None:
    (tmp_path / ".git").mkdir()
    cli = Cli(["watch", str(tmp_path), *FAST, "--timeout", "2", *([flag] if flag else [])],
              None, {}, b"\n")
    try:
        cli.ready()
        (tmp_path / ".git" / "x").write_text("x")
        (tmp_path / "a").write_text("x")
        assert cli.wait() == 0
    finally:
        cli.kill()
    records = [line.split("\t") for line in cli.rest().decode().splitlines()]
    assert {os.path.relpath(path.rstrip("/"), tmp_path) for _, path in records} == seen


# --------------------------------------------------------------------------- include

INCLUDED = [
    # patterns, root-relative path, is a directory, left out
    (["*.py"], "a.py", False, False),
    (["*.py"], "a.txt", False, True),
    (["*.py"], "src", True, False),  # it may hold a match
    (["*.py"], "src/deep/b.py", False, False),
    (["src"], "src", True, False),
    (["src"], "src/x/y.txt", False, False),  # below a matching directory
    (["src"], "docs/y.txt", False, True),
    (["src/*.py"], "docs", True, True),  # no match can lie below it: pruned
    (["src/*.py"], "src", True, False),
    (["src/*.py"], "src/a/b.py", False, False),  # fnmatch's * crosses /
    (["src/*.py"], "src/a.txt", False, True),
    (["s?c/lib/*.c"], "src", True, False),
    (["s?c/lib/*.c"], "src/doc", True, True),
    (["s?c/lib/*.c"], "src/lib", True, False),
    (["*/lib"], "anything", True, False),
    (["*.py", "docs"], "docs/index.md", False, False),
]


@pytest.mark.parametrize(("patterns", "rel", "is_dir", "out"), INCLUDED)
def test_include_patterns_take_in_matches_and_what_lies_below(
    patterns: list[str], rel: str, is_dir: bool, out: bool
) -> None:
    ignore = Ignore(include=patterns)
    assert ignore.match(rel.rsplit("/", 1)[-1], lambda: rel, lambda: is_dir) is out


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_included_files_are_reported(tmp_path: Path, backend: str) -> None:
    make(tmp_path, "src/a.py", "src/a.txt")
    with Watcher(tmp_path, backend=backend, poll_interval=0.05, include=["*.py"]) as w:
        make(tmp_path, "src/b.py", "src/b.txt", "new/c.py", "new/c.txt")
        (tmp_path / "src" / "a.py").write_text("y")
        (tmp_path / "src" / "a.txt").write_text("y")
        want = {"src/a.py", "src/b.py", "new", "new/c.py"}
        events = collect(w, lambda ev: want <= changed(ev, tmp_path), settle=0.5)
    assert changed(events, tmp_path) == want


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only: inotify")
def test_a_path_pattern_prunes_the_directories_it_cannot_reach(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / "docs" / f"d{i}").mkdir(parents=True)
    make(tmp_path, "src/lib/a.c", "docs/x.c")
    before = inotify_watches()
    with Watcher(tmp_path, backend="inotify", include=["src/*.c"]) as w:
        held = inotify_watches() - before
        make(tmp_path, "docs/d0/y.c", "src/lib/b.c")
        events = collect(w, lambda ev: "src/lib/b.c" in changed(ev, tmp_path), settle=0.3)
    assert changed(events, tmp_path) == {"src/lib/b.c"}
    assert held <= 3 + str(tmp_path).count(os.sep) - 1, f"{held} watches"  # root, src, lib


def test_the_command_line_and_the_config_file_take_include(tmp_path: Path) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_text('include = ["*.md"]\n')
    assert from_file(str(config)) == {"include": ("*.md",)}
    cli = Cli(["watch", str(tmp_path), *FAST, "--timeout", "2", "--include", "*.py",
               "--include", "*.c"], None, {}, b"\n")
    try:
        cli.ready()
        for name in ("a.py", "b.c", "c.txt"):
            (tmp_path / name).write_text("x")
        assert cli.wait() == 0
    finally:
        cli.kill()
    records = [line.split("\t") for line in cli.rest().decode().splitlines()]
    assert {os.path.relpath(path, tmp_path) for _, path in records} == {"a.py", "b.c"}

"""``.gitignore`` files: what git leaves out is left out, and changes to them take effect.

git itself is the oracle: random trees with random ``.gitignore`` files are watched,
and what the watcher keeps is compared with what ``git`` lists as not ignored.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_cli import FAST, Cli, assert_no_traceback
from test_ignore import changed, inotify_watches, make

from crosswatch import Change, Event, Watcher
from crosswatch._backend import Action, EntryChange
from crosswatch._engine import Engine
from crosswatch.testing import Mirror, ScriptedBackend, collect, linux_only, snapshot
from crosswatch.testing._storm import storm_while_reading

FAST_POLL = 0.05

BACKENDS = ["polling", pytest.param("inotify", marks=linux_only("inotify"))]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

NAMES = ["a", "b", "d1", "d2", "keep.log", "x.log", "build", "tmp", "n.txt", "important"]
PATTERNS = [
    "*.log", "!keep.log", "build/", "/tmp", "tmp/", "d?/", "**/b", "a/**/x.log", "[ab]",
    "!important/", "*.txt", "!n.txt", "d1/a", "important", "/d2/", "# a comment", "",
    "\\#hash", "b/", "!d1/",
]


def git_env(home: Path) -> dict[str, str]:
    """git without the user's or the system's configuration (no global excludes)."""
    return {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "XDG_CONFIG_HOME": str(home)}


def git_files(repo: Path, home: Path) -> set[str]:
    """The files git does not ignore below ``repo`` (none is tracked)."""
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=repo, check=True,
        capture_output=True, env=git_env(home),
    ).stdout
    return {os.fsdecode(p) for p in out.split(b"\0") if p}


def git_init(repo: Path, home: Path) -> None:
    repo.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=git_env(home))


def random_tree(root: Path, rng: random.Random) -> list[tuple[Path, str | None]]:
    """Files to make, in order (``None``: a directory), with ``.gitignore`` files among them."""
    out: list[tuple[Path, str | None]] = []
    dirs = [root]
    for _ in range(60):
        parent = rng.choice(dirs)
        if rng.random() < 0.15:
            lines = rng.sample(PATTERNS, rng.randint(1, 4))
            out.append((parent / ".gitignore", "\n".join(lines) + "\n"))
            continue
        path = parent / rng.choice(NAMES)
        if path in dirs or any(p == path for p, _ in out):
            continue
        if rng.random() < 0.4 and len(path.relative_to(root).parts) < 4:
            dirs.append(path)
            out.append((path, None))
        else:
            out.append((path, "x"))
    return out


def build(steps: list[tuple[Path, str | None]]) -> None:
    for path, text in steps:
        if text is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def rel(path: str | Path, root: str | Path) -> str:
    """``path`` from ``root``, with ``/`` between names, as git prints paths."""
    return Path(os.path.relpath(path, root)).as_posix()


def files_of(entries: dict[str, bool], root: Path) -> set[str]:
    return {rel(p, root) for p, is_dir in entries.items() if not is_dir}


def mirror_of(root: Path) -> Mirror:
    """A mirror of what the watcher keeps of ``root`` now (``.git`` is left out)."""
    mirror = Mirror.of(str(root))
    mirror.entries = {p: d for p, d in mirror.entries.items()
                      if ".git" not in Path(p).relative_to(root).parts}
    return mirror


def follow(w: Watcher, mirror: Mirror, done: Callable[[], bool]) -> None:
    """Apply events to ``mirror`` until ``done()`` (or a generous wait), then 0.5 s more."""
    applied = 0

    def until(events: list[Event]) -> bool:
        nonlocal applied
        mirror.apply(events[applied:])
        applied = len(events)
        return done()

    events = collect(w, until, timeout=30.0, settle=0.5)
    mirror.apply(events[applied:])


def follow_to(w: Watcher, mirror: Mirror, root: Path, want: set[str]) -> None:
    """:func:`follow` until the mirror's files are ``want``."""
    follow(w, mirror, lambda: files_of(mirror.entries, root) == want)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@needs_git
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
def test_a_tree_read_at_start_keeps_what_git_does_not_ignore(
    tmp_path: Path, home: Path, backend: str, seed: int
) -> None:
    repo = tmp_path / "repo"
    git_init(repo, home)
    build(random_tree(repo, random.Random(seed)))
    with Watcher(repo, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        kept = cached_files(w, repo)
    assert kept == git_files(repo, home)


def cached_files(w: Watcher, root: Path) -> set[str]:
    """What the watcher keeps, as the files it reports changed when all are touched."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(1, 1))
    events = collect(w, lambda ev: False, timeout=1.0, settle=0.0)
    return {rel(e.path, root) for e in events if not e.is_dir}


@needs_git
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
def test_a_mirror_of_a_tree_made_while_watched_holds_what_git_does_not_ignore(
    tmp_path: Path, home: Path, backend: str, seed: int
) -> None:
    """``.gitignore`` files made after what they leave out: it is reported deleted."""
    repo = tmp_path / "repo"
    git_init(repo, home)
    with Watcher(repo, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        mirror = mirror_of(repo)
        build(random_tree(repo, random.Random(100 + seed)))
        want = git_files(repo, home)
        follow_to(w, mirror, repo, want)
    assert files_of(mirror.entries, repo) == want
    shown = {rel(p, repo) for p in mirror.entries}
    assert not check_ignore(repo, home, shown), "the mirror holds what git ignores"


def check_ignore(repo: Path, home: Path, paths: set[str]) -> set[str]:
    """Those of ``paths`` that git ignores. (A directory is given without a trailing
    ``/``: git then asks the disk what it is, as when it walks the tree; with one,
    ``a/**`` would be said to match ``a/`` itself.)"""
    proc = subprocess.run(
        ["git", "check-ignore", "--stdin", "-z"], cwd=repo, input=b"\0".join(
            os.fsencode(p) for p in sorted(paths)), capture_output=True, env=git_env(home),
    )
    return {os.fsdecode(p) for p in proc.stdout.split(b"\0") if p}


#: A root .gitignore and a deeper one, where counting a match of a directory for
#: what is below it, or ranking file matches first, would give other answers than git's.
TRICKY = [
    ("*\n!*/\n", ""),  # every file out, every directory back in
    ("sub/\n!d/\n", ""),  # taking d back does not take back sub below it
    ("a/**\n", ""),  # everything below a, not a itself
    ("/x/*\n!/x/keep/\n", ""),
    ("**/b\n!d/b\n", ""),
    ("*.log\n", "!*.log\n"),  # a deeper file takes back
    ("d/\n", "x\n"),  # the deeper file in a directory left out is never read
    ("*\n!.gitignore\n!*/\n!*.c\n", "*.c\n"),
    ("a/*/c\n", ""),
]
TRICKY_TREE = ["a/b/c", "a/x", "a/d/b", "d/b", "d/sub/f", "d/f.log", "sub/f", "x/keep/f",
               "x/f", "x/y/z", "b/f.c", "b/g", "f.c", "f.log", "d/x"]


@needs_git
@pytest.mark.parametrize(("top", "deep"), TRICKY)
def test_what_git_leaves_out_in_the_tricky_cases(
    tmp_path: Path, home: Path, top: str, deep: str
) -> None:
    repo = tmp_path / "repo"
    git_init(repo, home)
    make(repo, *TRICKY_TREE)
    (repo / ".gitignore").write_text(top)
    if deep:
        (repo / "d" / ".gitignore").write_text(deep)
    with Watcher(repo, backend="polling", gitignore=True, poll_interval=FAST_POLL) as w:
        dirs = {rel(n.path(), repo)
                for n in w._engine.roots.all[0].node.walk(dirs_only=True)} - {"."}
        files = cached_files(w, repo)
    assert files == git_files(repo, home)
    assert not check_ignore(repo, home, dirs), "a directory git ignores is watched"
    on_disk = {rel(p, repo) for p, d in snapshot(str(repo)).items()
               if d and not p.startswith(str(repo / ".git"))}
    assert on_disk - dirs <= check_ignore(repo, home, on_disk - dirs), (
        "a directory git does not ignore is left out")


# --------------------------------------------------------------------------- changes


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_changed_gitignore_releases_and_takes_back_subtrees(
    tmp_path: Path, backend: str
) -> None:
    make(tmp_path, "src/a.py", "build/out/x.o", "build/y.o", "notes.txt")
    (tmp_path / ".gitignore").write_text("build/\n")
    with Watcher(tmp_path, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        mirror = mirror_of(tmp_path)
        mirror.entries = {p: d for p, d in mirror.entries.items() if "build" not in p}
        (tmp_path / ".gitignore").write_text("src/\n*.txt\n")
        want = {".gitignore", "build/out/x.o", "build/y.o"}
        follow_to(w, mirror, tmp_path, want)
        assert files_of(mirror.entries, tmp_path) == want
        (tmp_path / ".gitignore").unlink()  # nothing left out now
        want = {"src/a.py", "build/out/x.o", "build/y.o", "notes.txt"}
        follow_to(w, mirror, tmp_path, want)
        assert files_of(mirror.entries, tmp_path) == want


def test_a_new_directory_listed_before_a_gitignore_changed_is_placed_under_the_new_one(
    tmp_path: Path,
) -> None:
    """A new directory is listed at once but placed after the next read of the queue;
    a .gitignore read meanwhile decides what of that listing is kept (a race that
    storms under load hit)."""
    backend = ScriptedBackend()
    engine = Engine(gitignore=True)
    mirror = Mirror.of(str(tmp_path))
    engine.add_root(str(tmp_path), backend)
    top = backend.handle_of(str(tmp_path))
    make(tmp_path, "d/a.txt", "d/b.c")
    engine.apply(backend, [EntryChange(top, "d", Action.CREATED, True)])  # listed now
    events = engine.take()
    (tmp_path / ".gitignore").write_text("*.txt\n")
    engine.apply(backend, [EntryChange(top, ".gitignore", Action.CREATED, False)])
    engine.apply(backend, [])  # the queue read dry: the listing is placed
    while engine.advance():
        pass
    mirror.apply(events + engine.take())
    assert files_of(mirror.entries, tmp_path) == {".gitignore", "d/b.c"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only: inotify")
def test_a_subtree_newly_left_out_gives_its_watches_back(tmp_path: Path) -> None:
    for i in range(50):
        (tmp_path / "gen" / f"d{i}").mkdir(parents=True)
    make(tmp_path, "src/a.py")
    before = inotify_watches()
    with Watcher(tmp_path, backend="inotify", gitignore=True) as w:
        full = inotify_watches() - before
        (tmp_path / ".gitignore").write_text("gen/\n")
        events = collect(w, lambda ev: any(e.kind is Change.DELETED for e in ev), settle=0.3)
        assert [e.path for e in events if e.kind is Change.DELETED] == [str(tmp_path / "gen")]
        assert inotify_watches() - before <= full - 51
        (tmp_path / "gen" / "d0" / "new").write_text("x")  # not heard of
        (tmp_path / "src" / "a.py").write_text("y")
        events = collect(w, lambda ev: "src/a.py" in changed(ev, tmp_path), settle=0.3)
        assert changed(events, tmp_path) == {"src/a.py"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nested_file_takes_back_what_an_outer_one_leaves_out(
    tmp_path: Path, backend: str
) -> None:
    make(tmp_path, "logs/a.log", "logs/keep/b.log", "other/c.log")
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "logs" / "keep" / ".gitignore").write_text("!*.log\n")
    with Watcher(tmp_path, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        assert cached_files(w, tmp_path) == {".gitignore", "logs/keep/.gitignore",
                                             "logs/keep/b.log"}
        make(tmp_path, "logs/keep/new.log", "logs/new.log")
        events = collect(w, lambda ev: "logs/keep/new.log" in changed(ev, tmp_path), settle=0.3)
    assert changed(events, tmp_path) == {"logs/keep/new.log"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gitignore_moved_away_stops_speaking(tmp_path: Path, backend: str) -> None:
    make(tmp_path, "d/x.tmp", "d/y.txt", "e/z.tmp")
    (tmp_path / "d" / ".gitignore").write_text("*.tmp\n")
    with Watcher(tmp_path, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        os.rename(tmp_path / "d" / ".gitignore", tmp_path / "e" / ".gitignore")
        events = collect(w, lambda ev: {"d/x.tmp"} <= changed(ev, tmp_path), settle=0.3)
    kinds = {(e.kind, rel(e.path, tmp_path)) for e in events}
    assert (Change.CREATED, "d/x.tmp") in kinds
    assert (Change.DELETED, "e/z.tmp") in kinds


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gitignore_is_obeyed_and_followed_when_it_is_hidden(
    tmp_path: Path, backend: str
) -> None:
    make(tmp_path, "a.tmp", "b.txt")
    (tmp_path / ".gitignore").write_text("*.tmp\n")
    for name in ("a.tmp", "b.txt"):  # made long before: a rescan has nothing to verify
        os.utime(tmp_path / name, ns=(1, 1))
    with Watcher(tmp_path, backend=backend, gitignore=True, hidden=False,
                 poll_interval=FAST_POLL) as w:
        (tmp_path / ".gitignore").write_text("*.txt\n")
        events = collect(w, lambda ev: len(changed(ev, tmp_path)) >= 2, settle=0.3)
    assert {(e.kind, rel(e.path, tmp_path)) for e in events} == {
        (Change.CREATED, "a.tmp"), (Change.DELETED, "b.txt")}


# --------------------------------------------------------------------------- above the root


@needs_git
@pytest.mark.parametrize("backend", BACKENDS)
def test_files_above_the_root_up_to_the_work_tree_top_speak_for_it(
    tmp_path: Path, home: Path, backend: str
) -> None:
    repo = tmp_path / "repo"
    git_init(repo, home)
    (repo / ".gitignore").write_text("*.o\n/sub/top-only\n")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("*.bak\n")
    (repo / "sub" / ".gitignore").parent.mkdir()
    (repo / "sub" / ".gitignore").write_text("!keep.o\n")
    root = repo / "sub" / "pkg"
    make(root, "a.c", "a.o", "keep.o", "a.bak", "top-only")
    with Watcher(root, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
        kept = cached_files(w, root)
    assert kept == {"a.c", "keep.o", "top-only"}
    assert {os.path.join("sub", "pkg", f) for f in kept} == {
        f for f in git_files(repo, home) if f.startswith("sub/pkg/")}


def test_outside_a_work_tree_the_files_within_the_root_still_speak(tmp_path: Path) -> None:
    make(tmp_path, "a.o", "a.c")
    (tmp_path / ".gitignore").write_text("*.o\n")
    with Watcher(tmp_path, backend="polling", gitignore=True, poll_interval=FAST_POLL) as w:
        assert cached_files(w, tmp_path) == {".gitignore", "a.c"}


def test_without_gitignore_true_the_files_are_not_read(tmp_path: Path) -> None:
    make(tmp_path, "a.o")
    (tmp_path / ".gitignore").write_text("*.o\n")
    with Watcher(tmp_path, backend="polling", poll_interval=FAST_POLL) as w:
        assert cached_files(w, tmp_path) == {".gitignore", "a.o"}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_invalid_pattern_is_skipped_with_a_warning_naming_its_line(
    tmp_path: Path, backend: str
) -> None:
    make(tmp_path, "a.o", "b.c", "c.d")
    (tmp_path / ".gitignore").write_text("*.o\nfoo\\\n!\n*.d\n")
    warnings: list[str] = []
    with Watcher(tmp_path, backend=backend, gitignore=True, poll_interval=FAST_POLL,
                 on_warning=warnings.append) as w:
        assert cached_files(w, tmp_path) == {".gitignore", "b.c"}
    where = str(tmp_path / ".gitignore")
    assert any(f"{where}, line 2" in m and "'foo\\\\'" in m for m in warnings), warnings
    assert any(f"{where}, line 3" in m for m in warnings), warnings
    assert len(warnings) == 2


def test_the_cli_obeys_gitignore_and_warns_without_a_traceback(tmp_path: Path) -> None:
    make(tmp_path, "a.o")
    (tmp_path / ".gitignore").write_text("*.o\nbad\\\n")
    cli = Cli(["watch", str(tmp_path), *FAST, "--timeout", "2", "--gitignore"], None, {}, b"\n")
    try:
        cli.ready()
        (tmp_path / "a.o").write_text("y")
        (tmp_path / "b.c").write_text("y")
        assert cli.wait() == 0
    finally:
        cli.kill()
    records = [line.split("\t") for line in cli.rest().decode().splitlines()]
    assert {rel(path, tmp_path) for _, path in records} == {"b.c"}
    assert b"line 2" in cli.stderr
    assert b"is not a valid gitignore pattern" in cli.stderr
    assert_no_traceback(cli.stderr)


def test_the_config_file_key_turns_it_on(tmp_path: Path) -> None:
    make(tmp_path, "a.o", "a.c")
    (tmp_path / ".gitignore").write_text("*.o\n")
    config = tmp_path / "crosswatch.toml"
    config.write_text("gitignore = true\n")
    with Watcher(tmp_path, backend="polling", poll_interval=FAST_POLL, config_file=config) as w:
        assert w.settings.gitignore is True
        assert cached_files(w, tmp_path) == {".gitignore", "a.c", "crosswatch.toml"}


# --------------------------------------------------------------------------- storm

STORM_PATTERNS = ["n1", "n2*/", "!n23", "n3/", "/n4", "n1?", "**/n5", "!n1", "n6/n7", "*"]


def rewrite_gitignores(root: str, seed: int, seconds: float) -> None:
    """A writer of random ``.gitignore`` files in random directories under ``root``."""
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        dirs = [root] + [p for p, d in snapshot(root).items() if d]
        where = os.path.join(rng.choice(dirs), ".gitignore")
        try:
            if rng.random() < 0.2:
                os.unlink(where)
            else:
                lines = rng.sample(STORM_PATTERNS[:-1], rng.randint(1, 3))
                if rng.random() < 0.03:
                    lines = ["*", "!*/"]  # leaves out every file below, for a while
                Path(where).write_text("\n".join(lines) + "\n")
        except OSError:
            pass  # its directory went away meanwhile
        time.sleep(0.01)


def clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def git_view(repo: Path, root: Path, home: Path) -> dict[str, bool]:
    """What git does not ignore below ``root``: path -> is_dir, as a mirror holds it."""
    disk = snapshot(str(root))
    dirs = {rel(p, repo): p for p, d in disk.items() if d}
    ignored = {dirs[d] for d in check_ignore(repo, home, set(dirs))}
    out = {p: True for p in dirs.values()
           if not any(p == i or p.startswith(i + os.sep) for i in ignored)}
    prefix = rel(root, repo) + "/"
    out.update({str(repo / f): False for f in git_files(repo, home) if f.startswith(prefix)})
    return out


@needs_git
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_a_storm_that_rewrites_gitignore_files_converges_to_what_git_shows(
    tmp_path: Path, home: Path, backend: str, seed: int
) -> None:
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        repo = Path(tmp)
        git_init(repo, home)
        root = repo / "w"
        for a in range(8):
            for b in range(10, 13):
                make(root, *(f"n{a}/n{b}/n{c}" for c in range(8)), f"n{a}/n{b + 3}")
        with Watcher(root, backend=backend, gitignore=True, poll_interval=FAST_POLL) as w:
            mirror = Mirror.of(str(root))
            gitignores = subprocess.Popen(
                [sys.executable, __file__, str(root), str(seed), "3"])
            try:
                _, consumed = storm_while_reading(w, str(root), seed=seed, names=24)
            finally:
                assert gitignores.wait(timeout=60) == 0
            mirror.apply(consumed)
            # and at the end, one that surely leaves something out
            for name in ("n1", "n3"):
                clear(root / name)
            make(root, "n1", "n3/n0")
            (root / ".gitignore").write_text("n1\nn3/\n!n12\n")
            follow(w, mirror, lambda: mirror.entries == git_view(repo, root, home))
        want = git_view(repo, root, home)
        assert mirror.entries == want, mirror.diff(want)
        assert len(want) < len(snapshot(str(root)))  # the check saw something left out


if __name__ == "__main__":
    rewrite_gitignores(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))

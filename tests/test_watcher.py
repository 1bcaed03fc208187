"""The synchronous API: delivery, callbacks, errors, backpressure and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

import crosswatch
from crosswatch import Change, ConfigError, Event, Watcher, WatchPathError
from crosswatch import _longpath as longpath
from crosswatch.backend import Action, EntryChange, Observation, Options
from crosswatch.testing import (
    FileOps,
    Mirror,
    ScriptedBackend,
    collect,
    converge,
    needs_posix_permissions,
    needs_symlinks,
    tmpfs,
)
from crosswatch.testing._deep import BY_FD, make_chain, remove_tree, touch
from crosswatch.testing._platform import WINDOWS

POLL = {"backend": "polling", "poll_interval": 0.05}


def paths(events: Sequence[Event], kind: Change | None = None) -> list[str]:
    return [e.path for e in events if kind is None or e.kind is kind]


def test_nonexistent_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(WatchPathError, match="does not exist"):
        Watcher(missing)


def test_no_path_and_bad_values_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one path"):
        Watcher()
    with pytest.raises(ConfigError, match="unknown event kind"):
        Watcher(tmp_path, kinds=["exploded"])
    with pytest.raises(ConfigError, match="access=True"):
        Watcher(tmp_path, kinds=["opened"])
    with pytest.raises(ConfigError):
        Watcher(tmp_path, poll_interval=-1)
    with pytest.raises(crosswatch.UnknownBackendError, match="polling"):
        Watcher(tmp_path, backend="pollinng").start()


def test_single_strings_are_one_name_not_characters(tmp_path: Path) -> None:
    w = Watcher(tmp_path, deny="polling", ignore="*.tmp")
    assert w.settings.deny == frozenset({"polling"})
    assert w.settings.ignore == ("*.tmp",)


def test_same_root_twice_and_nested_roots_report_once(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    w = Watcher(tmp_path, str(tmp_path) + "/", sub, sub / ".." / "sub", **POLL)  # type: ignore[arg-type]
    assert w.roots == [str(tmp_path)]
    with w:
        (sub / "f").write_text("x")
        events = collect(w, lambda ev: bool(ev), settle=0.3)
    assert paths(events, Change.CREATED) == [str(sub / "f")]


def test_callback_mode_delivers_on_the_watcher_thread(tmp_path: Path) -> None:
    got: list[Event] = []
    done = threading.Event()
    threads: set[str] = set()

    def on_batch(batch: list[Event]) -> None:
        threads.add(threading.current_thread().name)
        got.extend(batch)
        done.set()

    w = Watcher(tmp_path, callback=on_batch, **POLL).start()
    try:
        (tmp_path / "f").write_text("x")
        assert done.wait(10)
        with pytest.raises(TypeError, match="callback"):
            iter(w).__next__()
    finally:
        w.close()
    assert paths(got, Change.CREATED) == [str(tmp_path / "f")]
    assert threads == {"crosswatch"}


def test_close_from_the_callback_is_allowed(tmp_path: Path) -> None:
    closed = threading.Event()

    def on_batch(batch: list[Event]) -> None:
        w.close()
        closed.set()

    w = Watcher(tmp_path, callback=on_batch, **POLL).start()
    (tmp_path / "f").write_text("x")
    assert closed.wait(10)
    w.close()
    assert w.closed


class Exploding(ScriptedBackend):
    name = "exploding"

    def read(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("the OS said no")


def test_an_error_in_the_watcher_thread_reaches_the_consumer(tmp_path: Path) -> None:
    with Watcher(tmp_path, backend=Exploding) as w:
        w.backend("exploding").push()  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="the OS said no"):
            collect(w, lambda _: False, timeout=10)


def wave(root: Path, n: int) -> None:
    """A directory and five empty files: six events (no write a tick could split)."""
    (root / f"d{n:02d}").mkdir()
    for m in range(5):
        (root / f"d{n:02d}" / f"f{m}").touch()


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


class Deferring(ScriptedBackend):
    """Gives part of what it reads one read later, and says so by a deadline of now,
    its descriptor quiet: as fanotify gives again a new directory's early events once
    the engine watches it."""

    name = "deferring"

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self._after: list[Observation] = []  # set before the push that wakes the loop
        self._later: list[Observation] = []

    def push_deferring(self, now: Observation, later: Observation) -> None:
        self._after = [later]
        self.push(now)

    def deadline(self) -> float | None:
        return time.monotonic() if self._later else None

    def read(self) -> Sequence[Observation]:
        out = [*self._later, *super().read()]
        self._later, self._after = self._after, []
        return out


def test_a_backend_due_now_is_read_though_its_descriptor_stays_quiet(tmp_path: Path) -> None:
    """A deadline of ``time.monotonic()`` is due: a loop that compared it with the
    time taken before asking spun on, never reading (a storm's last entries lost)."""
    with Watcher(tmp_path, backend=Deferring) as w:
        mirror = Mirror.of(str(tmp_path))
        backend = w.backend("deferring")
        assert isinstance(backend, Deferring)
        handle = backend.handle_of(str(tmp_path))
        for name in ("first", "deferred"):
            (tmp_path / name).write_text("x")
        backend.push_deferring(
            EntryChange(handle, "first", Action.CREATED, False),
            EntryChange(handle, "deferred", Action.CREATED, False),
        )
        events = converge(w, mirror, timeout=10)
    assert paths(events, Change.CREATED) == [str(tmp_path / n) for n in ("first", "deferred")]


@pytest.mark.parametrize("bound", ["max_queue", "max_queue_bytes"])
def test_past_a_bound_reading_pauses_and_nothing_more_is_queued(
    tmp_path: Path, bound: str
) -> None:
    """Past a bound the watcher stops reading the OS; once consumed, it catches up."""
    # About 20 events either way (an event is estimated at 160 bytes plus its path).
    options = {"max_queue": 20} if bound == "max_queue" else {"max_queue_bytes": 5_000}
    with Watcher(tmp_path, **options, **POLL) as w:  # type: ignore[arg-type]
        mirror = Mirror.of(str(tmp_path))
        n = 0
        while not w.backlog.paused:  # a wave seen whole before the next, until a bound
            assert n < 100, "reading never paused"
            before = w.backlog.events
            wave(tmp_path, n)
            n += 1
            until(lambda b=before: w.backlog.events >= b + 6 or w.backlog.paused, "unseen")
        held = w.backlog
        for _ in range(10):  # more waves, over many poll ticks, while nobody consumes
            wave(tmp_path, n)
            n += 1
            time.sleep(0.06)
        time.sleep(0.3)
        assert w.backlog == held, "events were queued while reading was paused"
        # The pass that reached the bound read one wave at most.
        if bound == "max_queue":
            assert w.max_queue <= held.events < w.max_queue + 6
        else:
            assert held.events < 100  # the byte bound paused it, not max_queue
            wave_bytes = 6 * held.bytes / held.events
            assert w.max_queue_bytes <= held.bytes < w.max_queue_bytes + 1.2 * wave_bytes
        assert (held.peak_events, held.peak_bytes) == (held.events, held.bytes)
        first = w.get(timeout=5)  # everything waiting, in one list
        assert first is not None
        assert len(first) == held.events
        mirror.apply(first)
        converge(w, mirror)


def test_a_rename_waiting_for_its_partner_is_not_settled_while_paused(tmp_path: Path) -> None:
    """Its partner may sit unread in the kernel's queue, and the queue must not grow."""
    (tmp_path / "old").write_text("x")
    with Watcher(tmp_path, backend=ScriptedBackend, max_queue=3, pair_wait=0.05) as w:
        mirror = Mirror.of(str(tmp_path))
        backend = w.backend("scripted")
        handle = backend.handle_of(str(tmp_path))  # type: ignore[attr-defined]
        for n in range(3):
            (tmp_path / f"new{n}").write_text("x")
        (tmp_path / "old").rename(tmp_path.parent / f"{tmp_path.name}-moved-out")
        backend.push(  # type: ignore[attr-defined]
            *[EntryChange(handle, f"new{n}", Action.CREATED, False) for n in range(3)],
            EntryChange(handle, "old", Action.MOVED_FROM, False, 7),
        )
        until(lambda: w.backlog.paused, "reading never paused")
        time.sleep(0.5)  # ten times pair_wait
        assert w.backlog.events == 3, "a rename was settled while reading was paused"
        events = converge(w, mirror)  # resumed: now it is settled, as a deletion
    assert (Change.DELETED, str(tmp_path / "old")) in [(e.kind, e.path) for e in events]


def test_directories_made_while_paused_are_listed_within_the_bound(tmp_path: Path) -> None:
    """Their listings, once reading resumes, come in pieces that keep to ``max_queue``.

    While paused the kernel queues the directories' creations only (their entries
    are in directories not watched yet); each listing is an event per entry, and
    the engine stops between listings once the consumer's bound is reached.
    """
    ops = FileOps()
    dirs, files, bound = 20, 15, 40
    with Watcher(tmp_path, backend=ScriptedBackend, max_queue=bound, max_batch=10) as w:
        ops.attach(w.backend("scripted"))  # type: ignore[arg-type]
        mirror = Mirror.of(str(tmp_path))
        for n in range(bound):
            ops.mkdir(str(tmp_path / f"e{n}"))
        until(lambda: w.backlog.paused, "reading never paused")
        for d in range(dirs):
            ops.mkdir(str(tmp_path / f"d{d}"))
            for f in range(files):  # not watched yet: only the listing will tell
                (tmp_path / f"d{d}" / f"f{f}").write_text("x")
        converge(w, mirror)
        # One read of the queue (the creations of the directories) and one listing
        # may pass the bound; the rest waits in the engine for the consumer.
        assert w.backlog.peak_events <= bound + dirs + files + 1


def test_a_slow_consumer_gets_what_waits_merged_up_to_max_batch(tmp_path: Path) -> None:
    with Watcher(tmp_path, max_batch=12, **POLL) as w:
        mirror = Mirror.of(str(tmp_path))
        names = [str(tmp_path / f"f{n:02d}") for n in range(30)]
        for n, name in enumerate(names):  # one file per poll tick: 30 batches wait
            Path(name).touch()
            until(lambda n=n: w.backlog.events > n, "a file unseen")
        batches = [w.get(timeout=5) or [] for _ in range(3)]
        assert [len(b) for b in batches] == [12, 12, 6]
        merged = [e for b in batches for e in b]
        assert [(e.kind, e.path) for e in merged] == [(Change.CREATED, p) for p in names]
        assert w.backlog.events == 0
        mirror.apply(merged)
        converge(w, mirror)


def test_callback_batches_are_cut_to_max_batch(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    for n in range(10):
        (outside / "d" / f"f{n}").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    got: list[list[Event]] = []
    done = threading.Event()

    def on_batch(batch: list[Event]) -> None:
        got.append(batch)
        if sum(map(len, got)) >= 11:
            done.set()

    with Watcher(root, callback=on_batch, max_batch=3, **POLL):
        (outside / "d").rename(root / "d")  # one poll tick finds all eleven entries
        assert done.wait(10)
    assert [len(b) for b in got] == [3, 3, 3, 2]
    assert paths([e for b in got for e in b])[0] == str(root / "d")


@pytest.mark.parametrize("name", ["max_queue", "max_queue_bytes", "max_batch"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bounds_must_be_positive_whole_numbers(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{name}= must be a whole number"):
        Watcher(tmp_path, **{name: value})  # type: ignore[arg-type]


def test_debounce_gathers_a_burst_into_one_batch(tmp_path: Path) -> None:
    with Watcher(tmp_path, debounce=0.5, **POLL) as w:
        for n in range(5):
            (tmp_path / f"f{n}").write_text("x")
            time.sleep(0.06)
        batch = w.get(timeout=10)
    assert batch is not None
    assert len(paths(batch, Change.CREATED)) == 5


def test_settle_holds_a_batch_until_the_tree_is_quiet(tmp_path: Path) -> None:
    """A burst longer than ``debounce`` would allow still comes as one batch: each
    event pushes delivery out, and nothing comes while writes go on."""
    with Watcher(tmp_path, settle=1.5, **POLL) as w:
        for n in range(12):  # 1.2 s of writes, longer than one settle would be from the first
            (tmp_path / f"f{n}").write_text("x")
            time.sleep(0.1)
            assert w.get(timeout=0) == []  # not quiet yet: nothing delivered
        batch = w.get(timeout=20)
        rest = w.get(timeout=2)
    assert batch is not None
    assert len(paths(batch, Change.CREATED)) == 12
    assert rest == []


def test_kinds_filter(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with Watcher(tmp_path, kinds=["deleted"], **POLL) as w:
        (tmp_path / "g").write_text("x")
        (tmp_path / "f").unlink()
        events = collect(w, bool, settle=0.3)
    assert [(e.kind, e.path) for e in events] == [(Change.DELETED, str(tmp_path / "f"))]


@needs_symlinks
def test_symlinks_are_entries_and_loops_are_harmless(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("..", tmp_path / "d" / "up")  # a loop if it were followed
    os.symlink("loop", tmp_path / "loop")  # a link to itself
    with Watcher(tmp_path, **POLL) as w:
        os.symlink("d", tmp_path / "alias")
        events = collect(w, bool, settle=0.3)
    assert [(e.kind, e.path, e.is_dir) for e in events] == [
        (Change.CREATED, str(tmp_path / "alias"), False)
    ]


def test_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 200
    deep = os.path.join(str(tmp_path), *["d"] * depth)
    if len(os.fsencode(deep)) + len(os.sep + "bottom") >= longpath.PATH_MAX:
        # Past what the OS takes as one path (macOS: 1,024 bytes): made by descriptors.
        if not BY_FD:
            pytest.skip("the tree's paths are too long for this OS")
        top = os.path.join(str(tmp_path), "d")
        make_chain(top, "d", depth - 1)
        try:
            with Watcher(tmp_path, **POLL) as w:
                touch(deep, "bottom")
                events = collect(w, bool, settle=0.2)
            assert paths(events, Change.CREATED) == [os.path.join(deep, "bottom")]
        finally:
            remove_tree(top)
        return
    deep = str(tmp_path)
    for _ in range(depth):  # os.makedirs itself recurses
        deep = os.path.join(deep, "d")
        try:
            os.mkdir(deep)
        except OSError as exc:  # Windows refuses such paths unless long paths are enabled
            if not WINDOWS:
                raise
            pytest.skip(f"this OS refuses the tree's long paths: {exc}")
    try:
        with Watcher(tmp_path, **POLL) as w:
            with open(os.path.join(deep, "bottom"), "w"):
                pass
            events = collect(w, bool, settle=0.2)
        assert paths(events, Change.CREATED) == [os.path.join(deep, "bottom")]
    finally:  # shutil.rmtree (and pytest's cleanup) would recurse too deep
        os.unlink(os.path.join(deep, "bottom"))
        while deep != str(tmp_path):
            os.rmdir(deep)
            deep = os.path.dirname(deep)


def test_a_single_file_root_ends_with_its_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "f").write_text("x")
    with Watcher(d / "f", **POLL) as w:
        (d / "f").unlink()
        d.rmdir()
        events = collect(w, lambda ev: False, timeout=0, settle=0.5)
        assert w.get(timeout=5) is None
    assert [(e.kind, e.path) for e in events] == [(Change.DELETED, str(d / "f"))]


UNREADABLE = textwrap.dedent(
    """
    import os, sys, time
    import crosswatch
    root = sys.argv[1]
    # What is used is loaded before privileges are dropped, as a daemon does it (this
    # Python's own library may be unreadable to the user it becomes).
    from crosswatch import Watcher
    plugins = crosswatch.Plugins()
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
    warnings = []
    w = crosswatch.Watcher(root, backend="polling", poll_interval=0.05, plugins=plugins,
                           on_warning=warnings.append)
    with w:
        open(os.path.join(root, "open", "new"), "w").close()
        got = []
        end = time.monotonic() + 10
        while time.monotonic() < end and not got:
            got += w.get(timeout=0.1) or []
        time.sleep(0.3)  # more ticks: the warning must not repeat
        got += w.get(timeout=0.1) or []
    try:
        crosswatch.Watcher(os.path.join(root, "closed"), backend="polling",
                           plugins=plugins).start()
    except crosswatch.WatchPathError as exc:
        assert "permission denied" in str(exc), exc
    else:
        raise AssertionError("an unreadable root was accepted")
    print(len(warnings), warnings[0] if warnings else "")
    print([(e.kind.value, os.path.relpath(e.path, root)) for e in got])
    """
)


@needs_posix_permissions
def test_unreadable_directories_are_skipped_with_one_warning() -> None:
    with tempfile.TemporaryDirectory(dir=tmpfs()) as tmp:
        os.chmod(tmp, 0o755)
        root = os.path.join(tmp, "root")
        for d in ("", "open", "closed", os.path.join("closed", "inner")):
            os.mkdir(os.path.join(root, d))
        os.chmod(root, 0o777)
        os.chmod(os.path.join(root, "open"), 0o777)
        os.chmod(os.path.join(root, "closed"), 0o000)
        try:
            out = subprocess.run(
                [sys.executable, "-c", UNREADABLE, root],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": str(Path(crosswatch.__file__).parent.parent)},
            )
        finally:
            os.chmod(os.path.join(root, "closed"), 0o755)
    assert out.returncode == 0, out.stderr
    count, rest = out.stdout.splitlines()[0].split(" ", 1)
    assert count == "1"
    assert "cannot read directory" in rest
    assert "closed" in rest
    assert out.stdout.splitlines()[1] == "[('created', 'open/new')]"

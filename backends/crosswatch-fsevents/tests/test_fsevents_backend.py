"""The FSEvents plugin: import, probe and the CoreServices door on every OS; the
backend's reading of callbacks, applied by the real engine to real files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import crosswatch_fsevents
import pytest
from crosswatch_fsevents import FSEventsBackend, _abi
from crosswatch_fsevents._coreservices import CoreServices, CoreServicesUnavailable

import crosswatch
from crosswatch import Change, ConfigError, CrosswatchWarning
from crosswatch._engine import Engine
from crosswatch._feed import feed
from crosswatch.backend import Action, EntryChange, Options, SubtreeLost, WatchError, WatchGoneError
from crosswatch.testing import Mirror, snapshot

not_macos = pytest.mark.skipif(sys.platform == "darwin", reason="the OS is macOS")

FILE = _abi.kFSEventStreamEventFlagItemIsFile
DIR = _abi.kFSEventStreamEventFlagItemIsDir
CREATED = _abi.kFSEventStreamEventFlagItemCreated
REMOVED = _abi.kFSEventStreamEventFlagItemRemoved
RENAMED = _abi.kFSEventStreamEventFlagItemRenamed
MODIFIED = _abi.kFSEventStreamEventFlagItemModified


class StandIn:
    """In place of CoreServices: loads nothing; its streams start and never call back."""

    def __init__(self) -> None:
        self.loads = 0
        self.streams: list[list[str]] = []

    def unavailable(self) -> str | None:
        return None

    def load(self) -> None:
        self.loads += 1

    def extended_data(self) -> bool:
        return True

    def current_event_id(self) -> int:
        return 1

    def queue_create(self, label: str) -> object:
        return label

    def queue_sync(self, queue: object) -> None:
        pass

    def queue_release(self, queue: object) -> None:
        pass

    def stream_create(self, callback: object, paths: list[str], since_when: int,
                      latency: float, flags: int) -> object:
        self.streams.append(list(paths))
        return len(self.streams)

    def stream_set_dispatch_queue(self, stream: object, queue: object) -> None:
        pass

    def stream_start(self, stream: object) -> bool:
        return True

    def stream_flush_sync(self, stream: object) -> None:
        pass

    stream_stop = stream_invalidate = stream_release = stream_flush_sync


class StandInBackend(FSEventsBackend):
    system = StandIn()


def backend(**kwargs: object) -> FSEventsBackend:
    return StandInBackend(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ every OS


def test_importing_the_plugin_loads_no_framework() -> None:
    code = textwrap.dedent(
        """
        import ctypes
        def refuse(*a, **k):
            raise AssertionError("a library was loaded at import")
        ctypes.CDLL = ctypes.cdll.LoadLibrary = refuse
        import crosswatch_fsevents
        print(crosswatch_fsevents.FSEventsBackend.name)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fsevents"


def test_the_plugin_registers_one_recursive_backend() -> None:
    plugins = crosswatch.Plugins(autoload=False, extra=[crosswatch_fsevents])
    assert "fsevents" in plugins.backends
    assert FSEventsBackend.capabilities.recursive


@not_macos
def test_the_probe_says_it_needs_macos(tmp_path: Path) -> None:
    probe = FSEventsBackend.probe(str(tmp_path))
    assert (probe.backend, probe.available, probe.reason) == (
        "fsevents", False, "needs macOS (FSEvents)"
    )


def test_where_its_door_opens_the_probe_says_available(tmp_path: Path) -> None:
    probe = StandInBackend.probe(str(tmp_path))
    assert (probe.backend, probe.available) == ("fsevents", True)
    assert probe.score > 100  # one stream for a whole tree: above kqueue's descriptors


def test_on_a_network_volume_the_probe_says_remote_changes_are_unseen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("crosswatch_fsevents._backend.fs_type", lambda path: "smbfs")
    probe = StandInBackend.probe(str(tmp_path))
    assert probe.available
    assert "smbfs: changes made by other hosts are not seen" in probe.reason
    assert probe.score < 100


@not_macos
def test_crosswatch_probe_lists_it_as_unavailable(tmp_path: Path) -> None:
    plugins = crosswatch.Plugins(autoload=False, extra=[crosswatch_fsevents])
    report = crosswatch.probe(str(tmp_path), plugins=plugins)
    answers = {p.backend: p for p in report.results}
    assert not answers["fsevents"].available
    assert "needs macOS" in answers["fsevents"].reason


@not_macos
def test_the_frameworks_refuse_to_load_with_a_clear_error() -> None:
    cs = CoreServices()
    with pytest.raises(CoreServicesUnavailable, match="needs macOS") as caught:
        cs.load()
    assert isinstance(caught.value, WatchError)
    assert str(caught.value).startswith("the fsevents backend needs macOS (FSEvents); on ")
    with pytest.raises(CoreServicesUnavailable, match="needs macOS"):
        cs.stream_start(0)  # every call loads first, and says why it cannot
    with pytest.raises(CoreServicesUnavailable, match="needs macOS"):
        FSEventsBackend()


# ------------------------------------------------------------------ latency


def test_latency_by_argument_option_or_class_attribute() -> None:
    assert backend().latency == FSEventsBackend.latency == 0.05
    assert backend(options=Options(extra={"latency": 0.5})).latency == 0.5
    assert backend(options=Options(extra={"latency": 0.5}), latency=0).latency == 0.0

    class Slow(FSEventsBackend):
        latency = 2.0

    class SlowStandIn(Slow):
        system = StandIn()

    assert SlowStandIn().latency == 2.0


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "0.1", True])
def test_a_bad_latency_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="fsevents latency"):
        backend(latency=bad)


# ------------------------------------------------------------------ reading callbacks


def test_watch_is_idempotent_and_unwatch_forgets(tmp_path: Path) -> None:
    b = backend()
    root = str(tmp_path)
    h = b.watch(root, recursive=True)
    assert b.watch(root, recursive=True) == h
    b.deliver([f"{root}/f"], [MODIFIED | FILE], [9])
    assert b.read() == [EntryChange(h, "f", Action.MODIFIED, False)]
    assert b.latest_id == 9
    b.unwatch(h)
    b.unwatch(h)
    b.deliver([f"{root}/f"], [MODIFIED | FILE], [10])
    with pytest.warns(CrosswatchWarning, match="under no root"):
        assert b.read() == []
    b.close()
    b.deliver([f"{root}/f"], [MODIFIED | FILE], [11])
    assert b.read() == []


def test_watching_a_path_that_is_gone_says_so(tmp_path: Path) -> None:
    with pytest.raises(WatchGoneError):
        backend().watch(str(tmp_path / "nothing"), recursive=True)


def test_a_root_through_a_link_is_matched_by_its_resolved_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    b = backend()
    h = b.watch(str(link), recursive=True)
    b.deliver([f"{real}/f"], [MODIFIED | FILE], [1])
    assert b.read() == [EntryChange(h, "f", Action.MODIFIED, False)]


def test_a_garbled_callback_is_a_loss_of_every_root_with_one_warning(tmp_path: Path) -> None:
    b = backend()
    h = b.watch(str(tmp_path), recursive=True)
    b.deliver(["/a", "/b"], [1], [1, 2])
    with pytest.warns(CrosswatchWarning, match="could not be read.*differ in length"):
        assert b.read() == [SubtreeLost(h)]
    b.deliver([f"{tmp_path}/x"], ["garbage"], [3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert b.read() == [SubtreeLost(h)]  # said once


def test_unknown_flag_bits_are_said_once(tmp_path: Path) -> None:
    b = backend()
    b.watch(str(tmp_path), recursive=True)
    b.deliver([f"{tmp_path}/x"], [0x40000000 | CREATED | FILE], [3])
    with pytest.warns(CrosswatchWarning, match="0x40000000"):
        b.read()


# ------------------------------------------------------------------ through the engine


class Scene:
    """A real tree, the real engine, and callbacks written as FSEvents would send them."""

    def __init__(self, top: Path) -> None:
        self.root = str(top / "root")
        os.mkdir(self.root)
        for d in ("a", "b", "a/deep"):
            os.mkdir(os.path.join(self.root, d))
        for f in ("a/x", "a/y", "b/z", "a/deep/w"):
            Path(self.root, f).write_text("0")
            os.utime(os.path.join(self.root, f), (0, 1_000_000))
        self.backend = backend()
        self.engine = Engine(pair_wait=0.0)
        self.engine.add_root(self.root, self.backend)
        self.mirror = Mirror.of(self.root)
        self.events: list[crosswatch.Event] = []

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def ino(self, rel: str) -> int:
        return os.lstat(self.path(rel)).st_ino

    def callback(self, events: list[tuple[str, int, int | None]]) -> None:
        paths = [self.path(rel) for rel, _, _ in events]
        flags = [f for _, f, _ in events]
        ids = list(range(100, 100 + len(events)))
        file_ids = [fid for _, _, fid in events]
        self.backend.deliver(paths, flags, ids, file_ids)
        feed(self.engine, self.backend)
        taken = self.engine.take()
        self.events += taken
        self.mirror.apply(taken)

    def converged(self) -> None:
        assert self.mirror.entries == snapshot(self.root), self.mirror.diff(snapshot(self.root))

    def kinds(self) -> list[tuple[Change, str]]:
        return [(e.kind, os.path.relpath(e.path, self.root)) for e in self.events]


def test_a_coalesced_create_write_remove_reports_only_what_the_disk_shows(
    tmp_path: Path,
) -> None:
    s = Scene(tmp_path)
    Path(s.path("a/tmp")).write_text("1")
    os.unlink(s.path("a/tmp"))
    Path(s.path("a/kept")).write_text("1")
    os.unlink(s.path("a/x"))
    s.callback(
        [
            ("a/tmp", CREATED | MODIFIED | REMOVED | FILE, None),
            ("a/kept", CREATED | MODIFIED | FILE, None),
            ("a/x", REMOVED | FILE, None),
        ]
    )
    s.converged()
    assert sorted(s.kinds()) == [(Change.CREATED, "a/kept"), (Change.DELETED, "a/x")]


def test_a_rename_paired_by_file_id_is_one_move(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    fid = s.ino("a/y")
    os.rename(s.path("a/y"), s.path("b/y2"))
    s.callback([("a/y", RENAMED | FILE, fid), ("b/y2", RENAMED | FILE, fid)])
    s.converged()
    assert [(e.kind, e.src_path, e.path) for e in s.events] == [
        (Change.MOVED, s.path("a/y"), s.path("b/y2"))
    ]


def test_a_file_moved_then_written_within_the_latency_is_moved_and_modified(
    tmp_path: Path,
) -> None:
    s = Scene(tmp_path)
    fid = s.ino("a/x")
    os.rename(s.path("a/x"), s.path("b/x2"))
    with open(s.path("b/x2"), "a") as f:
        f.write("more")
    s.callback([("a/x", RENAMED | FILE, fid), ("b/x2", RENAMED | MODIFIED | FILE, fid)])
    s.converged()
    assert s.kinds() == [(Change.MOVED, "b/x2"), (Change.MODIFIED, "b/x2")]


def test_a_file_made_in_a_directory_then_renamed_within_the_latency_is_found(
    tmp_path: Path,
) -> None:
    """``a/deep/new`` made and written, then ``a`` renamed ``c``: FSEvents names the
    file where it was made, its directory dirty; that directory is diffed where the
    rename put it, after the rename is applied."""
    s = Scene(tmp_path)
    Path(s.path("a/deep/new")).write_text("1")
    fid = s.ino("a")
    os.rename(s.path("a"), s.path("c"))
    s.callback(
        [
            ("a/deep/new", CREATED | MODIFIED | FILE, None),
            ("a", RENAMED | DIR, fid),
            ("c", RENAMED | DIR, fid),
        ]
    )
    s.converged()
    assert s.kinds() == [(Change.MOVED, "c"), (Change.CREATED, "c/deep/new")]


def test_a_rename_without_file_ids_is_still_one_move(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    os.rename(s.path("a/deep"), s.path("b/deep"))
    s.callback([("a/deep", RENAMED | DIR, None), ("b/deep", RENAMED | DIR, None)])
    s.converged()
    assert [(e.kind, e.src_path, e.path) for e in s.events] == [
        (Change.MOVED, s.path("a/deep"), s.path("b/deep"))
    ]


def test_an_atomic_save_is_modified(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    Path(s.path("b/.z.tmp")).write_text("new")
    fid = s.ino("b/.z.tmp")
    os.replace(s.path("b/.z.tmp"), s.path("b/z"))
    s.callback(
        [
            ("b/.z.tmp", CREATED | MODIFIED | RENAMED | FILE, fid),
            ("b/z", RENAMED | FILE, fid),
        ]
    )
    s.converged()
    assert s.kinds() == [(Change.MODIFIED, "b/z")]


def test_a_sticky_created_flag_on_a_later_write_is_a_write(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    with open(s.path("a/x"), "a") as f:
        f.write("more")
    s.callback([("a/x", CREATED | MODIFIED | FILE, None)])
    s.converged()
    assert s.kinds() == [(Change.MODIFIED, "a/x")]


def test_a_loss_is_a_rescan_with_its_notice(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    os.rename(s.path("a/deep/w"), s.path("a/deep/v"))
    Path(s.path("a/deep/new")).write_text("1")
    s.callback([("a/deep", _abi.kFSEventStreamEventFlagMustScanSubDirs, None)])
    s.converged()
    assert sorted(s.kinds()) == [
        (Change.CREATED, "a/deep/new"),
        (Change.MOVED, "a/deep/v"),
        (Change.RESCAN, "a/deep"),
    ]


def test_root_changed_ends_a_root_whose_path_leads_elsewhere(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    os.rename(s.root, str(tmp_path / "moved"))
    os.mkdir(s.root)
    s.callback([("", _abi.kFSEventStreamEventFlagRootChanged, None)])
    assert (Change.DELETED, ".") in s.kinds()
    assert not s.engine.roots.all


def test_root_changed_with_the_root_still_in_place_reports_nothing(tmp_path: Path) -> None:
    s = Scene(tmp_path)
    os.rename(s.root, str(tmp_path / "away"))
    os.rename(str(tmp_path / "away"), s.root)
    s.callback([("", _abi.kFSEventStreamEventFlagRootChanged, None)])
    assert s.events == []
    assert s.engine.roots.all

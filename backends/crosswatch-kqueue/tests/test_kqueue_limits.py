"""kqueue's open-file limit: the plan, the tree count, and the probe and opening that use them."""

from __future__ import annotations

import os
import select
import sys
from pathlib import Path
from typing import Any

import pytest
from crosswatch_kqueue import _kq, _limits, crosswatch_register_backends
from crosswatch_kqueue._backend import KqueueBackend
from crosswatch_kqueue._limits import RESERVE, plan

from crosswatch import Plugins, probe
from crosswatch.backend import BackendRegistry, WatchError

ON_LINUX = pytest.mark.skipif(hasattr(select, "kqueue"), reason="this OS has kqueue")
MAC_INF = 2**63 - 1  # RLIM_INFINITY as Python reports it on macOS and FreeBSD
LINUX_INF = -1


# (soft, hard, in use, dirs, files, darwin, maxfilesperproc, complete) ->
# (raise_to, allowed, fits)
TABLE = [
    # macOS starts at 256 with no hard limit: a small tree fits as it is.
    ((256, MAC_INF, 10, 50, 100, True, None, True), (None, 256 - 10 - RESERVE - 1, True)),
    # A bigger one: raised to OPEN_MAX, the most setrlimit takes without the sysctl.
    ((256, MAC_INF, 10, 200, 800, True, None, True), (10240, 10240 - 10 - RESERVE - 1, True)),
    # kern.maxfilesperproc known: that is the cap.
    ((256, MAC_INF, 10, 200, 20000, True, 24576, True), (24576, 24576 - 75, True)),
    # A finite hard limit below the cap is the ceiling.
    ((256, 5000, 10, 100, 1000, True, None, True), (5000, 5000 - 75, True)),
    # Too big even raised: raised all the same, the rest polled.
    ((256, MAC_INF, 10, 1000, 19000, True, None, True), (10240, 10240 - 75, False)),
    # FreeBSD with soft = hard: nothing to raise.
    ((1024, 1024, 5, 100, 4900, False, 1024, True), (None, 1024 - 70, False)),
    # FreeBSD with room above the soft limit.
    ((1024, 8192, 5, 100, 4900, False, None, True), (8192, 8192 - 70, True)),
    # An unlimited hard limit with no known cap off macOS: no raise.
    ((1024, LINUX_INF, 5, 10, 2000, False, None, True), (None, 1024 - 70, False)),
    # A soft limit already above OPEN_MAX on macOS is kept.
    ((20000, MAC_INF, 10, 10, 15000, True, None, True), (None, 20000 - 75, True)),
    # The count stopped at its budget: never said to fit.
    ((256, 256, 10, 10, 100, True, None, False), (None, 181, False)),
    # The program already holds most of its descriptors.
    ((256, 256, 250, 1, 0, True, None, True), (None, 0, False)),
    # Exactly at the edge.
    ((256, 256, 10, 1, 180, True, None, True), (None, 181, True)),
    ((256, 256, 10, 1, 181, True, None, True), (None, 181, False)),
]


@pytest.mark.parametrize(("given", "expected"), TABLE)
def test_plan(given: tuple[Any, ...], expected: tuple[Any, ...]) -> None:
    soft, hard, in_use, dirs, files, darwin, maxfiles, complete = given
    got = plan(soft, hard, in_use, dirs, files, complete=complete, darwin=darwin,
               maxfilesperproc=maxfiles)
    assert (got.raise_to, got.allowed, got.fits) == expected
    assert got.entries == dirs + files
    if got.fits:
        assert "polled" not in got.message
        assert (f"raised from {soft} to {got.raise_to}" in got.message) == bool(got.raise_to)
    else:
        shown = f"{dirs + files}" if complete else f"more than {dirs + files}"
        assert got.message.startswith(f"{shown} entries need {shown} descriptors")
        assert f"{got.allowed} are allowed" in got.message
        assert "the rest is polled" in got.message


def test_message_says_what_to_raise() -> None:
    mac = plan(256, MAC_INF, 10, 1000, 19000, darwin=True)
    assert "kern.maxfilesperproc" in mac.message
    assert "ulimit -Hn" in mac.message
    bsd = plan(1024, 1024, 5, 100, 4900)
    assert "ulimit -Hn" in bsd.message
    # Cut short while it could still be raised: says how far.
    cut = plan(256, 8192, 10, 10, 100, complete=False)
    assert "can be raised to 8192" in cut.message


@pytest.mark.parametrize(
    ("soft", "hard", "darwin", "maxfiles", "expected"),
    [
        (256, MAC_INF, True, None, 10240),
        (256, MAC_INF, True, 24576, 24576),
        (256, 4096, True, 24576, 4096),
        (1024, 4096, False, None, 4096),
        (1024, 65536, False, 32768, 32768),
        (1024, LINUX_INF, False, None, 1024),
        (4096, 1024, False, None, 4096),  # never below the soft limit in force
    ],
)
def test_ceiling(soft: int, hard: int, darwin: bool, maxfiles: int | None, expected: int) -> None:
    assert _limits.ceiling(soft, hard, darwin=darwin, maxfilesperproc=maxfiles) == expected


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    for i, d in enumerate(["", "a", "a/b", "c"]):
        for j in range(i + 1):
            (root / d / f"f{j}").write_text("x")
    (root / "link").symlink_to("a")
    (root / "a" / "flink").symlink_to("f0")
    os.mkfifo(root / "fifo")


def test_count_entries(tmp_path: Path) -> None:
    make_tree(tmp_path)
    # 4 directories (the root too), 1 + 2 + 3 + 4 files; links and the FIFO are not opened
    assert _limits.count_entries(str(tmp_path), 100) == (4, 10, True)
    dirs, files, complete = _limits.count_entries(str(tmp_path), 5)
    assert not complete
    assert dirs + files > 5
    # A file root opens its directory's entries.
    assert _limits.count_entries(str(tmp_path / "a" / "f0"), 100) == (1, 2, True)


def test_descriptors_in_use() -> None:
    before = _limits.descriptors_in_use()
    assert before is not None
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]
    try:
        assert _limits.descriptors_in_use() == before + 5
    finally:
        for fd in fds:
            os.close(fd)


# -------------------------------------------------------------- probe and opening


@ON_LINUX
def test_probe_on_linux_says_what_it_needs(tmp_path: Path) -> None:
    got = KqueueBackend.probe(str(tmp_path))
    assert not got.available
    assert got.reason == "needs macOS or BSD (kqueue)"
    assert got.backend == "kqueue"


@ON_LINUX
def test_plugin_registers_and_is_listed(tmp_path: Path) -> None:
    import crosswatch_kqueue

    registry = BackendRegistry()
    crosswatch_register_backends(registry)
    assert registry["kqueue"] is KqueueBackend
    assert not KqueueBackend.capabilities.recursive
    report = probe(str(tmp_path), plugins=Plugins(autoload=False, extra=[crosswatch_kqueue]))
    kq = [p for p in report.results if p.backend == "kqueue"]
    assert kq
    assert kq[0].reason == "needs macOS or BSD (kqueue)"
    assert report.choice == "polling"


def test_import_touches_no_kqueue_api() -> None:
    import subprocess

    code = (
        "import select, crosswatch.backend\n"
        "class Trap:\n"
        "    def __call__(self, *args): raise AssertionError('called')\n"
        "    def __getattr__(self, name): raise AssertionError(name)\n"
        "select.kqueue = Trap(); select.kevent = Trap()\n"
        "import crosswatch_kqueue, crosswatch_kqueue._abi, crosswatch_kqueue._kq\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


class FakeQueue:
    def __init__(self) -> None:
        self.closed = False

    def fileno(self) -> int:
        return 99

    def close(self) -> None:
        self.closed = True


class StandIn(_kq.System):
    """A kqueue OS with given limits, recording what is asked of it."""

    def __init__(self, soft: int, hard: int, platform: str = "darwin",
                 maxfiles: int | None = None, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.platform = platform
        self.maxfiles = maxfiles
        self.refuse = refuse
        self.set: list[tuple[int, int]] = []
        self.queues: list[FakeQueue] = []

    def available(self) -> bool:
        return True

    def kqueue(self) -> FakeQueue:
        self.queues.append(FakeQueue())
        return self.queues[-1]

    def getrlimit(self) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, soft: int, hard: int) -> None:
        if self.refuse:
            raise ValueError("not allowed to raise the current limit")
        self.set.append((soft, hard))
        self.limits = (soft, hard)

    def maxfilesperproc(self) -> int | None:
        return self.maxfiles


def backend_on(system: _kq.KqueueSystem) -> type[KqueueBackend]:
    return type("Backend", (KqueueBackend,), {"system": system})


def test_probe_plans_without_raising(tmp_path: Path) -> None:
    make_tree(tmp_path)
    system = StandIn(256, MAC_INF)
    ready = backend_on(system).probe(str(tmp_path))
    assert ready.available
    assert "14 entries, 14 of" in ready.reason
    assert ready.needed == 14
    assert ready.limit is not None
    assert ready.score == 90
    assert system.set == []  # the probe never raises the limit


def test_probe_when_the_tree_does_not_fit(tmp_path: Path) -> None:
    make_tree(tmp_path)
    in_use = _limits.descriptors_in_use()
    assert in_use is not None
    soft = in_use + RESERVE + 1 + 5  # room for 5 entries
    got = backend_on(StandIn(soft, soft, "freebsd14")).probe(str(tmp_path))
    assert got.available
    assert got.score == 50
    assert got.needed is not None
    assert got.needed > 5
    assert "the rest is polled" in got.reason
    assert f"{got.limit} are allowed" in got.reason


def test_probe_with_limits_unreadable(tmp_path: Path) -> None:
    class Broken(StandIn):
        def getrlimit(self) -> tuple[int, int]:
            raise OSError(1, "denied")

    got = backend_on(Broken(0, 0)).probe(str(tmp_path))
    assert not got.available
    assert "open-file limit cannot be read" in got.reason


def test_opening_raises_the_soft_limit_and_close_releases(tmp_path: Path) -> None:
    system = StandIn(256, MAC_INF)
    backend = backend_on(system)()
    assert system.set == [(10240, MAC_INF)]
    assert backend.raised_to == 10240
    assert backend.fileno() == 99
    backend.close()
    backend.close()
    assert system.queues[0].closed
    assert backend.fileno() is None
    assert backend.read() == []
    with pytest.raises(WatchError, match="closed"):
        backend.watch(str(tmp_path), recursive=False)
    # Nothing to raise, or raising refused: the limit stays as it is.
    same = StandIn(1024, 1024, "freebsd14")
    backend_on(same)().close()
    assert same.set == []
    refused = StandIn(256, 4096, "freebsd14", refuse=True)
    assert backend_on(refused)().raised_to is None


@ON_LINUX
def test_opening_on_linux_is_refused_clearly() -> None:
    with pytest.raises(WatchError, match="needs macOS or BSD"):
        KqueueBackend()


def test_open_flags() -> None:
    mac = StandIn(256, MAC_INF, "darwin")
    assert mac.open_flags() & getattr(os, "O_EVTONLY", _kq.DARWIN_O_EVTONLY)
    bsd = StandIn(1024, 1024, "freebsd14")
    flags = bsd.open_flags()
    assert flags & os.O_NOFOLLOW
    assert flags & os.O_NONBLOCK
    assert flags & os.O_CLOEXEC
    assert flags & os.O_ACCMODE == os.O_RDONLY


@ON_LINUX
def test_no_maxfilesperproc_on_linux() -> None:
    assert _kq.SYSTEM.maxfilesperproc() is None

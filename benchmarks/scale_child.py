"""The child side of ``scale.py``: one tool started on one tree, or one flood, measured.

    python benchmarks/scale_child.py build ROOT DIRS FILES
    python benchmarks/scale_child.py TOOL ROOT TIMEOUT        # one start, one JSON line
    python benchmarks/scale_child.py flood TOOL ROOT TIMEOUT  # spoken to in lines
    python benchmarks/scale_child.py flood-write DIR N

Each runs in a fresh process, so that what it measures (time, RSS, CPU) is its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import importlib.metadata
import json
import os
import resource
import select
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from run import build_tree

#: Files in each directory of the trees.
FILES = 9

#: watchfiles gives no ready signal: its probe file is made this long after the call.
WATCHFILES_DELAY = 0.05
#: The names of the files made in a root, with the pid of the child that makes them
#: (a name left by a child that was killed would not be created again).
PROBE = "scale-probe-"
MARKER = "scale-marker-"
# inotify(7): what a minimal recursive watcher asks for on each directory.
IN_MODIFY, IN_ATTRIB, IN_MOVED_FROM, IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
IN_ONLYDIR = 0x01000000
WATCH_MASK = (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO
              | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then the name

Timing = dict[str, Any]
Measure = Callable[[str, str, float], tuple[Timing, Any]]





def emit(message: dict[str, Any]) -> None:
    """One JSON line to the orchestrator."""
    print(json.dumps(message), flush=True)


def rss_kib(*, collect: bool = True) -> int:
    """This process's VmRSS, after a collection (unless told not to) so that garbage
    does not count."""
    if collect:
        gc.collect()
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_seconds() -> float:
    """CPU time of this process, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def touch(path: str) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def walk(root: str, on_dir: Callable[[str], object] | None = None) -> int:
    """List every directory under ``root``; ``on_dir`` is called on each before its
    listing (where a watcher places its watch, so that nothing made meanwhile is lost).
    Returns the entries seen."""
    stack, entries = [root], 0
    while stack:
        path = stack.pop()
        if on_dir is not None:
            on_dir(path)
        with os.scandir(path) as listing:
            for entry in listing:
                entries += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return entries


class Inotify:
    """The inotify calls a minimal watcher makes, straight from libc."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd = self._checked(libc.inotify_init1(os.O_CLOEXEC))

    @staticmethod
    def _checked(result: int) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return result

    def add(self, path: str) -> int:
        """Watch directory ``path``; returns its watch descriptor."""
        return self._checked(self._add(self.fd, os.fsencode(path), WATCH_MASK))

    def wait_created(self, wd: int, name: str, deadline: float) -> bool:
        """Read events until ``name`` is created in watch ``wd``, or ``deadline`` passes."""
        wanted = os.fsencode(name)
        while (left := deadline - time.perf_counter()) > 0:
            if not select.select([self.fd], [], [], left)[0]:
                continue
            data = os.read(self.fd, 64 * 1024)
            offset = 0
            while offset < len(data):
                ev_wd, mask, _, length = EVENT_HEADER.unpack_from(data, offset)
                start = offset + EVENT_HEADER.size
                found = data[start:start + length].rstrip(b"\0")
                if ev_wd == wd and mask & IN_CREATE and found == wanted:
                    return True
                offset = start + length
        return False


def _scan(root: str, probe: str, timeout: float) -> tuple[Timing, Any]:
    """The floor of any watcher that reads the tree: listing it, nothing else."""
    t0 = time.perf_counter()
    entries = walk(root)
    seconds = time.perf_counter() - t0
    return {"start_s": seconds, "ready_s": seconds, "entries": entries}, None


def _scan_inotify(root: str, probe: str, timeout: float) -> tuple[Timing, Any]:
    """The floor of an inotify watcher: the walk, a watch per directory, one event."""
    t0 = time.perf_counter()
    inotify = Inotify()
    watches: list[int] = []
    entries = walk(root, lambda path: watches.append(inotify.add(path)))
    t1 = time.perf_counter()
    touch(probe)
    seen = inotify.wait_created(watches[0], os.path.basename(probe), t0 + timeout)
    return _timing(t0, t1, time.perf_counter() if seen else None,
                   entries=entries, watches=len(watches)), inotify


def _timing(t0: float, started: float | None, ready: float | None, **more: Any) -> Timing:
    return {"start_s": None if started is None else started - t0,
            "ready_s": None if ready is None else ready - t0, **more}


def _crosswatch(watcher: Any, backend: str, root: str, probe: str,
                timeout: float) -> tuple[Timing, Any]:
    """``Watcher(root, backend=...).start()``, then the probe's ``created`` event."""
    t0 = time.perf_counter()
    w = watcher(root, backend=backend).start()
    t1 = time.perf_counter()
    touch(probe)
    deadline, ready = t0 + timeout, None
    while ready is None and (left := deadline - time.perf_counter()) > 0:
        batch = w.get(timeout=left)
        if batch is None:
            break
        if any(e.kind == "created" and e.path == probe for e in batch):
            ready = time.perf_counter()
    return _timing(t0, t1, ready, backends=w.backends), w


def _watchfiles(watch: Any, root: str, probe: str, timeout: float) -> tuple[Timing, Any]:
    """``watchfiles.watch`` on a thread; the probe is made ``WATCHFILES_DELAY`` after the
    call, as watchfiles says nothing when it is ready. The generator is kept open."""
    seen, stop = threading.Event(), threading.Event()
    arrived: list[float] = []

    def consume() -> None:
        for changes in watch(root, watch_filter=None, debounce=1, step=1, stop_event=stop,
                             raise_interrupt=False):
            if not seen.is_set() and any(path == probe for _, path in changes):
                arrived.append(time.perf_counter())
                seen.set()
                stop.wait()  # keep the watcher alive until the memory is read

    t0 = time.perf_counter()
    threading.Thread(target=consume, daemon=True).start()
    time.sleep(WATCHFILES_DELAY)
    touch(probe)
    seen.wait(max(0.0, t0 + timeout - time.perf_counter()))
    return _timing(t0, None, arrived[0] if arrived else None), stop


def _watchdog(observer: Any, handler: Any, root: str, probe: str,
              timeout: float) -> tuple[Timing, Any]:
    """``Observer.start()`` (it returns once every watch is placed), then the probe."""
    seen = threading.Event()
    arrived: list[float] = []

    class Probe(handler):  # type: ignore[misc]
        def on_created(self, event: Any) -> None:
            if not seen.is_set() and os.fsdecode(event.src_path) == probe:
                arrived.append(time.perf_counter())
                seen.set()

    t0 = time.perf_counter()
    obs = observer()
    obs.schedule(Probe(), root, recursive=True)
    obs.start()
    t1 = time.perf_counter()
    touch(probe)
    seen.wait(max(0.0, t0 + timeout - time.perf_counter()))
    return _timing(t0, t1, arrived[0] if arrived else None), obs


def load(tool: str) -> Measure:
    """Import what ``tool`` needs (import time is not startup time) and return the
    function that measures it."""
    if tool == "scan":
        return _scan
    if tool == "scan+inotify":
        return _scan_inotify
    if tool.startswith("crosswatch-"):
        import crosswatch

        backend = tool.removeprefix("crosswatch-")
        importlib.import_module(f"crosswatch_{backend}")
        return lambda r, p, t: _crosswatch(crosswatch.Watcher, backend, r, p, t)
    if tool == "watchfiles":
        import watchfiles

        return lambda r, p, t: _watchfiles(watchfiles.watch, r, p, t)
    if tool == "watchdog":
        import watchdog.events
        import watchdog.observers

        return lambda r, p, t: _watchdog(watchdog.observers.Observer,
                                         watchdog.events.FileSystemEventHandler, r, p, t)
    raise ValueError(f"unknown tool {tool!r}")


def startup_child(tool: str, root: str, timeout: float) -> Timing:
    """One start of ``tool`` on ``root``: its times and its memory."""
    measure = load(tool)
    base = rss_kib()
    probe = os.path.join(root, f"{PROBE}{os.getpid()}")
    timing, keep = measure(root, probe, timeout)
    timing.update(tool=tool, rss_base_kib=base, rss_kib=rss_kib())
    del keep  # held until the memory was read
    if os.path.exists(probe):
        os.unlink(probe)
    return timing


class Tally:
    """What a watcher hands over during the flood; notes the marker's arrival."""

    def __init__(self, root: str) -> None:
        self.root, self.prefix = root, root + os.sep
        self.marker = os.path.join(root, f"{MARKER}{os.getpid()}")
        self.events = self.outside = self.rescans = 0
        self.examples: list[str] = []
        self.seen = threading.Event()
        self.seen_at = 0.0

    def consume(self, watcher: Any) -> None:
        while (batch := watcher.get()) is not None:
            for event in batch:
                self.take(event)

    def take(self, event: Any) -> None:
        self.events += 1
        if event.kind == "rescan":
            self.rescans += 1
        for path in (event.path, event.src_path):
            if path is not None and path != self.root and not path.startswith(self.prefix):
                self.outside += 1
                if len(self.examples) < 5:
                    self.examples.append(f"{event.kind} {path}")
        if event.kind == "created" and event.path == self.marker and not self.seen.is_set():
            self.seen_at = time.perf_counter()
            self.seen.set()

    def state(self) -> dict[str, Any]:
        # no collection here: its CPU time would be counted as the watcher's
        return {"cpu_s": cpu_seconds(), "rss_kib": rss_kib(collect=False), "events": self.events,
                "outside": self.outside, "rescans": self.rescans, "examples": self.examples}

    def mark(self, timeout: float) -> dict[str, Any]:
        """Make the marker in the root; the time until its event arrives, or None."""
        t0 = time.perf_counter()
        touch(self.marker)
        seen = self.seen.wait(timeout)
        answer = {"marker_s": self.seen_at - t0 if seen else None, **self.state()}
        os.unlink(self.marker)
        return answer


def flood_child(tool: str, root: str, timeout: float) -> None:
    """A watcher on ``root`` answering the orchestrator's commands, one line each:
    ``state`` (CPU time, memory, counts) and ``marker``; it ends with its stdin."""
    import crosswatch

    w = crosswatch.Watcher(root, backend=tool.removeprefix("crosswatch-")).start()
    tally = Tally(root)
    threading.Thread(target=tally.consume, args=(w,), daemon=True).start()
    emit({"backends": w.backends})
    for line in sys.stdin:
        command = line.strip()
        emit(tally.mark(timeout) if command == "marker" else tally.state())
    w.close()


def flood_write(directory: str, files: int) -> dict[str, Any]:
    """Create ``files`` empty files in ``directory`` as fast as this process can."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    flags = os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC
    t0 = time.perf_counter()
    for i in range(files):
        os.close(os.open(f"o{i:07d}", flags, 0o644, dir_fd=dir_fd))
    seconds = time.perf_counter() - t0
    os.close(dir_fd)
    return {"files": files, "seconds": seconds}


def child(argv: list[str]) -> None:
    """``--child``: build ROOT DIRS FILES | flood TOOL ROOT TIMEOUT | flood-write DIR N |
    TOOL ROOT TIMEOUT (one start)."""
    kind = argv[0]
    if kind == "build":
        build_tree(argv[1], int(argv[2]), int(argv[3]))
        emit({})
    elif kind == "flood":
        flood_child(argv[1], argv[2], float(argv[3]))
    elif kind == "flood-write":
        emit(flood_write(argv[1], int(argv[2])))
    else:
        emit(startup_child(kind, argv[1], float(argv[2])))
    sys.stdout.flush()
    os._exit(0)  # no teardown: some tools take long to stop, and nothing is left to measure




if __name__ == "__main__":
    child(sys.argv[1:])

"""One tool, one scenario, in a process of its own (started by ``run.py``).

    python benchmarks/consumer.py TOOL SCENARIO ROOT [options]

It prints JSON lines on stdout: ``{"ready": ...}`` once the tool watches ``ROOT``, then
``{"result": ...}``. The interactive scenarios (latency, burst, storm) wait, after
``ready``, for a line ``drain QUIET MAX`` on stdin: consume until no event came for
QUIET seconds (or all expected events came, or MAX seconds passed), then stop.
The consumer does nothing but record what it needs: no pause, no printing per event.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tools import Ev, Tool, is_crosswatch, make


def emit(**message: object) -> None:
    print(json.dumps(message), flush=True)


class Collector:
    """Records what a scenario needs from the batches; updated on the delivering thread."""

    def __init__(self) -> None:
        self.last_ns = 0
        self.events = 0
        self.done = False

    def on_batch(self, now: int, events: list[Ev]) -> None:
        self.events += len(events)
        self.last_ns = now
        self.take(now, events)

    def take(self, now: int, events: list[Ev]) -> None:
        pass

    def result(self) -> dict[str, object]:
        return {"events": self.events}


class Probe(Collector):
    """Waits for one path to be reported as created."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.seen_ns: int | None = None

    def take(self, now: int, events: list[Ev]) -> None:
        if self.seen_ns is None and any(
            e.kind == "created" and e.path == self.path for e in events
        ):
            self.seen_ns = now
            self.done = True


class Arrivals(Collector):
    """Arrival times of the ``modified`` events for one file."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.arrivals: list[int] = []

    def take(self, now: int, events: list[Ev]) -> None:
        if any(e.kind == "modified" and e.path == self.target for e in events):
            self.arrivals.append(now)

    def result(self) -> dict[str, object]:
        return {"events": self.events, "arrivals": self.arrivals}


class Creations(Collector):
    """Distinct paths reported as created directly inside one directory."""

    def __init__(self, directory: str, expect: int) -> None:
        super().__init__()
        self.prefix = directory + os.sep
        self.expect = expect
        self.created: set[str] = set()
        self.last_new_ns = 0
        self.rescans = 0

    def take(self, now: int, events: list[Ev]) -> None:
        before = len(self.created)
        for e in events:
            if e.kind == "created" and e.path.startswith(self.prefix):
                self.created.add(e.path)
            elif e.kind == "rescan":
                self.rescans += 1
        if len(self.created) != before:
            self.last_new_ns = now
            self.done = len(self.created) >= self.expect

    def result(self) -> dict[str, object]:
        return {
            "events": self.events,
            "created": len(self.created),
            "last_new_ns": self.last_new_ns,
            "rescans": self.rescans,
        }


class TreeMirror(Collector):
    """Rebuilds path -> is_dir from the events, as a consumer of that tool would."""

    def __init__(self, tool: str, root: str) -> None:
        super().__init__()
        self.root = root
        self.rescans = 0
        self.crosswatch = _crosswatch_mirror(root) if is_crosswatch(tool) else None
        self.entries: dict[str, bool] = snapshot(root)
        # For counting renames by identity (see renames.py): the inodes before the
        # storm, then [arrival, kind, path, src, inode] per created/deleted/moved.
        self.initial = {p: _inode(p) for p in self.entries}
        self.log: list[tuple[int, str, str, str | None, int | None]] = []

    def take(self, now: int, events: list[Ev]) -> None:
        for e in events:
            if e.kind in ("created", "moved"):
                self.log.append((now, e.kind, e.path, e.src, _inode(e.path)))
            elif e.kind == "deleted":
                self.log.append((now, e.kind, e.path, None, None))
            elif e.kind == "rescan":
                self.rescans += 1
        if self.crosswatch is not None:
            self.crosswatch.apply(e.raw for e in events)
        else:
            for e in events:
                self._apply(e)

    def _apply(self, e: Ev) -> None:
        """watchdog: a move moves the subtree; watchfiles: only added and deleted exist."""
        if e.kind == "created":
            # watchfiles does not say what was added: its consumer has to look.
            self.entries[e.path] = os.path.isdir(e.path) if e.is_dir is None else e.is_dir
        elif e.kind == "deleted":
            self._drop(e.path)
        elif e.kind == "moved" and e.src is not None:
            moving = self._below(e.src, inclusive=True)
            self._drop(e.path)
            if not moving:  # an unknown source: all a consumer can do is add the target
                self.entries[e.path] = bool(e.is_dir)
            for p in moving:
                self.entries[e.path + p[len(e.src) :]] = self.entries.pop(p)

    def _below(self, path: str, *, inclusive: bool) -> list[str]:
        prefix = path + os.sep
        found = [p for p in self.entries if p.startswith(prefix)]
        return [path, *found] if inclusive and path in self.entries else found

    def _drop(self, path: str) -> None:
        for p in self._below(path, inclusive=True):
            del self.entries[p]

    def result(self) -> dict[str, object]:
        mirror = self.crosswatch.entries if self.crosswatch is not None else self.entries
        disk = snapshot(self.root)
        missing = sorted(set(disk) - set(mirror))
        extra = sorted(set(mirror) - set(disk))
        wrong = sorted(p for p in set(disk) & set(mirror) if disk[p] != mirror[p])
        return {
            "events": self.events,
            "entries": len(disk),
            "converged": not (missing or extra or wrong),
            "missing": len(missing),
            "extra": len(extra),
            "wrong_kind": len(wrong),
            "examples": [os.path.relpath(p, self.root) for p in (missing + extra + wrong)[:5]],
            "initial": self.initial,
            "log": self.log,
            "rescans": self.rescans,
        }


def _crosswatch_mirror(root: str) -> Any:
    """crosswatch's own mirror (its testing kit), applying its events as they come."""
    from crosswatch.testing import Mirror

    return Mirror.of(root, strict=False)


def snapshot(root: str) -> dict[str, bool]:
    """Every entry below ``root``: path -> is_dir, symlinks not followed."""
    out: dict[str, bool] = {}
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                is_dir = entry.is_dir(follow_symlinks=False)
                out[entry.path] = is_dir
                if is_dir:
                    stack.append(entry.path)
    return out


def _inode(path: str) -> int | None:
    """What ``path`` holds now; None if it is gone already."""
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wakeups(exclude: int) -> int:
    """Context switches of every thread of this process but ``exclude`` (native id)."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == exclude:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def consume_in_background(tool: Tool) -> threading.Thread:
    thread = threading.Thread(target=tool.run, name="consumer", daemon=True)
    thread.start()
    return thread


def finish(tool: Tool, thread: threading.Thread) -> str | None:
    """Stop the tool; an error while stopping (after the measurement) is returned."""
    try:
        tool.stop()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        thread.join(timeout=30)
    return None


def drain(collector: Collector, quiet: float, longest: float) -> None:
    """Until ``quiet`` s passed without an event, the collector is done, or ``longest`` s."""
    start = time.time_ns()
    while not collector.done:
        now = time.time_ns()
        if (now - max(start, collector.last_ns)) / 1e9 >= quiet or (now - start) / 1e9 > longest:
            return
        time.sleep(0.01)


def startup(args: argparse.Namespace) -> None:
    """Time to ready, then one file created in the deepest-listed directory must be seen."""
    probe_path = os.path.join(args.probe_dir, f"probe-{os.getpid()}")
    collector = Probe(probe_path)
    tool = make(args.tool, args.root, rust_timeout=1)
    rss = rss_kib()
    began = time.perf_counter()
    tool.start(collector.on_batch)
    seconds = time.perf_counter() - began
    rss_added = rss_kib() - rss
    thread = consume_in_background(tool)
    try:
        written = time.time_ns()
        with open(probe_path, "w"):
            pass
        drain(collector, quiet=5.0, longest=5.0)
    finally:
        finish(tool, thread)
        os.unlink(probe_path)
    seen = collector.seen_ns
    emit(result={
        "seconds": seconds,
        "rss_kib": rss_added,
        "probe_seen": seen is not None,
        "probe_ms": None if seen is None else (seen - written) / 1e6,
    })


def idle(args: argparse.Namespace) -> None:
    """CPU time and thread wake-ups of the whole process while nothing changes."""
    collector = Collector()
    # watchfiles: its default timeout, so that idle costs what it costs its users
    tool = make(args.tool, args.root, rust_timeout=5000)
    tool.start(collector.on_batch)
    thread = consume_in_background(tool)
    me = threading.get_native_id()
    try:
        time.sleep(1.0)
        cpu, woke = time.process_time(), wakeups(me)
        time.sleep(args.seconds)
        cpu, woke = time.process_time() - cpu, wakeups(me) - woke
    finally:
        finish(tool, thread)
    emit(result={"cpu_ms": cpu * 1000, "wakeups": woke, "seconds": args.seconds,
                 "events": collector.events})


def interactive(args: argparse.Namespace, collector: Collector) -> None:
    """Ready, then consume until told to drain, then report."""
    tool = make(args.tool, args.root)
    tool.start(collector.on_batch)
    thread = consume_in_background(tool)
    try:
        emit(ready=True, settings=tool.settings)
        command = sys.stdin.readline().split()
        if command[:1] == ["drain"]:
            drain(collector, quiet=float(command[1]), longest=float(command[2]))
    finally:
        stop_error = finish(tool, thread)
    if stop_error is not None:
        stop_error = stop_error.replace(args.root, "<root>")
    emit(result={**collector.result(), "stop_error": stop_error})


def versions(args: argparse.Namespace) -> None:
    """The versions installed, and where this process's crosswatch came from.

    For a crosswatch column, the files its core and its inotify plugin were imported
    from once a watcher has loaded the plugin, so that the orchestrator can check that
    a baseline revision is the code measured.
    """
    from importlib import metadata

    found: dict[str, str | None] = {}
    for dist in ("crosswatch", "crosswatch-inotify", "watchdog", "watchfiles"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    if is_crosswatch(args.tool):
        import crosswatch

        with crosswatch.Watcher(args.root, backend="inotify"):
            pass
        plugin = sys.modules.get("crosswatch_inotify")
        found["crosswatch"] = crosswatch.__version__
        found["core_file"] = crosswatch.__file__
        found["plugin_file"] = getattr(plugin, "__file__", None)
    emit(result=found)


SCENARIOS: dict[str, Callable[[argparse.Namespace], None]] = {
    "startup": startup,
    "idle": idle,
    "latency": lambda a: interactive(a, Arrivals(a.target)),
    "burst": lambda a: interactive(a, Creations(a.target, a.expect)),
    "storm": lambda a: interactive(a, TreeMirror(a.tool, a.root)),
    "versions": versions,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tool")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("root", nargs="?", default=".")
    parser.add_argument("--target", help="latency: the file written; burst: the directory")
    parser.add_argument("--expect", type=int, default=0, help="burst: files to be created")
    parser.add_argument("--probe-dir", help="startup: where the probe file is created")
    parser.add_argument("--seconds", type=float, default=5.0, help="idle: the window")
    args: Any = parser.parse_args(argv)
    SCENARIOS[args.scenario](args)


if __name__ == "__main__":
    main()

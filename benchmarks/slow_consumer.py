"""Slow consumers: how soon does each tool's consumer learn of every file, in how much memory?

    python benchmarks/slow_consumer.py [--files 200000] [--page docs/benchmarks.md]
    python benchmarks/slow_consumer.py --only spread --tools crosswatch,watchdog

A writer process creates ``--files`` empty files on tmpfs while a consumer, in another
process, watches the tree and sleeps after every batch it is handed. Two runs:

- ``spread``: the files go into ``--dirs`` directories, paced evenly over
  ``--seconds``; the consumer sleeps ``--per-batch`` seconds after each batch.
- ``rescan``: the files go into one directory as fast as the writer can make them,
  so a consumer that falls behind lets the kernel's queue overflow, and a rescan
  of 200,000 new entries has to reach it; it sleeps ``--rescan-per-batch`` seconds.

Each configuration runs in a fresh consumer process: crosswatch (inotify backend)
with the settings named, watchdog (``Observer``, its batch is every event its
handler got since the last one), and watchfiles with its defaults (a batch is what
its generator yields). Reported per configuration: files known (reported created)
when the writer ended, how long after that the consumer knew them all (or how many
it knew when the run gave up, ``--limit`` seconds later), the largest batch, the
rescans said, crosswatch's peak backlog against its bounds, and the process's RSS
before the writer and at its peak (``VmHWM``: everything the process held,
including the consumer's own set of the paths it knows).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from report import put_section

HERE = Path(__file__).resolve().parent
MIB = 2**20

#: Per run: column name -> (tool, crosswatch Watcher keywords).
RUNS: dict[str, dict[str, tuple[str, dict[str, int]]]] = {
    "spread": {
        "crosswatch defaults": ("crosswatch", {}),
        "crosswatch tight": ("crosswatch", {"max_batch": 5_000, "max_queue_bytes": 4 * MIB}),
        "watchdog": ("watchdog", {}),
        "watchfiles": ("watchfiles", {}),
    },
    "rescan": {
        "crosswatch max_queue=1000": ("crosswatch", {"max_queue": 1_000}),
        "crosswatch defaults": ("crosswatch", {}),
        "watchdog": ("watchdog", {}),
        "watchfiles": ("watchfiles", {}),
    },
}
TITLES = {
    "spread": "Slow consumer",
    "rescan": "Slow consumer after an overflow: a rescan's catch-up",
}


# ------------------------------------------------------------------- writer


def writer(root: str, files: int, dirs: int, seconds: float) -> dict[str, int]:
    """Create ``files`` empty files in ``dirs`` directories, evenly over ``seconds``
    (0: as fast as it can)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    per_dir = -(-files // dirs)
    start_ns = time.time_ns()
    start = time.monotonic()
    for i in range(files):
        d, f = divmod(i, per_dir)
        path = os.path.join(root, f"d{d:04d}")
        if f == 0:
            os.mkdir(path)
        if seconds and i % 100 == 0:
            ahead = start + i * seconds / files - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        os.close(os.open(os.path.join(path, f"f{f:06d}"), flags, 0o644))
    return {"start": start_ns, "end": time.time_ns()}


# ----------------------------------------------------------------- consumers

#: A batch: (paths of files reported created, rescans said, events).
Batch = tuple[list[str], int, int]


def status(field: str) -> int:
    """A ``/proc/self/status`` value in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _is_file(path: str) -> bool:
    return os.path.basename(path).startswith("f")  # the writer's files; its dirs are d…


class Crosswatch:
    def __init__(self, root: str, options: dict[str, int]) -> None:
        from crosswatch import Change, Watcher

        self._created, self._rescan = Change.CREATED, Change.RESCAN
        self.w = Watcher(root, backend="inotify", **options).start()

    def batches(self) -> Iterator[Batch | None]:
        while True:
            batch = self.w.get(timeout=0.2)
            if batch is None:
                return
            if not batch:
                yield None
                continue
            created = [e.path for e in batch if e.kind is self._created and not e.is_dir]
            yield created, sum(e.kind is self._rescan for e in batch), len(batch)

    def extra(self) -> dict[str, Any]:
        w = self.w
        backlog = w.backlog
        return {"bounds": {"max_batch": w.max_batch, "max_queue": w.max_queue,
                           "max_queue_bytes": w.max_queue_bytes},
                "peak_events": backlog.peak_events, "peak_bytes": backlog.peak_bytes}

    def close(self) -> None:
        self.w.close()


class Watchdog:
    """Its handler runs on the observer's thread; a batch is what it got meanwhile."""

    def __init__(self, root: str, options: dict[str, int]) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        got: queue.SimpleQueue[tuple[str, str, bool]] = queue.SimpleQueue()

        class Handler(FileSystemEventHandler):
            def dispatch(self, event: FileSystemEvent) -> None:
                got.put((event.event_type, os.fsdecode(event.src_path), event.is_directory))

        self._got = got
        self._observer = Observer()
        self._observer.schedule(Handler(), root, recursive=True)
        self._observer.start()

    def batches(self) -> Iterator[Batch | None]:
        got = self._got
        while True:
            try:
                events = [got.get(timeout=0.2)]
            except queue.Empty:
                yield None
                continue
            while True:
                try:
                    events.append(got.get_nowait())
                except queue.Empty:
                    break
            created = [p for kind, p, is_dir in events if kind == "created" and not is_dir]
            yield created, 0, len(events)

    def extra(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=10)


class Watchfiles:
    """Its defaults; a batch is what its generator yields."""

    def __init__(self, root: str, options: dict[str, int]) -> None:
        import watchfiles

        self._added = watchfiles.Change.added
        self._stop = threading.Event()
        self._gen = watchfiles.watch(root, watch_filter=None, yield_on_timeout=True,
                                     rust_timeout=200, stop_event=self._stop,
                                     raise_interrupt=False)
        next(self._gen)  # watching once anything comes out

    def batches(self) -> Iterator[Batch | None]:
        for changes in self._gen:
            if not changes:
                yield None
                continue
            created = [p for c, p in changes if c == self._added and _is_file(p)]
            yield created, 0, len(changes)

    def extra(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self._stop.set()


TOOLS: dict[str, Callable[[str, dict[str, int]], Any]] = {
    "crosswatch": Crosswatch, "watchdog": Watchdog, "watchfiles": Watchfiles,
}


def consume(root: str, tool: str, options: dict[str, int], files: int, dirs: int,
            seconds: float, per_batch: float, limit: float) -> dict[str, Any]:
    consumer = TOOLS[tool](root, options)
    rss_start = status("VmRSS")
    proc = subprocess.Popen(
        [sys.executable, __file__, "writer", root, str(files), str(dirs), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    known: set[str] = set()
    timeline: list[tuple[int, int]] = []  # (when a batch was handed over, files known)
    largest = rescans = events = 0
    written: dict[str, int] | None = None
    try:
        for batch in consumer.batches():
            if written is None and proc.poll() is not None:
                assert proc.stdout is not None
                written = json.loads(proc.stdout.read())
            if written is not None and time.time_ns() > written["end"] + limit * 1e9:
                break
            if batch is None:
                continue
            created, said, n = batch
            known.update(created)
            rescans += said
            events += n
            largest = max(largest, n)
            timeline.append((time.time_ns(), len(known)))
            if len(known) >= files:
                break
            time.sleep(per_batch)
        extra = consumer.extra()
    finally:
        consumer.close()
        proc.wait()
    if written is None:
        assert proc.stdout is not None
        written = json.loads(proc.stdout.read())
    at_end = max((n for t, n in timeline if t <= written["end"]), default=0)
    all_at = timeline[-1][0] if timeline and timeline[-1][1] == files else None
    return {
        "tool": tool, "per_batch": per_batch, **extra,
        "writer_s": (written["end"] - written["start"]) / 1e9,
        "known_at_end": at_end, "known": len(known),
        "all_after_s": None if all_at is None else (all_at - written["end"]) / 1e9,
        "batches": len(timeline), "largest": largest, "events": events, "rescans": rescans,
        "rss_start": rss_start, "rss_peak": status("VmHWM"),
    }


# ------------------------------------------------------------------- report


def mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def _describe(run: str, args: argparse.Namespace) -> list[str]:
    if run == "spread":
        how = (f"creates {args.files:,} empty files in {args.dirs} directories, evenly over "
               f"{args.seconds:g} s; the consumer sleeps {args.per_batch:g} s after every batch.")
    else:
        how = (f"creates {args.files:,} empty files in one directory as fast as it can; the "
               f"consumer sleeps {args.rescan_per_batch:g} s after every batch, so that the "
               "kernel's queue overflows while it is away.")
    return [
        f"A writer process {how}",
        "On tmpfs, each configuration in a fresh consumer process; measured by",
        f"`python benchmarks/slow_consumer.py --only {run}`, generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "crosswatch uses its inotify backend; watchdog's batch is every event its handler",
        "got since the last batch; watchfiles runs with its defaults and a batch is what",
        "its generator yields. Peak RSS is the whole consumer process, including its own",
        "set of the paths it knows.",
    ]


def markdown(run: str, results: dict[str, dict[str, Any]], args: argparse.Namespace,
             level: str) -> list[str]:
    lines = [f"{level} {TITLES[run]}", "", *_describe(run, args), "",
             "| | " + " | ".join(f"`{name}`" for name in results) + " |",
             "| --- |" + " --- |" * len(results)]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results.values()) + " |")

    def bound(r: dict[str, Any], peak: str, key: str, fmt: Callable[[int], str]) -> str:
        if "bounds" not in r:
            return "no bound"
        return f"{fmt(r[peak])} ({fmt(r['bounds'][key])})"

    row("writer took", lambda r: f"{r['writer_s']:.1f} s")
    row("files known at the writer's end", lambda r: f"{r['known_at_end']:,}")
    row(f"all {args.files:,} known after the writer's end", lambda r: (
        f"{r['all_after_s']:.1f} s" if r["all_after_s"] is not None
        else f"never: {r['known']:,} after {args.limit:g} s"))
    row("batches; largest", lambda r: f"{r['batches']:,}; {r['largest']:,} events")
    row("rescans said", lambda r: str(r["rescans"]) if r["tool"] == "crosswatch" else "none")
    row("peak queued: events (bound)",
        lambda r: bound(r, "peak_events", "max_queue", lambda n: f"{n:,}"))
    row("peak queued: bytes (bound)",
        lambda r: bound(r, "peak_bytes", "max_queue_bytes", mib))
    row("RSS before the writer; peak", lambda r: f"{mib(r['rss_start'])}; {mib(r['rss_peak'])}")
    lines.append("")
    for name, r in results.items():
        if "bounds" not in r:
            continue
        bounds = r["bounds"]
        past = [f"{r['peak_events'] - bounds['max_queue']:,} events"
                if r["peak_events"] > bounds["max_queue"] else "",
                f"{r['peak_bytes'] - bounds['max_queue_bytes']:,} bytes"
                if r["peak_bytes"] > bounds["max_queue_bytes"] else ""]
        if any(past):
            lines += [f"In `{name}` the queue went past its bound by "
                      f"{' and '.join(p for p in past if p)}: the engine stops between two",
                      "pieces of its work (an observation, or an entry of a listing or a",
                      "rescan) once the bound is reached; see",
                      "[Slow consumers](getting-started.md#slow-consumers).", ""]
    return lines


def main() -> int:
    if sys.argv[1:2] == ["writer"]:
        root, files, dirs, seconds = sys.argv[2:6]
        print(json.dumps(writer(root, int(files), int(dirs), float(seconds))))
        return 0
    if sys.argv[1:2] == ["consume"]:
        print(json.dumps(consume(**json.loads(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-batch", type=float, default=1.0)
    parser.add_argument("--rescan-per-batch", type=float, default=0.1)
    parser.add_argument("--limit", type=float, default=60.0,
                        help="give up this many seconds after the writer's end")
    parser.add_argument("--only", help=f"one run of: {', '.join(RUNS)}")
    parser.add_argument("--tools", help="comma-separated columns to run (default: all)")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--page", type=Path, help="write the sections into this page")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), str(HERE.parent / "backends" / "crosswatch-inotify"),
         os.environ.get("PYTHONPATH", "")])}
    runs = [args.only] if args.only else list(RUNS)
    lines = ["## Slow consumers", ""]
    for run in runs:
        columns = RUNS[run]
        if args.tools:
            columns = {k: v for k, v in columns.items() if k in args.tools.split(",")}
        results: dict[str, dict[str, Any]] = {}
        for name, (tool, options) in columns.items():
            tmp = tempfile.mkdtemp(prefix="cw-slow-", dir=args.dir)
            try:
                spec = {"root": tmp, "tool": tool, "options": options, "files": args.files,
                        "dirs": args.dirs if run == "spread" else 1,
                        "seconds": args.seconds if run == "spread" else 0.0,
                        "per_batch": args.per_batch if run == "spread" else args.rescan_per_batch,
                        "limit": args.limit}
                print(f"{run} / {name}: running", file=sys.stderr)
                out = subprocess.run([sys.executable, __file__, "consume", json.dumps(spec)],
                                     capture_output=True, text=True, env=env, check=True)
                results[name] = json.loads(out.stdout.splitlines()[-1])
                print(f"{run} / {name}: {results[name]}", file=sys.stderr)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        lines += markdown(run, results, args, "###")
    print("\n".join(lines))
    if args.page is not None and not args.tools and not args.only:
        put_section(args.page, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

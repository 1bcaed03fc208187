"""A slow consumer: does it learn of every file soon, within the documented memory bound?

    python benchmarks/slow_consumer.py [--files 200000] [--seconds 20] [--page docs/benchmarks.md]

A writer process creates ``--files`` empty files in a tree of ``--dirs`` directories,
paced over ``--seconds``, on tmpfs. The consumer, in another process, watches the tree
with crosswatch's inotify backend and sleeps ``--per-batch`` seconds after every batch
``get()`` hands it. Each configuration runs in a fresh consumer process:

- ``defaults``: the watcher's defaults (``max_batch``, ``max_queue``, ``max_queue_bytes``);
- ``tight``: a small byte bound and a smaller ``max_batch``, so the consumer falls
  behind and reading pauses;
- ``keeping up``: the defaults and a consumer that does not sleep, for scale: what
  the process holds when nothing waits (the watcher's tree cache, the consumer's set).

Reported per configuration: files known to the consumer (reported ``created``) when
the writer ended, how long after the writer's end it knew them all, the largest batch,
the rescans, the peak of ``Watcher.backlog`` (events and estimated bytes) against the
bounds, and the consumer process's RSS before the writer started and at its peak
(``VmHWM``; it includes the watcher's tree cache of every file and the consumer's set
of the paths it knows). The markdown goes to
stdout, and with ``--page`` into that page's slow-consumer section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import put_section

HERE = Path(__file__).resolve().parent
MIB = 2**20
#: Watcher keywords of each configuration; "keeping up" does not sleep, for scale.
CONFIGS: dict[str, dict[str, int]] = {
    "defaults": {},
    "tight": {"max_batch": 5_000, "max_queue_bytes": 4 * MIB},
    "keeping up": {},
}
NO_SLEEP = {"keeping up"}


# ------------------------------------------------------------------- writer


def writer(root: str, files: int, dirs: int, seconds: float) -> dict[str, int]:
    """Create ``files`` empty files in ``dirs`` directories, evenly over ``seconds``."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    per_dir = -(-files // dirs)
    rate = files / seconds
    start_ns = time.time_ns()
    start = time.monotonic()
    for i in range(files):
        d, f = divmod(i, per_dir)
        path = os.path.join(root, f"d{d:04d}")
        if f == 0:
            os.mkdir(path)
        if i % 100 == 0:
            ahead = start + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        os.close(os.open(os.path.join(path, f"f{f:05d}"), flags, 0o644))
    return {"start": start_ns, "end": time.time_ns()}


# ----------------------------------------------------------------- consumer


def status(field: str) -> int:
    """A ``/proc/self/status`` value in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def consume(root: str, files: int, dirs: int, seconds: float, per_batch: float,
            limit: float, options: dict[str, int]) -> dict[str, Any]:
    from crosswatch import Change, Watcher

    w = Watcher(root, backend="inotify", **options).start()
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
        while len(known) < files:
            if written is None and proc.poll() is not None:
                assert proc.stdout is not None
                written = json.loads(proc.stdout.read())
            if written is not None and time.time_ns() > written["end"] + limit * 1e9:
                break
            batch = w.get(timeout=0.2)
            if batch is None:
                break
            if not batch:
                continue
            now = time.time_ns()
            for e in batch:
                if e.kind is Change.CREATED and not e.is_dir:
                    known.add(e.path)
                elif e.kind is Change.RESCAN:
                    rescans += 1
            events += len(batch)
            largest = max(largest, len(batch))
            timeline.append((now, len(known)))
            time.sleep(per_batch)
        backlog = w.backlog
    finally:
        w.close()
        proc.wait()
    if written is None:
        assert proc.stdout is not None
        written = json.loads(proc.stdout.read())
    at_end = max((n for t, n in timeline if t <= written["end"]), default=0)
    all_at = timeline[-1][0] if timeline and timeline[-1][1] == files else None
    return {
        "options": options,
        "per_batch": per_batch,
        "bounds": {"max_batch": w.max_batch, "max_queue": w.max_queue,
                   "max_queue_bytes": w.max_queue_bytes},
        "writer_s": (written["end"] - written["start"]) / 1e9,
        "known_at_end": at_end,
        "known": len(known),
        "all_after_s": None if all_at is None else (all_at - written["end"]) / 1e9,
        "batches": len(timeline),
        "largest": largest,
        "events": events,
        "rescans": rescans,
        "peak_events": backlog.peak_events,
        "peak_bytes": backlog.peak_bytes,
        "rss_start": rss_start,
        "rss_peak": status("VmHWM"),
    }


# ------------------------------------------------------------------- report


def mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        "## Slow consumer",
        "",
        f"A writer process creates {args.files:,} empty files in {args.dirs} directories,",
        f"evenly over {args.seconds:g} s, on tmpfs; the consumer (another process) watches",
        "with the inotify backend and sleeps "
        f"{args.per_batch:g} s after every batch `get()` hands it. Measured by",
        "`python benchmarks/slow_consumer.py` (each configuration in a fresh process);"
        f" generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "Peak RSS includes the watcher's tree cache of every file and the consumer's set",
        "of the paths it knows: `keeping up`, a consumer that does not sleep, shows what",
        "that takes. The bounds are on the events waiting in the queue (bytes estimated",
        "as documented for `max_queue_bytes`).",
        "",
        "| | " + " | ".join(f"`{name}`" for name in results) + " |",
        "| --- |" + " --- |" * len(results),
    ]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in results.values()) + " |")

    row("settings", lambda r: ", ".join(f"{k}={v:,}" for k, v in r["bounds"].items()))
    row("writer took", lambda r: f"{r['writer_s']:.1f} s")
    row("files known at the writer's end", lambda r: f"{r['known_at_end']:,}")
    row(f"all {args.files:,} known after the writer's end",
        lambda r: "never" if r["all_after_s"] is None else f"{r['all_after_s']:.1f} s")
    row("batches; largest", lambda r: f"{r['batches']:,}; {r['largest']:,} events")
    row("rescans", lambda r: str(r["rescans"]))
    row("peak queued: events (bound)",
        lambda r: f"{r['peak_events']:,} ({r['bounds']['max_queue']:,})")
    row("peak queued: bytes (bound)",
        lambda r: f"{mib(r['peak_bytes'])} ({mib(r['bounds']['max_queue_bytes'])})")
    row("RSS before the writer; peak", lambda r: f"{mib(r['rss_start'])}; {mib(r['rss_peak'])}")
    row("consumer sleeps per batch", lambda r: f"{r['per_batch']:g} s")
    lines.append("")
    for name, r in results.items():
        bounds = r["bounds"]
        over = max(r["peak_events"] / bounds["max_queue"],
                   r["peak_bytes"] / bounds["max_queue_bytes"])
        if over > 1:
            lines += [
                f"In `{name}` the queue went past its bound by {over - 1:.0%}: the engine",
                "stops between two pieces of its work once the bound is reached, so it",
                "can pass it by one piece (a read, a new directory's listing, or a",
                "rescan; see [Slow consumers](getting-started.md#slow-consumers)).",
                "",
            ]
    return lines


def main() -> int:
    if sys.argv[1:2] == ["writer"]:
        root, files, dirs, seconds = sys.argv[2:6]
        print(json.dumps(writer(root, int(files), int(dirs), float(seconds))))
        return 0
    if sys.argv[1:2] == ["consume"]:
        spec = json.loads(sys.argv[2])
        print(json.dumps(consume(**spec)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-batch", type=float, default=1.0)
    parser.add_argument("--limit", type=float, default=60.0,
                        help="give up this many seconds after the writer's end")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--page", type=Path, help="write the section into this page")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CONFIGS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), str(HERE.parent / "backends" / "crosswatch-inotify"),
         os.environ.get("PYTHONPATH", "")])}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        tmp = tempfile.mkdtemp(prefix="cw-slow-", dir=args.dir)
        try:
            spec = {"root": tmp, "files": args.files, "dirs": args.dirs,
                    "seconds": args.seconds,
                    "per_batch": 0.0 if name in NO_SLEEP else args.per_batch,
                    "limit": args.limit, "options": CONFIGS[name]}
            print(f"{name}: running", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "consume", json.dumps(spec)],
                                 capture_output=True, text=True, env=env, check=True)
            results[name] = json.loads(out.stdout)
            print(f"{name}: {results[name]}", file=sys.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    lines = markdown(results, args)
    print("\n".join(lines))
    if args.page is not None:
        put_section(args.page, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())

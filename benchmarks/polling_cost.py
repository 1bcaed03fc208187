"""Cost of one polling tick per entry, against a bare lstat walk of the same tree.

    python benchmarks/polling_cost.py [--dirs 200] [--files 100] [--dir /dev/shm]
    python benchmarks/polling_cost.py --baseline REV     # this checkout against REV

Prints a markdown table: a tick over an unchanged tree (one lstat per entry, no
listing), a tick after every directory changed (listing again), and a plain
``os.lstat`` of every entry for scale. With ``--baseline``, revision REV is exported
from git and measured on the same tree in the same run, alternating with this
checkout, and the table gives both and the ratio.

Each measurement runs in a process of its own, importing the crosswatch it measures
(see ``revisions.py``). There a ``Watcher`` polls the tree through a subclass of the
polling backend that notes when a tick's observation leaves ``read()`` and when the
watcher next asks for its deadline, which it does once the tick has been applied:
only the public ``Watcher`` and the backend contract are used, so any revision runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from revisions import Checkout, RevisionError, baseline, current

HERE = Path(__file__).resolve().parent
#: The watcher is asked to poll this often (s); a tick of the default tree takes less.
INTERVAL = 0.25


def build(root: str, dirs: int, files: int) -> int:
    for d in range(dirs):
        path = os.path.join(root, f"d{d}")
        os.mkdir(path)
        for f in range(files):
            with open(os.path.join(path, f"f{f}"), "w") as fh:
                fh.write("x")
    return dirs * (files + 1)


def lstat_all(root: str) -> None:
    for d in os.listdir(root):
        path = os.path.join(root, d)
        os.lstat(path)
        for f in os.listdir(path):
            os.lstat(os.path.join(path, f))


# ------------------------------------------------------------ in the child


def _polling_class() -> type:
    """The polling backend of the crosswatch imported, by its registered name."""
    import crosswatch

    try:  # where plugin authors' names live once they leave the top level
        namespace: Any = importlib.import_module("crosswatch.backend")
    except ImportError:
        namespace = None
    plugins = getattr(namespace, "Plugins", None) or getattr(crosswatch, "Plugins", None)
    if plugins is not None:
        try:
            cls: type = plugins(autoload=False).backends["polling"]
            return cls
        except (KeyError, TypeError):
            pass
    from crosswatch._polling import PollingBackend  # older layouts

    return PollingBackend


def measure_here(root: str, ticks: int) -> dict[str, Any]:
    """Tick times (s) of this process's crosswatch on ``root``: unchanged, then touched."""
    import crosswatch

    base = _polling_class()
    ended = threading.Event()
    times: list[float] = []

    class Timed(base):  # type: ignore[valid-type, misc]
        """The polling backend, timing from its tick's observation to the next deadline."""

        _began: float | None = None

        def read(self) -> Sequence[Any]:
            observations = super().read()
            if observations:
                self._began = time.perf_counter()
            return observations  # type: ignore[no-any-return]

        def deadline(self) -> float | None:
            if self._began is not None:  # asked once the tick was applied
                times.append(time.perf_counter() - self._began)
                self._began = None
                ended.set()
            return super().deadline()  # type: ignore[no-any-return]

    dirs = [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    events = {"quiet": 0, "touched": 0}

    def tick(phase: str, before: Callable[[], None] | None = None) -> float:
        ended.clear()
        if before is not None:
            before()
        if not ended.wait(timeout=60):
            raise RuntimeError("no polling tick in 60 s")
        while batch := watcher.get(timeout=0):
            events[phase] += len(batch)
        return times[-1]

    def touch() -> None:  # every directory's mtime moves: all are listed again
        for path in dirs:
            os.utime(path, ns=(0, time.time_ns() - 5_000_000_000))

    with crosswatch.Watcher(root, backend=Timed, poll_interval=INTERVAL) as watcher:
        tick("quiet")  # the first tick warms the caches; not counted
        quiet = [tick("quiet") for _ in range(ticks)]
        touched = [tick("touched", touch) for _ in range(ticks)]
    lstat = []
    for _ in range(ticks):
        began = time.perf_counter()
        lstat_all(root)
        lstat.append(time.perf_counter() - began)
    return {"quiet_s": quiet, "touched_s": touched, "lstat_s": lstat,
            "quiet_events": events["quiet"], "core_file": crosswatch.__file__}


# ------------------------------------------------------------ the parent


def run_child(checkout: Checkout, root: str, ticks: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE / "polling_cost.py"), "--child", root, "--ticks", str(ticks)],
        capture_output=True, text=True, env=checkout.env(), timeout=600, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the polling measurement of {checkout.tool} failed:\n"
                           + done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout)
    checkout.check(result["core_file"])
    return result


def measure(root: str, checkouts: Sequence[Checkout], runs: int, ticks: int,
            log: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Every checkout ``runs`` times on ``root``, taking turns, the order swapped each run.

    Returns, per tool, the tick times of all runs together, their medians and their
    minimums (the fastest tick, which other work on the machine can only slow down),
    and the same per run.
    """
    out: dict[str, Any] = {c.tool: {"quiet_s": [], "touched_s": [], "lstat_s": [],
                                    "run_medians": [], "run_best": [], "quiet_events": 0}
                           for c in checkouts}
    for i in range(runs):
        order = list(checkouts) if i % 2 == 0 else list(reversed(checkouts))
        for checkout in order:
            got = run_child(checkout, root, ticks)
            d = out[checkout.tool]
            for key in ("quiet_s", "touched_s", "lstat_s"):
                d[key] += got[key]
            d["quiet_events"] += got["quiet_events"]
            d["run_medians"].append({k: statistics.median(got[k])
                                     for k in ("quiet_s", "touched_s", "lstat_s")})
            d["run_best"].append({k: min(got[k]) for k in ("quiet_s", "touched_s", "lstat_s")})
            log(f"  polling {checkout.tool} run {i + 1}: "
                f"{statistics.median(got['quiet_s']) * 1000:.1f} ms per quiet tick")
    for d in out.values():
        for key in ("quiet_s", "touched_s", "lstat_s"):
            d[key.replace("_s", "_median_s")] = statistics.median(d[key])
            d[key.replace("_s", "_best_s")] = min(d[key])
    return out


def table(results: dict[str, Any], entries: int, where: str) -> list[str]:
    tools = list(results)
    rows = [("polling tick, nothing changed", "quiet_median_s"),
            ("polling tick, every directory re-listed", "touched_median_s"),
            ("bare lstat of every entry (for scale)", "lstat_median_s")]
    head = f"| {entries:,} entries on {where} |"
    for tool in tools:
        head += f" {tool} per tick | per entry |"
    if len(tools) == 2:
        head += f" {tools[0]} / {tools[1]} |"
    lines = [head, "| --- |" + " --- |" * (head.count("|") - 2)]
    for name, key in rows:
        line = f"| {name} |"
        for tool in tools:
            seconds = results[tool][key]
            line += f" {seconds * 1000:.1f} ms | {seconds / entries * 1e6:.2f} µs |"
        if len(tools) == 2:
            line += f" {results[tools[0]][key] / results[tools[1]][key]:.2f} |"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure git revision REV, e.g. main~5, in the same run")
    parser.add_argument("--runs", type=int, default=None,
                        help="processes per crosswatch (default: 1, or 3 with --baseline)")
    parser.add_argument("--ticks", type=int, default=7, help="ticks timed per process")
    parser.add_argument("--child", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.child, args.ticks)))
        return
    if args.runs is None:
        args.runs = 1 if args.baseline is None else 3
    try:
        report(args)
    except RevisionError as exc:
        sys.exit(str(exc))


def report(args: argparse.Namespace) -> None:
    """Measure as asked and print the table."""
    here = current()
    here.compile()
    with baseline(args.baseline) as old, tempfile.TemporaryDirectory(dir=args.dir) as root:
        checkouts = [here] if old is None else [here, old]
        if old is not None:
            old.compile()
        entries = build(root, args.dirs, args.files)
        time.sleep(1.1)  # past the racy window, so unchanged directories are not re-listed
        results = measure(root, checkouts, args.runs, args.ticks,
                          log=lambda m: print(m, file=sys.stderr, flush=True))
    for line in table(results, entries, args.dir or "the default temp dir"):
        print(line)
    if old is not None:
        print(f"\n{old.tool} is commit {old.commit}; median of {args.runs} x {args.ticks} "
              "ticks each, the two taking turns. Fastest tick, this checkout against it: "
              + ", ".join(f"{name} {results[here.tool][key] * 1000:.1f} against "
                          f"{results[old.tool][key] * 1000:.1f} ms "
                          f"({results[here.tool][key] / results[old.tool][key]:.2f})"
                          for name, key in (("nothing changed", "quiet_best_s"),
                                            ("every directory re-listed", "touched_best_s")))
              + ".")


if __name__ == "__main__":
    main()

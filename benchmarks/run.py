"""crosswatch against watchdog and watchfiles, in one run, on tmpfs.

    python benchmarks/run.py [--quick] [--out docs/benchmarks.md] [--only startup,latency]
    python benchmarks/run.py --baseline REV     # and this checkout against revision REV

Every tool runs in a process of its own and every writer in yet another one, one
after the other, so that no two measurements share a CPU or the GIL. The results
go to a markdown page and a PNG plot next to it (see benchmarks/README.md).

With ``--baseline REV``, REV's crosswatch is exported from git and measured in the
same run as a column of its own, ``crosswatch@REV``, taking turns with this checkout,
and the page compares the two as ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import polling_cost
from renames import count as count_renames
from revisions import Checkout, RevisionError, baseline, current

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONSUMER = str(HERE / "consumer.py")
WRITERS = str(HERE / "writers.py")
#: The tools of each scenario, as columns; watchfiles' defaults only where they matter.
OTHER_TOOLS = ("watchdog", "watchfiles")
SCENARIO_NAMES = ("startup", "latency", "burst", "storm", "idle", "polling")


@dataclass(frozen=True)
class Sizes:
    dirs: int
    files: int
    startup_runs: int
    writes: int
    interval: float
    burst: int
    storm_writers: int
    storm_seconds: float
    storm_rate: float
    storm_seeds: int
    quiet: float
    idle_seconds: float
    #: with a baseline: runs of each crosswatch in latency, burst and idle
    pairs: int
    #: with a baseline: the polling tree, processes per crosswatch, ticks timed in each
    poll_dirs: int
    poll_files: int
    poll_runs: int
    poll_ticks: int


FULL = Sizes(dirs=2000, files=50, startup_runs=11, writes=200, interval=0.02, burst=100_000,
             storm_writers=10, storm_seconds=5.0, storm_rate=1000.0, storm_seeds=3, quiet=2.0,
             idle_seconds=5.0, pairs=4, poll_dirs=200, poll_files=100, poll_runs=3,
             poll_ticks=7)
QUICK = Sizes(dirs=200, files=20, startup_runs=3, writes=50, interval=0.02, burst=10_000,
              storm_writers=4, storm_seconds=2.0, storm_rate=400.0, storm_seeds=2, quiet=1.0,
              idle_seconds=2.0, pairs=2, poll_dirs=100, poll_files=50, poll_runs=2,
              poll_ticks=7)


@dataclass(frozen=True)
class Plan:
    """What one run measures: the sizes, and which crosswatch each column imports."""

    sizes: Sizes
    here: Checkout
    old: Checkout | None = None

    @property
    def pair(self) -> tuple[str, ...]:
        """The crosswatch columns: this checkout, and the baseline if there is one."""
        return (self.here.tool,) if self.old is None else (self.here.tool, self.old.tool)

    def pair_turn(self, i: int) -> tuple[str, ...]:
        """The crosswatch columns in the order of turn ``i``: who goes first alternates."""
        return self.pair if i % 2 == 0 else self.pair[::-1]

    def tools(self, *, defaults: bool = False) -> tuple[str, ...]:
        """The columns of a scenario; watchfiles' defaults only where they matter."""
        return (*self.pair, *OTHER_TOOLS, *(("watchfiles-default",) if defaults else ()))

    def env(self, tool: str) -> dict[str, str]:
        """Children import crosswatch from this checkout, or the baseline's column from it
        (and the other tools from site-packages)."""
        if self.old is not None and tool == self.old.tool:
            return self.old.env()
        return self.here.env()

    def order(self, *, defaults: bool = False) -> list[tuple[int, str]]:
        """(run, tool) in the order measured: every tool once, then, with a baseline, more
        runs of the pair, who goes first alternating, so that drift on the machine touches
        both alike."""
        more = range(1, self.sizes.pairs) if self.old is not None else range(0)
        return [(0, t) for t in self.tools(defaults=defaults)] + [
            (i, t) for i in more for t in self.pair_turn(i)
        ]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Child:
    """A consumer process: JSON lines out, commands in; killed if still alive at the end."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.errors: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, CONSUMER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.errors, text=True, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def message(self, key: str, timeout: float) -> Any:
        """The value of the next message carrying ``key``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no {key!r} from {self.proc.args!r} in {timeout} s") from None
            if line is None:
                self.proc.wait()
                self.errors.seek(0)
                raise RuntimeError(
                    f"{self.proc.args!r} exited with {self.proc.returncode}:\n"
                    + self.errors.read()[-3000:]
                )
            message = json.loads(line)
            if key in message:
                return message[key]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.errors.close()


@contextmanager
def child(plan: Plan, args: list[str]) -> Iterator[Child]:
    """A consumer for tool ``args[0]``, importing the crosswatch the plan gives that column."""
    proc = Child(args, plan.env(args[0]))
    try:
        yield proc
    finally:
        proc.close()


def run_writers(commands: list[list[str]], timeout: float) -> list[dict[str, Any]]:
    """Start writer processes together, wait for all, return their JSON outputs."""
    procs = [
        subprocess.Popen([sys.executable, WRITERS, *c], stdout=subprocess.PIPE, text=True)
        for c in commands
    ]
    try:
        outputs = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise RuntimeError(f"writer {proc.args!r} failed with {proc.returncode}")
            outputs.append(json.loads(out))
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def one_shot(plan: Plan, args: list[str], timeout: float) -> Any:
    with child(plan, args) as proc:
        return proc.message("result", timeout)


def keep(out: dict[str, Any], tool: str, run: int, result: dict[str, Any]) -> None:
    """The first run of a tool fills its column; every run of it is kept in ``repeats``."""
    kept = dict(result)
    if run == 0:
        out[tool] = result
    out[tool].setdefault("repeats", []).append(kept)


# ------------------------------------------------------------------ the trees


def build_tree(root: str, dirs: int, files: int) -> None:
    for d in range(dirs):
        path = os.path.join(root, f"d{d:04d}")
        os.mkdir(path)
        for f in range(files):
            os.close(os.open(os.path.join(path, f"f{f:02d}"), os.O_CREAT | os.O_WRONLY, 0o644))


def seed_tree(root: str) -> None:
    """The starting point of a storm: a few directories with a few files each."""
    for d in range(5):
        path = os.path.join(root, f"n{d}")
        os.mkdir(path)
        for f in range(5):
            with open(os.path.join(path, f"n{f}"), "w") as fh:
                fh.write("x")


# -------------------------------------------------------------- the scenarios


def startup(tree: str, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    probe_dir = os.path.join(tree, f"d{sizes.dirs - 1:04d}")
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in plan.tools()}
    for i in range(sizes.startup_runs):
        # nobody always goes first; the crosswatch pair runs back to back, taking turns
        slots: list[tuple[str, ...]] = [plan.pair_turn(i), *((t,) for t in OTHER_TOOLS)]
        for slot in slots[i % 3 :] + slots[: i % 3]:
            for tool in slot:
                runs[tool].append(one_shot(
                    plan, [tool, "startup", tree, "--probe-dir", probe_dir], timeout=120))
    out: dict[str, Any] = {}
    for tool, results in runs.items():
        out[tool] = {
            "median_s": statistics.median(r["seconds"] for r in results),
            "all_s": [r["seconds"] for r in results],
            "rss_mib": statistics.median(r["rss_kib"] for r in results) / 1024,
            "probes_seen": sum(r["probe_seen"] for r in results),
            "runs": len(results),
        }
        log(f"  startup {tool}: {out[tool]['median_s'] * 1000:.0f} ms median")
    return out


def latency(tree: str, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    target = os.path.join(tree, "latency-target")
    with open(target, "w"):
        pass
    out: dict[str, Any] = {}
    for run, tool in plan.order(defaults=True):
        with child(plan, [tool, "latency", tree, "--target", target]) as proc:
            settings = proc.message("ready", timeout=120)
            (written,) = run_writers(
                [["latency", target, str(sizes.writes), str(sizes.interval)]],
                timeout=sizes.writes * sizes.interval + 60,
            )
            proc.send("drain 1.0 10")
            result = proc.message("result", timeout=60)
        keep(out, tool, run, {"settings": settings,
                              **match_latencies(written["writes"], result["arrivals"])})
        log(f"  latency {tool}: p50 {out[tool]['repeats'][-1]['p50_ms']} ms")
    return out


def match_latencies(writes: list[int], arrivals: list[int]) -> dict[str, Any]:
    """A write counts as delivered by the first event for the file that arrives after it."""
    latencies: list[float] = []
    missed = coalesced = 0
    j = 0
    for i, written in enumerate(writes):
        while j < len(arrivals) and arrivals[j] < written:
            j += 1
        if j == len(arrivals):
            missed += 1
            continue
        latencies.append((arrivals[j] - written) / 1e6)
        if i + 1 < len(writes) and arrivals[j] >= writes[i + 1]:
            coalesced += 1  # delivered only after the next write was made
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else None,
        "writes": len(writes),
        "missed": missed,
        "late": coalesced,
        "latencies_ms": latencies,
    }


def percentile(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]  # nearest rank


def burst(base: str, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    out: dict[str, Any] = {}
    for run, tool in plan.order():
        root = tempfile.mkdtemp(prefix="burst-", dir=base)
        try:
            directory = os.path.join(root, "many")
            os.mkdir(directory)
            args = [tool, "burst", root, "--target", directory, "--expect", str(sizes.burst)]
            with child(plan, args) as proc:
                proc.message("ready", timeout=60)
                (written,) = run_writers([["burst", directory, str(sizes.burst)]], timeout=300)
                proc.send("drain 3.0 120")
                result = proc.message("result", timeout=180)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        last = result["last_new_ns"]
        keep(out, tool, run, {
            "files": sizes.burst,
            "reported": result["created"],
            "lost": sizes.burst - result["created"],
            "rescans": result["rescans"],
            "events": result["events"],
            "writer_s": (written["end"] - written["start"]) / 1e9,
            "delivered_s": (last - written["start"]) / 1e9 if last else None,
        })
        log(f"  burst {tool}: {out[tool]['repeats'][-1]['lost']} lost")
    return out


def storm(base: str, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    out: dict[str, Any] = {t: {"runs": []} for t in plan.tools()}
    for seed in range(1, sizes.storm_seeds + 1):
        for tool in (*plan.pair_turn(seed - 1), *OTHER_TOOLS):
            run = storm_once(base, tool, seed, plan)
            out[tool]["runs"].append(run)
            log(f"  storm {tool} seed {seed}: converged={run['converged']} "
                f"moves {run['matched']}/{run['renames']}"
                + (f" (raised on stop: {run['stop_error']})" if run["stop_error"] else ""))
    for tool in plan.tools():
        runs = out[tool]["runs"]
        renames = sum(r["renames"] for r in runs)
        out[tool]["converged"] = sum(r["converged"] for r in runs)
        out[tool]["renames"] = renames
        out[tool]["matched"] = sum(r["matched"] for r in runs)
        out[tool]["uncertain"] = sum(r["uncertain"] for r in runs)
        out[tool]["move_rate"] = out[tool]["matched"] / renames if renames else None
    return out


def storm_once(base: str, tool: str, seed: int, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    root = tempfile.mkdtemp(prefix="storm-", dir=base)
    try:
        seed_tree(root)
        rate = sizes.storm_rate / sizes.storm_writers
        commands = [
            ["storm", root, str(seed * 100 + i), str(sizes.storm_seconds), str(rate)]
            for i in range(sizes.storm_writers)
        ]
        with child(plan, [tool, "storm", root]) as proc:
            proc.message("ready", timeout=60)
            outputs = run_writers(commands, timeout=sizes.storm_seconds + 120)
            proc.send(f"drain {sizes.quiet} 60")
            result = proc.message("result", timeout=120)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    counted = count_renames(
        [r for o in outputs for r in o["renames"]], result["initial"], result["log"]
    )
    return {
        "seed": seed,
        "ops": sum(o["ops"] for o in outputs),
        **counted,
        "converged": result["converged"],
        "entries": result["entries"],
        "missing": result["missing"],
        "extra": result["extra"],
        "wrong_kind": result["wrong_kind"],
        "examples": result["examples"],
        "rescans": result["rescans"],
        "stop_error": result["stop_error"],
    }


def idle(tree: str, plan: Plan) -> dict[str, Any]:
    sizes = plan.sizes
    out: dict[str, Any] = {}
    for run, tool in plan.order(defaults=True):
        result = one_shot(plan, [tool, "idle", tree, "--seconds", str(sizes.idle_seconds)],
                          timeout=sizes.idle_seconds + 120)
        keep(out, tool, run, result)
        log(f"  idle {tool}: {result['cpu_ms']:.1f} ms CPU, {result['wakeups']} wake-ups")
    return out


def polling(base: str, plan: Plan) -> dict[str, Any]:
    """The polling backend's tick, both crosswatch columns on one tree, taking turns."""
    sizes = plan.sizes
    root = tempfile.mkdtemp(prefix="polling-", dir=base)
    try:
        entries = polling_cost.build(root, sizes.poll_dirs, sizes.poll_files)
        time.sleep(1.1)  # past the racy window, so unchanged directories are not re-listed
        checkouts = [plan.here] if plan.old is None else [plan.here, plan.old]
        out = polling_cost.measure(root, checkouts, sizes.poll_runs, sizes.poll_ticks, log=log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"entries": entries, "runs": sizes.poll_runs, "ticks": sizes.poll_ticks,
            "tools": out}


#: name, function, whether it runs on the big tree (else in fresh trees of its own)
SCENARIOS = (
    ("startup", startup, True),
    ("latency", latency, True),
    ("burst", burst, False),
    ("storm", storm, False),
    ("idle", idle, True),
    ("polling", polling, False),
)


# ------------------------------------------------------------------ the machine


def machine(base: str, plan: Plan) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": "unknown",
        "fs": fs_type(base),
        "versions": origins(base, plan),
        "revision": revision(),
        "load_before": os.getloadavg()[0],
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name in ("max_queued_events", "max_user_watches"):
        try:
            info[name] = int(Path(f"/proc/sys/fs/inotify/{name}").read_text())
        except (OSError, ValueError):
            info[name] = None
    return info


def origins(base: str, plan: Plan) -> dict[str, Any]:
    """The versions, checking that each crosswatch column imports the code it should."""
    versions: dict[str, Any] = {}
    checkouts = [plan.here] if plan.old is None else [plan.here, plan.old]
    for checkout in checkouts:
        found = one_shot(plan, [checkout.tool, "versions", base], timeout=60)
        checkout.check(found["core_file"], found["plugin_file"])
        if checkout is plan.here:
            versions = found
        else:
            versions["baseline"] = {"tool": checkout.tool, "commit": checkout.commit,
                                    "crosswatch": found["crosswatch"]}
    return versions


def revision() -> str | None:
    """The checkout's commit, marked when the code measured differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "crosswatch", "backends"],
                               cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def fs_type(path: str) -> str:
    """The type of the file system holding ``path``, from /proc/mounts."""
    best, kind = "", "unknown"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                mount = fields[1]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) > len(best):
                    best, kind = mount, fields[2]
    except OSError:
        pass
    return kind


# ----------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"),
                        help="the markdown page; the plot goes next to it as .png")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the temporary trees go (default: /dev/shm, a tmpfs)")
    parser.add_argument("--only", default=",".join(SCENARIO_NAMES),
                        help="comma-separated scenarios to run (default: all; polling "
                             "only runs with --baseline)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write every measurement, as JSON, to PATH")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure crosswatch at git revision REV (e.g. main~5) in "
                             "the same run, and compare this checkout with it")
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIO_NAMES)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIO_NAMES}")
    if args.baseline is None and "polling" in args.only:
        args.only.remove("polling")  # alone it is benchmarks/polling_cost.py
    if not args.only:
        parser.error("polling is measured here only against a baseline: add --baseline REV, "
                     "or run benchmarks/polling_cost.py")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if importlib.util.find_spec("matplotlib") is None:
        sys.exit("the plot needs matplotlib: run `pip install matplotlib` "
                 "(or `pip install -r benchmarks/requirements.txt`)")
    import report
    sizes = QUICK if args.quick else FULL
    began = time.monotonic()
    results: dict[str, Any] = {"quick": args.quick, "sizes": sizes.__dict__}
    try:
        with baseline(args.baseline) as old:
            plan = Plan(sizes, current(), old)
            for checkout in (plan.here, old):
                if checkout is not None:
                    checkout.compile()
            if old is not None:
                log(f"baseline {old.tool}: commit {old.commit}, exported to {old.top}")
                results["baseline"] = {"tool": old.tool, "rev": args.baseline,
                                       "commit": old.commit, "pairs": sizes.pairs}
            measure(args, plan, results)
    except RevisionError as exc:
        sys.exit(str(exc))
    results["seconds"] = time.monotonic() - began
    results["machine"]["load_after"] = os.getloadavg()[0]
    out = Path(args.out)
    report.write(results, out)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {out} and {out.with_suffix('.png')} in {results['seconds']:.0f} s")


def measure(args: argparse.Namespace, plan: Plan, results: dict[str, Any]) -> None:
    """Every scenario asked for, in trees under a temporary directory removed after."""
    sizes = plan.sizes
    base = tempfile.mkdtemp(prefix="crosswatch-bench-", dir=args.dir)
    try:
        results["machine"] = machine(base, plan)
        tree = os.path.join(base, "tree")
        os.mkdir(tree)
        if {"startup", "latency", "idle"} & set(args.only):
            log(f"building {sizes.dirs:,} directories x {sizes.files} files")
            build_tree(tree, sizes.dirs, sizes.files)
        for name, scenario, on_tree in SCENARIOS:
            if name in args.only:
                log(f"{name}:")
                results[name] = scenario(tree if on_tree else base, plan)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

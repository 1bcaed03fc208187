"""Startup and memory on large trees, and what events outside the roots cost a watcher.

    python benchmarks/scale.py                       # 100,000 and 1,000,000 entries, 3 runs
    python benchmarks/scale.py --sizes 10000 --runs 1 --flood 20000 --out /tmp/scale.md

For each size, a tree of directories of 9 files each (``run.py``'s builder) is made
under ``/dev/shm`` (``--dir`` otherwise) by a process of its own. Then every tool
starts on it in a fresh process, every run: two floors (a bare ``os.scandir`` walk,
and the same walk with ``inotify_add_watch`` on each directory), crosswatch with its
inotify and its fanotify backend, watchfiles and watchdog. Each child times the start,
then a file it creates in the root until that file's event arrives ("ready"), and
reads its RSS after its imports and after that event.

Then "events outside the roots": a watcher on a small root while a writer process
creates ``--flood`` files in a sibling directory on the same file system, as fast as it
can: the watcher's CPU time meanwhile, whether it reported anything outside its root,
whether it rescanned, and how long a marker file made in the root afterwards takes to
arrive. fanotify sees every change on the file system and has to drop those; inotify,
for comparison, is never told of them.

The figures go into a section of ``docs/benchmarks.md`` (``--out``), which ``run.py``
keeps, with a plot ``benchmarks-scale.png`` next to the page when matplotlib is there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from report import SCALE_BEGIN, SCALE_END, put_section
from run import fs_type, revision
from scale_child import FILES, PROBE, Timing
from scale_report import (
    DISTRIBUTIONS,
    FLOOD_DIRS,
    FLOOD_FILES,
    FLOOD_TOOLS,
    SLOW_ABOVE,
    TOOLS,
    plot,
    section,
)

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "benchmarks.md"
PLOT = "benchmarks-scale.png"

#: Seconds the orchestrator waits for a child beyond the child's own timeout.
GRACE = 60.0


# ------------------------------------------------------------ the orchestrator


def _log(text: str) -> None:
    print(f"scale.py: {text}", file=sys.stderr, flush=True)


def _command(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "scale_child.py"), *args]


def _env() -> dict[str, str]:
    """Children import crosswatch from this checkout, and the benchmarks' modules."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE.parent), str(HERE), env.get("PYTHONPATH")) if p
    )
    return env


def run_child(*args: str, timeout: float | None = None) -> dict[str, Any] | None:
    """A child's JSON answer; None if it was still running after ``timeout`` (killed)."""
    try:
        done = subprocess.run(_command(*args), capture_output=True, text=True, env=_env(),
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


class Talk:
    """A child spoken to in lines: a command in, one JSON line out."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(_command(*args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=_env())
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer from {self.proc.args!r} in {timeout} s") from None
        if line is None:
            raise RuntimeError(f"{self.proc.args!r} exited with {self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, command: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply(timeout)

    def close(self) -> None:
        """Close its stdin, which ends it; kill it if it does not end."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def build(root: str, dirs: int, files: int) -> None:
    os.mkdir(root)
    run_child("build", root, str(dirs), str(files))


def start_once(tool: str, root: str, timeout: float) -> Timing:
    """One fresh process starting ``tool``; killed ``GRACE`` s past its own timeout."""
    result = run_child(tool, root, str(timeout), timeout=timeout + GRACE)
    if result is not None:
        return result
    for name in os.listdir(root):  # the probe of the child killed
        if name.startswith(PROBE):
            os.unlink(os.path.join(root, name))
    return {"tool": tool, "start_s": None, "ready_s": None, "killed": True}


def _checked_backend(tool: str, backends: dict[str, str]) -> None:
    """A crosswatch column must have watched with the backend it names."""
    wanted = tool.removeprefix("crosswatch-")
    if set(backends.values()) != {wanted}:
        raise RuntimeError(f"{tool} watched with {backends}, not {wanted}")


def tree(base: str, entries: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every run of every tool on a tree of ``entries``; the tree is removed after."""
    dirs = entries // (FILES + 1)
    tools = [t for t in TOOLS if not (args.skip_slow and t == "watchdog" and entries > SLOW_ABOVE)]
    work = tempfile.mkdtemp(dir=base, prefix="scale-bench-")
    root = os.path.join(work, "root")
    runs: dict[str, list[Timing]] = {t: [] for t in tools}
    try:
        _log(f"building {dirs * (FILES + 1):,} entries ({dirs:,} directories)")
        build(root, dirs, FILES)
        for i in range(args.runs):
            for tool in tools[i % len(tools):] + tools[:i % len(tools)]:  # nobody always first
                _log(f"{dirs * (FILES + 1):,} entries, run {i + 1}/{args.runs}: {tool}")
                result = start_once(tool, root, args.timeout)
                if "backends" in result:
                    _checked_backend(tool, result["backends"])
                runs[tool].append(result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    skipped = [t for t in TOOLS if t not in tools]
    return {"entries": dirs * (FILES + 1), "dirs": dirs, "runs": runs, "skipped": skipped}


def flood_once(work: str, root: str, tool: str, files: int, timeout: float,
               run: int) -> dict[str, Any]:
    """A watcher of ``tool`` on ``root`` while a writer floods a sibling directory."""
    outside = os.path.join(work, f"outside-{tool}-{run}")
    os.mkdir(outside)
    talk = Talk("flood", tool, root, str(timeout))
    try:
        _checked_backend(tool, talk.reply(timeout + GRACE)["backends"])
        before = talk.ask("state", GRACE)
        writer = run_child("flood-write", outside, str(files))
        assert writer is not None
        after = talk.ask("state", GRACE)
        marked = talk.ask("marker", timeout + GRACE)
    finally:
        talk.close()
        shutil.rmtree(outside, ignore_errors=True)
    return {
        "tool": tool, "files": files, "writer_s": writer["seconds"],
        "rate": files / writer["seconds"],
        "cpu_flood_s": after["cpu_s"] - before["cpu_s"],
        "cpu_until_marker_s": marked["cpu_s"] - before["cpu_s"],
        "rss_growth_kib": after["rss_kib"] - before["rss_kib"],
        "marker_s": marked["marker_s"], "events": marked["events"] - before["events"],
        "outside": marked["outside"], "rescans": marked["rescans"],
        "examples": marked["examples"],
    }


def flood(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every run of the flood, the two backends taking turns at going first."""
    work = tempfile.mkdtemp(dir=base, prefix="scale-flood-")
    root = os.path.join(work, "root")
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in FLOOD_TOOLS}
    try:
        build(root, FLOOD_DIRS, FLOOD_FILES)
        for i in range(args.runs):
            for tool in FLOOD_TOOLS if i % 2 == 0 else FLOOD_TOOLS[::-1]:
                _log(f"flood of {args.flood:,} files, run {i + 1}/{args.runs}: {tool}")
                runs[tool].append(flood_once(work, root, tool, args.flood, args.timeout, i))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"files": args.flood, "root_files": FLOOD_DIRS * FLOOD_FILES, "runs": runs}


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(base: str) -> dict[str, Any]:
    """What the figures depend on, read now."""
    limits = ("fanotify/max_queued_events", "inotify/max_queued_events",
              "inotify/max_user_watches")
    return {
        "kernel": platform.release(), "cpus": os.cpu_count(), "cpu_model": _cpu_model(),
        "python": platform.python_version(), "fs": fs_type(base), "revision": revision(),
        "versions": {d: _version(d) for d in DISTRIBUTIONS},
        "limits": {name: _read_int(f"/proc/sys/fs/{name}") for name in limits},
        "load_before": os.getloadavg()[0],
    }



def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100000,1000000", help="entries per tree")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (median)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a tool may take to be ready")
    parser.add_argument("--flood", type=int, default=200_000,
                        help="files created outside the root (0: no flood)")
    parser.add_argument("--skip-slow", action="store_true",
                        help=f"skip watchdog above {SLOW_ABOVE:,} entries")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                        help="where the trees go (default: /dev/shm, a tmpfs)")
    parser.add_argument("--out", type=Path, default=PAGE, help="page to write the section to")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    base = args.dir or tempfile.gettempdir()
    began = time.monotonic()
    results: dict[str, Any] = {
        "command": " ".join(["python benchmarks/scale.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "runs": args.runs, "timeout": args.timeout, "machine": machine(base),
    }
    results["trees"] = [tree(base, int(s), args) for s in args.sizes.split(",") if s.strip()]
    if args.flood > 0:
        results["flood"] = flood(base, args)
    results["seconds"] = time.monotonic() - began
    results["machine"]["load_after"] = os.getloadavg()[0]
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    png = args.out.parent / PLOT
    plotted = plot(results, png)
    lines = section(results, PLOT if plotted else None)
    put_section(args.out, lines, begin=SCALE_BEGIN, end=SCALE_END)
    print("\n".join(lines))
    _log(f"wrote {args.out}" + (f" and {png}" if plotted else ""))


if __name__ == "__main__":
    main()

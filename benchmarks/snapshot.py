"""Snapshots of large trees: crosswatch against watchdog's ``dirsnapshot``, in one run.

    python benchmarks/snapshot.py                       # 100,000 and 1,000,000 entries
    python benchmarks/snapshot.py --sizes 10000 --runs 3 --out /tmp/b.md

For each size, a tree of directories of 9 files each (``run.py``'s builder) is made
under ``/dev/shm`` (``--dir`` otherwise) by a process of its own; then, each in a
fresh process: the time to take a snapshot and its size on disk; the time of
``since`` against the unchanged tree; a process of its own changes the tree
(``CHANGES`` of them: appends, new files, removals, file and directory renames);
and the time of ``since`` again. watchdog is measured the same way:
``DirectorySnapshot`` for the snapshot, pickled for its size (it has no file
format), and unpickling it, a new ``DirectorySnapshot`` and a
``DirectorySnapshotDiff`` for ``since``. The figures go into a section of
``docs/benchmarks.md`` (``--out``), which ``run.py`` keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import SNAPSHOT_BEGIN, SNAPSHOT_END, TIMES, put_section
from run import build_tree

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "benchmarks.md"
FILES = 9
#: The changes made between a snapshot and the second ``since``, per kind.
CHANGES = {"append": 2000, "create": 1000, "delete": 1000, "rename": 500, "rename_dir": 100}
LABELS = {"append": "appends", "create": "new files", "delete": "removals",
          "rename": "file renames", "rename_dir": "directory renames (9 files each)"}


# ------------------------------------------------------------ in a child process


def _crosswatch(action: str, root: str, file: str) -> dict[str, Any]:
    import crosswatch

    start = time.perf_counter()
    if action == "snapshot":
        crosswatch.snapshot(root, file)
        return {"seconds": time.perf_counter() - start, "bytes": os.path.getsize(file)}
    events = crosswatch.since(file, root)
    return {"seconds": time.perf_counter() - start, "events": len(events)}


def _watchdog(action: str, root: str, file: str) -> dict[str, Any]:
    from watchdog.utils.dirsnapshot import DirectorySnapshot, DirectorySnapshotDiff

    start = time.perf_counter()
    if action == "snapshot":
        data = pickle.dumps(DirectorySnapshot(root), protocol=pickle.HIGHEST_PROTOCOL)
        Path(file).write_bytes(data)
        return {"seconds": time.perf_counter() - start, "bytes": len(data)}
    old = pickle.loads(Path(file).read_bytes())
    diff = DirectorySnapshotDiff(old, DirectorySnapshot(root))
    kinds = ("files_created", "files_deleted", "files_modified", "files_moved",
             "dirs_created", "dirs_deleted", "dirs_moved")
    return {"seconds": time.perf_counter() - start,
            "events": sum(len(getattr(diff, k)) for k in kinds)}


def _change(root: str, dirs: int) -> dict[str, Any]:
    """Some thousands of changes spread over the tree (distinct directories)."""
    made = 0
    scale = min(1.0, dirs / sum(CHANGES.values()))  # small trees get fewer
    step = max(1, dirs // sum(CHANGES.values()))
    names = iter(range(0, dirs, step))
    for kind, count in CHANGES.items():
        for _ in range(int(count * scale)):
            d = os.path.join(root, f"d{next(names):04d}")
            if kind == "append":
                with open(os.path.join(d, "f00"), "a") as f:
                    f.write("more")
            elif kind == "create":
                os.close(os.open(os.path.join(d, "new"), os.O_CREAT | os.O_WRONLY, 0o644))
            elif kind == "delete":
                os.unlink(os.path.join(d, "f01"))
            elif kind == "rename":
                os.rename(os.path.join(d, "f02"), os.path.join(d, "renamed"))
            else:
                os.rename(d, d + "-moved")
            made += 1
    return {"changes": made}


def child(argv: list[str]) -> None:
    tool, action, root, file = argv
    if tool == "build":
        build_tree(root, int(action), FILES)
        result: dict[str, Any] = {}
    elif tool == "change":
        result = _change(root, int(action))
    else:
        result = (_crosswatch if tool == "crosswatch" else _watchdog)(action, root, file)
    print(json.dumps(result))


# ------------------------------------------------------------ the orchestrator


def _run(*args: str) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE.parent), str(HERE), env.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _log(text: str) -> None:
    print(f"snapshot.py: {text}", file=sys.stderr, flush=True)


def measure(base: str, entries: int) -> dict[str, Any]:
    """One run at ``entries``: every figure for both tools."""
    dirs = entries // (FILES + 1)
    work = tempfile.mkdtemp(dir=base, prefix="snapshot-bench-")
    root = os.path.join(work, "root")
    os.mkdir(root)
    out: dict[str, Any] = {"crosswatch": {}, "watchdog": {}}
    try:
        _log(f"building {dirs * (FILES + 1):,} entries")
        _run("build", str(dirs), root, "-")
        files = {"crosswatch": os.path.join(work, "tree.cws"),
                 "watchdog": os.path.join(work, "tree.pickle")}
        for tool, file in files.items():
            _log(f"{tool}: snapshot")
            out[tool]["snapshot"] = _run(tool, "snapshot", root, file)
            _log(f"{tool}: since, unchanged")
            out[tool]["unchanged"] = _run(tool, "since", root, file)
        out["changes"] = _run("change", str(dirs), root, "-")["changes"]
        for tool, file in files.items():
            _log(f"{tool}: since, after {out['changes']:,} changes")
            out[tool]["changed"] = _run(tool, "since", root, file)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _median(runs: list[dict[str, Any]], tool: str, step: str, key: str) -> float:
    return statistics.median(r[tool][step][key] for r in runs)


def table(results: dict[int, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "## Snapshots: `snapshot` and `since` on large trees",
        "",
        "`python benchmarks/snapshot.py`: crosswatch's `snapshot()` and `since()` against "
        "watchdog's `DirectorySnapshot` (pickled, as it has no file format) and "
        "`DirectorySnapshotDiff`, each step in a fresh process, on a tmpfs tree of "
        f"directories of {FILES} files. `since` after changes: "
        + ", ".join(f"{n:,} {LABELS[k]}" for k, n in CHANGES.items())
        + ". Medians; the ratio is watchdog's figure over crosswatch's (above 1: crosswatch "
        "is faster or smaller).",
        "",
        "| entries | step | crosswatch | watchdog | ratio |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for entries, runs in sorted(results.items()):
        rows = [
            ("snapshot", "snapshot", "seconds", "{:.2f} s"),
            ("file size", "snapshot", "bytes", "{:.2f} MB"),
            ("since, unchanged", "unchanged", "seconds", "{:.2f} s"),
            ("since, changed", "changed", "seconds", "{:.2f} s"),
        ]
        for label, step, key, fmt in rows:
            cw, wd = (_median(runs, t, step, key) for t in ("crosswatch", "watchdog"))
            scale = 1e6 if key == "bytes" else 1
            lines.append(f"| {entries:,} | {label} | {fmt.format(cw / scale)} | "
                         f"{fmt.format(wd / scale)} | {wd / cw:.1f}{TIMES} |")
        last = runs[-1]
        lines.append(f"| {entries:,} | events after {last['changes']:,} changes | "
                     f"{last['crosswatch']['changed']['events']:,} | "
                     f"{last['watchdog']['changed']['events']:,} | |")
    lines += [
        "",
        "Both report the same changes: crosswatch's count is of events (a renamed "
        "directory is one `moved`, its files go with it); watchdog's sums its diff's lists, "
        "where a moved directory also lists every file below it as moved.",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100000,1000000", help="entries per tree")
    parser.add_argument("--runs", type=int, default=1, help="runs per size (median)")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--out", type=Path, default=PAGE, help="page to write the section to")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    results: dict[int, list[dict[str, Any]]] = {}
    for entries in (int(s) for s in args.sizes.split(",")):
        results[entries] = [measure(args.dir or tempfile.gettempdir(), entries)
                            for _ in range(args.runs)]
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    lines = table(results)
    put_section(args.out, lines, begin=SNAPSHOT_BEGIN, end=SNAPSHOT_END)
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()

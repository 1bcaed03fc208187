"""The report of ``scale.py``: medians, the markdown section and the plot."""

from __future__ import annotations

import datetime
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from report import TIMES
from scale_child import FILES, WATCHFILES_DELAY, Timing

#: Every configuration measured on the large trees, in the order of the tables.
TOOLS = ("scan", "scan+inotify", "crosswatch-inotify", "crosswatch-fanotify", "watchfiles",
         "watchdog")
LABELS = {
    "scan": "bare scan (`os.scandir` walk)",
    "scan+inotify": "bare scan + `inotify_add_watch`",
    "crosswatch-inotify": 'crosswatch, `backend="inotify"`',
    "crosswatch-fanotify": 'crosswatch, `backend="fanotify"`',
    "watchfiles": "watchfiles (debounce=1, step=1)",
    "watchdog": "watchdog `Observer`",
}
#: The ratios the tables give: a crosswatch backend's "ready" over its floor's.
FLOORS = {"crosswatch-inotify": "scan+inotify", "crosswatch-fanotify": "scan"}
FLOOD_TOOLS = ("crosswatch-fanotify", "crosswatch-inotify")
#: The distributions whose versions the page gives.
DISTRIBUTIONS = ("crosswatch", "crosswatch-inotify", "crosswatch-fanotify", "watchdog",
                 "watchfiles")
#: watchdog is skipped above this many entries with --skip-slow (it does not get ready).
SLOW_ABOVE = 100_000
#: The small root of the flood: directories of files.
FLOOD_DIRS, FLOOD_FILES = 10, 10




def _median(values: Sequence[float | None]) -> float | None:
    """The median, where None (not ready) counts as slower than any number."""
    if not values:
        return None
    middle = statistics.median_low([math.inf if v is None else v for v in values])
    return None if math.isinf(middle) else middle


def summary(runs: list[Timing], entries: int) -> dict[str, Any]:
    """A tool's medians over its runs at one size."""
    growth = [(r["rss_kib"] - r["rss_base_kib"]) * 1024 for r in runs if "rss_kib" in r]
    starts = [r["start_s"] for r in runs if r.get("start_s") is not None]
    mid = statistics.median(growth) if growth else None
    return {
        "start_s": _median(starts),
        "ready_s": _median([r["ready_s"] for r in runs]),
        "all_ready_s": [r["ready_s"] for r in runs],
        "not_ready": sum(r["ready_s"] is None for r in runs),
        "rss_mib": None if mid is None else mid / 2**20,
        "bytes_per_entry": None if mid is None else mid / entries,
    }


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def _ready(value: float | None, timeout: float) -> str:
    return f"**not ready within {timeout:g} s**" if value is None else _secs(value)


def _ratio(tool: str, sums: dict[str, dict[str, Any]]) -> str:
    floor = FLOORS.get(tool)
    if floor is None or floor not in sums:
        return ""
    mine, base = sums[tool]["ready_s"], sums[floor]["ready_s"]
    if mine is None or base is None or base == 0:
        return "—"
    return f"{mine / base:.1f}{TIMES} {LABELS[floor]}"


def tree_table(data: dict[str, Any], timeout: float) -> list[str]:
    entries = data["entries"]
    sums = {t: summary(r, entries) for t, r in data["runs"].items()}
    lines = [
        f"### {entries:,} entries ({data['dirs']:,} directories {TIMES} {FILES} files)",
        "",
        "| tool | start | ready | ready, each run | memory (RSS growth) | bytes per entry "
        "| ready against its floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for tool in TOOLS:
        if tool in data["skipped"]:
            lines.append(f"| {LABELS[tool]} | skipped (`--skip-slow`) | | | | | |")
            continue
        s = sums[tool]
        each = ", ".join("—" if v is None else f"{v:.3f}" for v in s["all_ready_s"])
        mib = "—" if s["rss_mib"] is None else f"{s['rss_mib']:.1f} MiB"
        per = "—" if s["bytes_per_entry"] is None else f"{s['bytes_per_entry']:,.0f}"
        if s["ready_s"] is None and s["rss_mib"] is not None:
            mib += " (at the timeout)"
        lines.append(f"| {LABELS[tool]} | {_secs(s['start_s'])} | {_ready(s['ready_s'], timeout)} "
                     f"| {each} | {mib} | {per} | {_ratio(tool, sums)} |")
    return [*lines, ""]


def _flood_sum(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    markers = [r["marker_s"] for r in runs]
    return {
        "rate": med("rate"), "writer_s": med("writer_s"), "cpu_flood_s": med("cpu_flood_s"),
        "cpu_until_marker_s": med("cpu_until_marker_s"), "rss_growth_kib": med("rss_growth_kib"),
        "marker_s": _median(markers), "lost_markers": sum(m is None for m in markers),
        "events": max(r["events"] for r in runs), "outside": max(r["outside"] for r in runs),
        "rescans": sum(r["rescans"] for r in runs), "runs": len(runs),
        "examples": [e for r in runs for e in r["examples"]][:5],
    }


def flood_table(data: dict[str, Any], timeout: float) -> list[str]:
    sums = {t: _flood_sum(r) for t, r in data["runs"].items()}
    files = data["files"]

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> str:
        return f"| {name} | " + " | ".join(cell(sums[t]) for t in FLOOD_TOOLS) + " |"

    def marker(s: dict[str, Any]) -> str:
        if s["marker_s"] is None:
            return f"**not within {timeout:g} s** ({s['lost_markers']} of {s['runs']} runs)"
        return f"{s['marker_s'] * 1000:.1f} ms"

    def outside(s: dict[str, Any]) -> str:
        return "0" if not s["outside"] else f"**{s['outside']:,}** (e.g. `{s['examples'][0]}`)"

    runs = len(next(iter(data["runs"].values())))
    lines = [
        "### Events outside the roots",
        "",
        f"A watcher on a root of {data['root_files']} files, in a process of its own, while a "
        f"writer process creates {files:,} empty files, as fast as it can, in a sibling "
        "directory on the same file system (not under the root). fanotify marks the whole "
        "file system, so the kernel hands the watcher every one of those changes and the "
        "backend drops them; inotify is never told of them, so its column is the floor. "
        "CPU time is the watcher process's (`getrusage`, every thread), from just before the "
        "writer starts until it ends, and until the watcher is current again: after the "
        "writer, the watcher's process makes a marker file in the root and times its "
        "`created` event. A kernel queue overflow, repaired by a rescan, is allowed. "
        f"Medians of {_runs(runs)} (events and events outside: the largest; rescans: all "
        "runs).",
        "",
        "| | " + " | ".join(LABELS[t] for t in FLOOD_TOOLS) + " |",
        "| --- |" + " ---: |" * len(FLOOD_TOOLS),
        row("writer's rate", lambda s: f"{s['rate']:,.0f} files/s ({s['writer_s']:.2f} s)"),
        row("watcher's CPU time during the flood",
            lambda s: f"{s['cpu_flood_s'] * 1000:,.0f} ms "
                      f"({s['cpu_flood_s'] / s['writer_s']:.0%} of a core)"),
        row("watcher's CPU time until current",
            lambda s: f"{s['cpu_until_marker_s'] * 1000:,.0f} ms "
                      f"({s['cpu_until_marker_s'] / files * 1e6:.2f} µs per file outside)"),
        row("marker in the root reported after", marker),
        row("events reported outside the root", outside),
        row("events reported in all (marker included)", lambda s: f"{s['events']:,}"),
        row("rescans", lambda s: str(s["rescans"])),
        row("memory growth during the flood (RSS)",
            lambda s: f"{s['rss_growth_kib'] / 1024:.1f} MiB"),
    ]
    return [*lines, ""]


def intro(results: dict[str, Any], plot_name: str | None) -> list[str]:
    m, v = results["machine"], results["machine"]["versions"]
    limits = m["limits"]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Large trees: startup, memory, events outside the roots",
        "",
        f"`{results['command']}` (generated {when}, in {results['seconds']:.0f} s). Trees of "
        f"directories of {FILES} files on {m['fs']}, made by a process of their own; every "
        "start is a fresh process, the order of the tools rotated between runs; medians of "
        f"{_runs(results['runs'])}.",
        "",
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}; load average (1 min) {m['load_before']:.2f} before, "
        f"{m['load_after']:.2f} after",
        f"- crosswatch {v['crosswatch']} (crosswatch-inotify {v['crosswatch-inotify']}, "
        f"crosswatch-fanotify {v['crosswatch-fanotify']}), watchdog {v['watchdog']}, "
        f"watchfiles {v['watchfiles']}"
        + (f"; checkout at {m['revision']}" if m.get("revision") else ""),
        f"- fanotify `max_queued_events` = {limits['fanotify/max_queued_events']}; inotify "
        f"`max_queued_events` = {limits['inotify/max_queued_events']}, `max_user_watches` = "
        f"{limits['inotify/max_user_watches']}",
        "",
        "**Start** is the time of the starting call: for crosswatch "
        "`Watcher(root, backend=...).start()`, which returns after the initial scan; for "
        "watchdog `Observer()`, `schedule(handler, root, recursive=True)` and `start()`, "
        "which returns once every directory has its watch. **Ready** is from that call until "
        "the `created` event of a file the child makes in the root right after the start "
        "returned. watchfiles has no ready signal and no start to time: `watchfiles.watch(root, "
        "watch_filter=None, debounce=1, step=1)` is iterated on a thread, the file is made "
        f"{WATCHFILES_DELAY * 1000:.0f} ms after that thread is started (its figure cannot come "
        "out below that), and ready is from the call to the batch naming the file. The floors: "
        "a walk of the tree with `os.scandir` (start = ready = the walk), and the same walk "
        "calling `inotify_add_watch` (ctypes) on each directory before listing it, into one "
        "inotify descriptor, with the mask a minimal watcher needs (create, delete, modify, "
        "attrib, moves, delete/move self, only-dir), then reading that descriptor until the "
        f"file's `IN_CREATE`. A tool not ready within {results['timeout']:g} s is reported so; "
        "such a run counts as slower than any other in the median. **Memory** is the growth "
        "of the process's `VmRSS` from after its imports to after the first event (a "
        "`gc.collect()` before each reading); kernel memory (watches, queues) is not in it. "
        "Bytes per entry divide it by the tree's entries. The ratios divide a crosswatch "
        "backend's ready by its floor's: inotify by the walk with watches, fanotify (one "
        "file system mark, no per-directory kernel object) by the bare walk.",
        "",
    ]
    if plot_name is not None:
        lines += [f"![startup and memory against tree size]({plot_name})", ""]
    return lines


def section(results: dict[str, Any], plot_name: str | None) -> list[str]:
    lines = intro(results, plot_name)
    for data in results["trees"]:
        lines += tree_table(data, results["timeout"])
    if any(data["skipped"] for data in results["trees"]):
        lines += [f"watchdog is skipped above {SLOW_ABOVE:,} entries (`--skip-slow`), a known "
                  "failure: on trees of 50,000 entries and more the `IN_OPEN` events of its own "
                  "scan overflow the inotify queue and it is never ready.", ""]
    if "flood" in results:
        lines += flood_table(results["flood"], results["timeout"])
    return lines


def plot(results: dict[str, Any], path: Path) -> bool:
    """Ready and memory against tree size, log-log, a line per tool; False without
    matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print("scale.py: matplotlib is not installed: no plot (pip install matplotlib)",
              file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool in TOOLS:
        points = [(d["entries"], summary(d["runs"][tool], d["entries"]))
                  for d in results["trees"] if tool in d["runs"]]
        ready = [(n, s) for n, s in points if s["ready_s"] is not None]
        for ax, key in ((left, "ready_s"), (right, "rss_mib")):
            xy = [(n, s[key]) for n, s in ready if s[key] is not None and s[key] > 0]
            if xy:
                ax.plot(*zip(*xy, strict=True), marker="o", label=LABELS[tool].replace("`", ""))
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax, title, unit in ((left, "ready (start + first event), median", "seconds"),
                            (right, "memory: RSS growth, median", "MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("entries in the tree")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    fig.text(0.01, 0.01, f"missing points: not ready within {results['timeout']:g} s (see the "
             "tables), skipped, or no memory growth", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ------------------------------------------------------------ main


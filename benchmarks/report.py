"""The results as a markdown page and a PNG plot; every number comes from the run."""

from __future__ import annotations

import datetime
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LABELS = {
    "crosswatch": "crosswatch",
    "watchdog": "watchdog",
    "watchfiles": "watchfiles (debounce=1, step=1)",
    "watchfiles-default": "watchfiles (defaults: debounce=1600, step=50)",
}
SHORT = {"watchfiles": "watchfiles\n1/1", "watchfiles-default": "watchfiles\ndefaults"}
MOVE_GOAL = 0.999
TIMES = "\u00d7"
LATENCY_GOAL_MS = 1.0

Row = tuple[str, Callable[[dict[str, Any]], str]]
#: Around the section benchmarks/slow_consumer.py writes; kept when the page is rewritten.
SECTION_BEGIN = "<!-- slow_consumer.py: begin -->"
SECTION_END = "<!-- slow_consumer.py: end -->"
#: Around the section benchmarks/snapshot.py writes.
SNAPSHOT_BEGIN = "<!-- snapshot.py: begin -->"
SNAPSHOT_END = "<!-- snapshot.py: end -->"
#: Around the section benchmarks/scale.py writes.
SCALE_BEGIN = "<!-- scale.py: begin -->"
SCALE_END = "<!-- scale.py: end -->"
#: The sections of the page that other scripts write, kept when it is written again.
IMPORTS_BEGIN = "<!-- imports.py: begin -->"
IMPORTS_END = "<!-- imports.py: end -->"
#: Around the section benchmarks/remote.py writes.
REMOTE_BEGIN = "<!-- remote.py: begin -->"
REMOTE_END = "<!-- remote.py: end -->"

KEPT = [(SECTION_BEGIN, SECTION_END), (SNAPSHOT_BEGIN, SNAPSHOT_END), (SCALE_BEGIN, SCALE_END),
        (IMPORTS_BEGIN, IMPORTS_END), (REMOTE_BEGIN, REMOTE_END)]


def label(tool: str) -> str:
    """The column heading of ``tool``; a baseline (``crosswatch@REV``) is its own."""
    return LABELS.get(tool, tool)


def short(tool: str) -> str:
    """The plot's label of ``tool``."""
    if tool.startswith("crosswatch@"):
        return "crosswatch\n" + tool[len("crosswatch"):]
    return SHORT.get(tool, tool)


def ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} ms"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def table(data: dict[str, Any], rows: Sequence[Row]) -> list[str]:
    tools = list(data)
    lines = ["| | " + " | ".join(label(t) for t in tools) + " |",
             "| --- |" + " --- |" * len(tools)]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(data[t]) for t in tools) + " |")
    return lines


# ------------------------------------------------------------------ sections


def intro(results: dict[str, Any], plot: str) -> list[str]:
    m = results["machine"]
    v = m["versions"]
    size = results["sizes"]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "crosswatch (inotify backend) against the tools Python programs use today, measured",
        "in one run of `python benchmarks/run.py` (how it works and how it is kept fair:",
        "`benchmarks/README.md` in the repository). Every number below comes from that run;",
        "run it again to get yours.",
        "",
        f"- generated {when}, in {results['seconds']:.0f} s"
        + (" — **quick mode: small sizes, not the real benchmark**" if results["quick"] else ""),
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        f"trees on {m['fs']}",
        f"- load average (1 min) {m['load_before']:.2f} before the run, {m['load_after']:.2f}"
        " after (other work on the machine shows up in the numbers)",
        f"- inotify: `max_queued_events` = {m['max_queued_events']}, "
        f"`max_user_watches` = {m['max_user_watches']}",
        f"- Python {m['python']}; crosswatch {v['crosswatch']} "
        f"(crosswatch-inotify {v['crosswatch-inotify']}), watchdog {v['watchdog']}, "
        f"watchfiles {v['watchfiles']}"
        + (f"; crosswatch checkout at {m['revision']}" if m.get("revision") else ""),
        *baseline_line(results),
        f"- tree for startup, latency and idle: {size['dirs']:,} directories {TIMES} "
        f"{size['files']} files",
        "- each tool consumes in a process of its own; every writer is another process",
        "",
        f"![benchmark results]({plot})",
        "",
    ]
    return lines


def goals(results: dict[str, Any]) -> list[str]:
    rows: list[tuple[str, str, bool]] = []
    if "startup" in results:
        cw, wd = (results["startup"][t]["median_s"] for t in ("crosswatch", "watchdog"))
        rows.append(("startup no slower than watchdog",
                     f"{cw * 1000:.0f} ms vs {wd * 1000:.0f} ms", cw <= wd))
    if "latency" in results:
        p50 = results["latency"]["crosswatch"]["p50_ms"]
        rows.append((f"latency p50 ≤ {LATENCY_GOAL_MS:g} ms", ms(p50, 3),
                     p50 is not None and p50 <= LATENCY_GOAL_MS))
        wd50 = results["latency"]["watchdog"]["p50_ms"]
        rows.append(("latency p50 no worse than watchdog", f"{ms(p50, 3)} vs {ms(wd50, 3)}",
                     p50 is not None and wd50 is not None and p50 <= wd50))
    if "burst" in results:
        b = results["burst"]["crosswatch"]
        rows.append((f"{b['files']:,}-file burst: nothing lost", f"{b['lost']:,} lost",
                     b["lost"] == 0))
    if "storm" in results:
        s = results["storm"]["crosswatch"]
        runs = len(s["runs"])
        rows.append(("storm: the mirror converges in every run",
                     f"{s['converged']} of {runs}", s["converged"] == runs))
        rate = s["move_rate"]
        rows.append((f"storm: renames reported as moves ≥ {MOVE_GOAL:.1%}",
                     "—" if rate is None else f"{rate:.2%} ({s['matched']} of {s['renames']})",
                     rate is not None and rate >= MOVE_GOAL))
    if "idle" in results:
        i = results["idle"]["crosswatch"]
        rows.append(("idle: no wake-ups", f"{i['wakeups']} wake-ups, {i['cpu_ms']:.1f} ms CPU",
                     i["wakeups"] == 0))
    lines = ["## Goals for crosswatch", "", "| goal | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {g} | {value} | {'yes' if ok else '**no**'} |" for g, value, ok in rows]
    return [*lines, ""]


def startup(data: dict[str, Any], size: dict[str, Any]) -> list[str]:
    runs = next(iter(data.values()))["runs"]
    return [
        "## Startup",
        "",
        f"Time from the call that starts watching a tree of {size['dirs']:,} directories {TIMES}",
        f"{size['files']} files until the tool is ready, median of {runs} runs (each in a fresh",
        "process, the order of the tools rotated between runs). crosswatch:",
        "`Watcher(root, backend=\"inotify\").start()` (it returns after the initial scan);",
        "watchdog: `observer.schedule(handler, root, recursive=True)` + `observer.start()`",
        "(which returns once every directory has its watch); watchfiles: calling",
        "`watch(root, yield_on_timeout=True, rust_timeout=1)` until its first (empty) yield,",
        "which comes once its watches are in place plus one 1 ms timeout. After each start",
        "a file is created in the last directory, and the tool must report it.",
        "",
        *table(data, [
            ("median", lambda d: seconds(d["median_s"])),
            ("all runs", lambda d: ", ".join(f"{s:.3f}" for s in d["all_s"])),
            ("memory added (RSS, median)", lambda d: f"{d['rss_mib']:.1f} MiB"),
            ("probe file reported", lambda d: f"{d['probes_seen']} of {d['runs']}"),
        ]),
        "",
    ]


def latency(data: dict[str, Any], size: dict[str, Any]) -> list[str]:
    return [
        "## Latency",
        "",
        f"A writer process appends a line to one file of the tree {size['writes']} times, one",
        f"every {size['interval'] * 1000:.0f} ms, reading `time.time_ns()` just before each",
        "write; the consumer reads the same clock when the tool hands over a batch holding a",
        "`modified` event for that file. A write counts as delivered by the first such batch",
        "after it; \"late\" counts writes first reported after the next write was made.",
        "",
        *table(data, [
            ("p50", lambda d: ms(d["p50_ms"], 3)),
            ("p99", lambda d: ms(d["p99_ms"], 3)),
            ("max", lambda d: ms(d["max_ms"], 1)),
            ("writes never reported", lambda d: f"{d['missed']} of {d['writes']}"),
            ("late", lambda d: str(d["late"])),
        ]),
        "",
    ]


def burst(data: dict[str, Any], size: dict[str, Any]) -> list[str]:
    return [
        f"## {size['burst']:,}-file burst",
        "",
        f"A writer process creates {size['burst']:,} empty files in one watched directory as",
        "fast as it can. Reported: distinct paths the tool reported as created (for",
        "crosswatch that includes the `created` events its rescan delivers after a kernel",
        "queue overflow, the way it recovers). Time: from the writer's first file to the",
        "delivery of the last newly reported one. Consumers only record the paths.",
        "",
        *table(data, [
            ("reported", lambda d: f"{d['reported']:,}"),
            ("lost", lambda d: f"**{d['lost']:,}**" if d["lost"] else "0"),
            ("rescans", lambda d: str(d["rescans"])),
            ("writer took", lambda d: seconds(d["writer_s"])),
            ("last one delivered after", lambda d: seconds(d["delivered_s"])),
            ("events delivered (all kinds)", lambda d: f"{d['events']:,}"),
        ]),
        "",
    ]


def storm(data: dict[str, Any], size: dict[str, Any]) -> list[str]:
    def per_run(d: dict[str, Any]) -> str:
        return "<br>".join(
            f"seed {r['seed']}: {'ok' if r['converged'] else 'wrong'} "
            f"({r['missing']} missing, {r['extra']} extra, {r['wrong_kind']} kind)"
            for r in d["runs"]
        )

    def rate(d: dict[str, Any]) -> str:
        r = d["move_rate"]
        return "—" if r is None else f"{r:.2%}"

    runs = len(next(iter(data.values()))["runs"])
    return [
        "## Storm: convergence and renames",
        "",
        f"{size['storm_writers']} writer processes make random creates, appends, mkdirs,",
        f"renames, deletes and rmdirs in a small tree for {size['storm_seconds']:g} s at about",
        f"{size['storm_rate']:,.0f} operations per second in all. The consumer rebuilds the tree",
        "(path → is directory) from the events; once the writers are done and no event came",
        f"for {size['quiet']:g} s, its mirror is compared with the disk. crosswatch is applied",
        "with `crosswatch.testing.Mirror(strict=False)`; watchdog by the same rules (a move",
        "moves the subtree; an unknown source just adds the target); watchfiles has only",
        "added/deleted, so an added path is checked with `os.path.isdir` on delivery and",
        "its batches, which are sets, are applied in the order they iterate.",
        "Renames are counted by the identity (inode) of the entry renamed: each writer logs",
        "the inode of what it renamed, and the consumer the inode each `created` event",
        "names on arrival (a move carries its entry's along). A rename counts if the",
        "consumer had that entry at the source when the rename was made (a consumer cannot",
        "be told that an entry it never knew moved: one created and renamed before the tool",
        "reported it, or one that took over a name the consumer still had for another). It",
        "is reported as a move if the tool then reported a move of that entry, whatever the",
        "paths (a directory renamed at the same time changes them); watchfiles has no",
        "moves. A rename whose entry another writer may have swapped in the middle is left",
        "out of both counts (`benchmarks/renames.py`).",
        "",
        *table(data, [
            (f"mirror right after the storm ({runs} runs)",
             lambda d: f"{d['converged']} of {len(d['runs'])}"),
            ("per run", per_run),
            ("renames of entries the consumer knew", lambda d: f"{d['renames']:,}"),
            ("reported as moves", lambda d: f"{d['matched']:,}"),
            ("rename-as-move rate", rate),
            ("renames left out (identity uncertain)", lambda d: f"{d.get('uncertain', 0):,}"),
            ("rescans", lambda d: str(sum(r["rescans"] for r in d["runs"]))),
        ]),
        "",
        *stop_errors(data),
    ]


def stop_errors(data: dict[str, Any]) -> list[str]:
    """Errors raised by a tool's own stop, after the mirror had been compared."""
    lines = []
    for tool, d in data.items():
        errors = [r["stop_error"] for r in d["runs"] if r.get("stop_error")]
        if errors:
            lines.append(f"{label(tool)} raised while being stopped, after the comparison, in "
                         f"{len(errors)} of {len(d['runs'])} runs (`{errors[0]}`).")
    return [*lines, ""] if lines else []


def idle(data: dict[str, Any], size: dict[str, Any]) -> list[str]:
    return [
        "## Idle cost",
        "",
        f"Each tool watches the {size['dirs']:,} {TIMES} {size['files']} tree, consuming on a",
        f"thread of its process, while nothing changes; over {size['idle_seconds']:g} s the",
        "process's CPU time (`time.process_time()`) and the context switches of all its",
        "threads but the one measuring (from `/proc/self/task/*/status`) are counted.",
        "watchfiles runs with its default `rust_timeout` (5 s) here.",
        "",
        *table(data, [
            ("CPU time", lambda d: ms(d["cpu_ms"], 1)),
            ("wake-ups", lambda d: f"{d['wakeups']:,}"),
        ]),
        "",
    ]


# ---------------------------------------------------------------- comparison

#: How much worse than the baseline a measure may come out and still be "no worse":
#: (relative, absolute) in the measure's unit, either one enough. Set from this
#: checkout measured against itself (see benchmarks/README.md, "Against a baseline").
TOLERANCE: dict[str, tuple[float, float]] = {
    "startup": (0.10, 0.005),
    "latency_p50": (0.25, 0.05),
    "latency_p99": (0.50, 0.25),
    "burst_s": (0.25, 0.25),
    "idle_cpu": (0.50, 2.0),
    "polling": (0.10, 0.0),
    "move_rate": (0.0, 0.001),
}
#: Counts a change must not make larger (or, for "higher", smaller) at all.
EXACT = (0.0, 0.0)


def baseline_line(results: dict[str, Any]) -> list[str]:
    b = results.get("baseline")
    if b is None:
        return []
    v = results["machine"]["versions"].get("baseline", {})
    return [f"- baseline `{b['tool']}`: commit {b['commit']} (crosswatch "
            f"{v.get('crosswatch', '?')}), exported from git and measured in the same run"]


def ratio(cur: float | None, base: float | None) -> float | None:
    if cur is None or base is None:
        return None
    if base == 0:
        return 1.0 if cur == 0 else None
    return cur / base


def compared(name: str, fmt: Callable[[float], str], cur_runs: Sequence[float | None],
             base_runs: Sequence[float | None], tolerance: tuple[float, float], *,
             pick: Callable[[list[float]], float] = statistics.median,
             higher: bool = False,
             values: tuple[float | None, float | None] | None = None,
             ) -> tuple[str, str, bool]:
    """One row: both values, their ratio, the per-run ratios and whether it is no worse.

    The values are ``pick`` of each side's runs, unless given as ``values``.
    """
    def value(runs: Sequence[float | None]) -> float | None:
        return None if not runs or any(r is None for r in runs) else pick(
            [r for r in runs if r is not None])

    cur, base = values if values is not None else (value(cur_runs), value(base_runs))
    rel, floor = tolerance
    r = ratio(cur, base)
    if cur is None or base is None:
        ok = cur is None and base is None
    elif higher:
        ok = cur >= base * (1 - rel) or base - cur <= floor
    else:
        ok = cur <= base * (1 + rel) or cur - base <= floor
    pairs = [ratio(c, b) for c, b in zip(cur_runs, base_runs, strict=False)]
    spread = [p for p in pairs if p is not None]
    spread_text = (f"{min(spread):.2f} to {max(spread):.2f}" if len(spread) > 1
                   else "—" if not spread else f"{spread[0]:.2f}")
    if tolerance == EXACT:
        allowed = "none"
    else:
        allowed = " or ".join(p for p in (f"{rel:.0%}" if rel else "",
                                          fmt(floor) if floor else "") if p)
    cells = [name, "—" if cur is None else fmt(cur), "—" if base is None else fmt(base),
             "—" if r is None else f"{r:.2f}", spread_text, allowed,
             "yes" if ok else "**no**"]
    return name, "| " + " | ".join(cells) + " |", ok


def comparison(results: dict[str, Any]) -> list[str]:
    b = results["baseline"]
    old, here = b["tool"], "crosswatch"
    rows: list[tuple[str, str, bool]] = []

    def runs(scenario: str, key: str, tool: str) -> list[float | None]:
        return [r[key] for r in results[scenario][tool]["repeats"]]

    def msf(digits: int) -> Callable[[float], str]:
        return lambda v: ms(v, digits)

    if "startup" in results:
        s = results["startup"]
        rows.append(compared("startup, median", seconds3, s[here]["all_s"], s[old]["all_s"],
                             TOLERANCE["startup"]))
    if "latency" in results:
        for pct in (50, 99):
            pooled = (pooled_percentile(results["latency"][here]["repeats"], pct),
                      pooled_percentile(results["latency"][old]["repeats"], pct))
            rows.append(compared(f"latency p{pct} (all runs' writes)", msf(3),
                                 runs("latency", f"p{pct}_ms", here),
                                 runs("latency", f"p{pct}_ms", old),
                                 TOLERANCE[f"latency_p{pct}"], values=pooled))
    if "burst" in results:
        rows.append(compared("burst: last one delivered after", seconds,
                             runs("burst", "delivered_s", here), runs("burst", "delivered_s", old),
                             TOLERANCE["burst_s"]))
        rows.append(compared("burst: files lost (worst run)", count,
                             runs("burst", "lost", here), runs("burst", "lost", old), EXACT,
                             pick=max))
    if "idle" in results:
        rows.append(compared("idle: wake-ups", count, runs("idle", "wakeups", here),
                             runs("idle", "wakeups", old), EXACT))
        rows.append(compared("idle: CPU time", msf(1), runs("idle", "cpu_ms", here),
                             runs("idle", "cpu_ms", old), TOLERANCE["idle_cpu"]))
    if "polling" in results:
        p = results["polling"]["tools"]
        for key, name in (("quiet_s", "polling tick, nothing changed (fastest)"),
                          ("touched_s", "polling tick, every directory re-listed (fastest)")):
            best = key.replace("_s", "_best_s")
            rows.append(compared(name, msf(1),
                                 [m[key] * 1000 for m in p[here]["run_best"]],
                                 [m[key] * 1000 for m in p[old]["run_best"]],
                                 TOLERANCE["polling"],
                                 values=(p[here][best] * 1000, p[old][best] * 1000)))
    if "storm" in results:
        st = results["storm"]
        rows.append(compared("storm: mirror right afterwards (runs)", count,
                             [r["converged"] for r in st[here]["runs"]],
                             [r["converged"] for r in st[old]["runs"]], EXACT,
                             pick=sum, higher=True))
        rows.append(compared("storm: renames reported as moves", percent,
                             [st[here]["move_rate"]], [st[old]["move_rate"]],
                             TOLERANCE["move_rate"], higher=True))
    worse = [name for name, _, ok in rows if not ok]
    turns = []
    if "startup" in results:
        turns.append("in startup each round runs them back to back, who goes first "
                     "alternating")
    repeated = [n for n in ("latency", "burst", "idle") if n in results]
    if repeated:
        turns.append(f"{', '.join(repeated)} run each of them {b['pairs']} times, "
                     "who goes first alternating")
    if "storm" in results:
        turns.append("the storm alternates per seed")
    if "polling" in results:
        p = results["polling"]
        turns.append(f"the polling tick ({p['entries']:,} entries, the built-in polling "
                     f"backend) runs {p['runs']} processes of each, alternating, timing "
                     f"{p['ticks']} ticks in each")
    lines = [
        f"## This checkout against {b['rev']}",
        "",
        f"`{old}` is commit {b['commit']}: its `crosswatch/` and inotify plugin, exported",
        "from git, come first on the path of its consumers, so the column measures that",
        "code with this run's tools, trees and writers. The two took turns: "
        + "; ".join(turns) + ".",
        "",
        "Values are medians over those runs (latency: the percentiles of all runs' writes",
        "together; polling: the fastest of all ticks, which other work on the machine can",
        "only slow down; files lost: the worst run; storm: all seeds), so they can differ",
        "from the first runs shown in the tables below.",
        f"Ratio: this checkout / `{old}`: above 1 is worse, except in the storm rows,",
        "where higher is better. Per-run ratios: each run of this checkout against the",
        "baseline's run next to it, the spread the machine's noise gives. \"No worse\"",
        "allows the tolerance shown, relative or absolute, either one: about the spread",
        "seen when this checkout is measured against itself (`--baseline HEAD`);",
        "counts (files lost, wake-ups, converged runs) get none.",
        "",
        f"| measure | this checkout | {old} | ratio | per-run ratios | tolerance | no worse |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(row for _, row, _ in rows),
        "",
        ("No worse than the baseline on every measure."
         if not worse else "**Worse than the baseline:** " + ", ".join(worse) + "."),
        "",
    ]
    return lines


def pooled_percentile(runs: list[dict[str, Any]], pct: float) -> float | None:
    """The nearest-rank percentile of the latencies of all ``runs`` together."""
    ordered: list[float] = sorted(v for r in runs for v in r["latencies_ms"])
    if not ordered:
        return None
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def seconds3(value: float) -> str:
    return f"{value:.3f} s"


def count(value: float) -> str:
    return f"{value:,.0f}"


def percent(value: float) -> str:
    return f"{value:.2%}"


SECTIONS = {"startup": startup, "latency": latency, "burst": burst, "storm": storm, "idle": idle}


# ---------------------------------------------------------------------- plot


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, str, dict[str, float | None], bool]] = []
    if "startup" in results:
        panels.append(("startup, median", "s", {t: d["median_s"]
                       for t, d in results["startup"].items()}, False))
    if "latency" in results:
        lat = results["latency"]
        panels.append(("latency p50", "ms (log)", {t: d["p50_ms"] for t, d in lat.items()}, True))
        panels.append(("latency p99", "ms (log)", {t: d["p99_ms"] for t, d in lat.items()}, True))
    if "burst" in results:
        b = results["burst"]
        panels.append((f"burst: lost of {next(iter(b.values()))['files']:,}", "files",
                       {t: d["lost"] for t, d in b.items()}, False))
    if "storm" in results:
        panels.append(("storm: renames reported as moves", "%",
                       {t: None if d["move_rate"] is None else d["move_rate"] * 100
                        for t, d in results["storm"].items()}, False))
    if "idle" in results:
        panels.append(("idle: wake-ups", "count (log)",
                       {t: d["wakeups"] for t, d in results["idle"].items()}, True))
    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, unit, values, log) in zip(axes.flat, panels, strict=False):
        bar(ax, title, unit, values, log)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def bar(ax: Any, title: str, unit: str, values: dict[str, float | None], log: bool) -> None:
    names = [short(t) for t in values]
    heights = [v or 0.0 for v in values.values()]
    colors = ["#2a7ab9" if t == "crosswatch" else "#8fbfe0" if t.startswith("crosswatch@")
              else "#9a9a9a" for t in values]
    bars = ax.bar(names, heights, color=colors)
    for rect, value in zip(bars, values.values(), strict=True):
        label = "—" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
        ax.annotate(label, (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom", fontsize=8)
    if log:  # symmetric log: zeros stay on the chart
        ax.set_yscale("symlog", linthresh=1.0 if unit.startswith("count") else 0.1)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=8)


# ---------------------------------------------------------------------- write


def write(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    plot(results, png)
    lines = intro(results, png.name) + goals(results)
    if "baseline" in results:
        lines += comparison(results)
    for name, section in SECTIONS.items():
        if name in results:
            lines += section(results[name], results["sizes"])
    page = out.read_text() if out.exists() else ""
    for begin, end in KEPT:  # the sections other scripts write
        kept = _section(page, begin, end)
        if kept is not None:
            lines += ["", kept]
    out.write_text("\n".join(lines).rstrip() + "\n")


def _section(page: str, begin: str = SECTION_BEGIN, end: str = SECTION_END) -> str | None:
    """The section of ``page`` between markers ``begin`` and ``end``, markers included."""
    first, last = page.find(begin), page.find(end)
    if first < 0 or last < first:
        return None
    return page[first : last + len(end)]


def put_section(
    out: Path, lines: list[str], *, begin: str = SECTION_BEGIN, end: str = SECTION_END
) -> None:
    """Put a section (the slow-consumer one by default) into ``out``, replacing the
    one it has between the same markers."""
    page = out.read_text() if out.exists() else ""
    section = "\n".join([begin, *lines, end])
    old = _section(page, begin, end)
    page = page.replace(old, section) if old is not None else page.rstrip() + "\n\n" + section
    out.write_text(page.rstrip() + "\n")

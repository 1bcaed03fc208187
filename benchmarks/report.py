"""The results as a markdown page and a PNG plot; every number comes from the run."""

from __future__ import annotations

import datetime
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


def ms(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} ms"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def table(data: dict[str, Any], rows: Sequence[Row]) -> list[str]:
    tools = list(data)
    lines = ["| | " + " | ".join(LABELS[t] for t in tools) + " |",
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
            lines.append(f"{LABELS[tool]} raised while being stopped, after the comparison, in "
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
    names = [SHORT.get(t, t) for t in values]
    heights = [v or 0.0 for v in values.values()]
    colors = ["#2a7ab9" if t == "crosswatch" else "#9a9a9a" for t in values]
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
    for name, section in SECTIONS.items():
        if name in results:
            lines += section(results[name], results["sizes"])
    kept = _section(out.read_text()) if out.exists() else None
    if kept is not None:
        lines += ["", kept]
    out.write_text("\n".join(lines).rstrip() + "\n")


def _section(page: str) -> str | None:
    """The slow-consumer section of ``page``, markers included, if it has one."""
    begin, end = page.find(SECTION_BEGIN), page.find(SECTION_END)
    if begin < 0 or end < begin:
        return None
    return page[begin : end + len(SECTION_END)]


def put_section(out: Path, lines: list[str]) -> None:
    """Put the slow-consumer section into ``out``, replacing the one it has."""
    page = out.read_text() if out.exists() else ""
    section = "\n".join([SECTION_BEGIN, *lines, SECTION_END])
    old = _section(page)
    page = page.replace(old, section) if old is not None else page.rstrip() + "\n\n" + section
    out.write_text(page.rstrip() + "\n")

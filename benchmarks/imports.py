"""How long a program waits for the import of a watcher: crosswatch against watchdog and watchfiles.

    python benchmarks/imports.py [--runs N] [--out PAGE]

Each import runs in a fresh interpreter (``python -c``), timed inside it from just
before the import statement to just after, so that the interpreter's own start-up
is left out; the median of ``--runs`` (the order of the statements rotated from run
to run). Two statements are timed for crosswatch: ``import crosswatch``, which loads
what every program touches (the events and the errors), and ``from crosswatch import
watch``, which loads the watcher, its engine and the plugin machinery as well. The
figures go into a section of ``docs/benchmarks.md`` (``--out``), which ``run.py`` keeps.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from report import IMPORTS_BEGIN, IMPORTS_END, put_section

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "docs" / "benchmarks.md"
STATEMENTS = (
    "import crosswatch",
    "from crosswatch import watch",
    "import watchdog.observers",
    "import watchfiles",
)
TIMED = (
    "import time; t = time.perf_counter(); {statement}; "
    "print(time.perf_counter() - t)"
)


def once(statement: str) -> float:
    """Seconds one import takes in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", TIMED.format(statement=statement)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def measure(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in STATEMENTS}
    for i in range(runs):
        shift = i % len(STATEMENTS)
        for statement in STATEMENTS[shift:] + STATEMENTS[:shift]:
            times[statement].append(once(statement))
    return times


def section(times: dict[str, list[float]], runs: int) -> list[str]:
    medians = {s: statistics.median(v) for s, v in times.items()}
    base = medians["import watchdog.observers"]
    lines = [
        "## Import",
        "",
        f"`python benchmarks/imports.py --runs {runs}`: each statement in a fresh interpreter "
        f"({platform.python_implementation()} {platform.python_version()}), timed inside it, "
        f"median of {runs} runs.",
        "",
        "| statement | median | against `import watchdog.observers` |",
        "| --- | ---: | ---: |",
    ]
    for statement in STATEMENTS:
        ms = medians[statement] * 1000
        lines.append(f"| `{statement}` | {ms:.1f} ms | {medians[statement] / base:.2f}× |")  # noqa: RUF001
    lines += [
        "",
        "`import crosswatch` loads the events and the errors. The watcher, its engine and "
        "the plugin machinery (pluggy, which reads `importlib.metadata`) load on first use, "
        "which `from crosswatch import watch` shows; asyncio only with `awatch`.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="fresh interpreters per statement")
    parser.add_argument("--out", type=Path, default=PAGE, help="page to write the section to")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args(argv)
    times = measure(args.runs)
    if args.json is not None:
        args.json.write_text(json.dumps(times, indent=1) + "\n")
    lines = section(times, args.runs)
    put_section(args.out, lines, begin=IMPORTS_BEGIN, end=IMPORTS_END)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Convergence over many seeds: a diagnostic, not a timed test.

    python benchmarks/convergence.py strict  --seeds 7000-7299
    python benchmarks/convergence.py dense   --seeds 5000-5299
    python benchmarks/convergence.py paused  --seeds 1-20
    python benchmarks/convergence.py replays --seeds 11000-11499

``strict``: an inotify watcher, 10 writer processes for 3 s, a consumer thread
applying every batch to a strict mirror as it arrives, then ``converge()``.
``dense``: the same with 8 writers on 6 names, so that renames chain and collide.
``paused``: the kernel storm with the reader paused (``max_queue=50``) and a burst
of 30,000 files that overflows the kernel queue; it must converge through a rescan.
``replays``: the scripted random replays, read every 1, 3, 7 and 20 operations,
with and without a writer racing new-directory listings.

Prints one line per failure and a summary ``KIND: N of M clean``; exits 1 on any
failure. ``--save DIR`` writes each failure's events and mirror diff to
``DIR/fail-KIND-SEED.txt``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType

from crosswatch import Change, Event, Watcher
from crosswatch.testing import FileOps, GuaranteeError, Mirror, ScriptedBackend, snapshot
from crosswatch.testing._collect import converge
from crosswatch.testing._storm import storm

HERE = os.path.dirname(os.path.abspath(__file__))
REPLAY_TESTS = os.path.join(os.path.dirname(HERE), "tests", "test_engine_random.py")
SHM = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

#: The kernel storm's burst: more files than the kernel queue holds (16,384 by default).
CREATOR = """
import os, sys
for i in range(int(sys.argv[2])):
    open(os.path.join(sys.argv[1], f"f{i}"), "w").close()
"""


# ------------------------------------------------------------------ the record


@dataclass
class Outcome:
    """What one seed (or one replay) gave: failures, and the figures."""

    broken: list[str] = field(default_factory=list)  # guarantees broken, in order
    error: str | None = None  # not converged, or an exception
    events: list[Event] = field(default_factory=list)
    diff: str = ""
    operations: int = 0
    rescans: int = 0

    @property
    def clean(self) -> bool:
        return not self.broken and self.error is None


class RecordingMirror(Mirror):
    """A strict mirror that records every event and every broken guarantee.

    A broken guarantee is noted with the event's index and the event is then applied
    as a lenient mirror would, so that the run goes on and shows what followed.
    """

    def __init__(self, outcome: Outcome, *roots: str) -> None:
        super().__init__(roots, snapshot(*roots), strict=True)
        self.outcome = outcome

    def apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self.outcome.events.append(event)
            try:
                self.apply_one(event)
            except GuaranteeError as exc:
                self.outcome.broken.append(f"event {len(self.outcome.events) - 1}: {exc}")
                self.strict = False
                self.apply_one(event)
                self.strict = True


def settle(outcome: Outcome, mirror: Mirror, run: Callable[[], list[Event]]) -> None:
    """Run ``run`` (a ``converge``); note a mirror that does not equal the disk."""
    try:
        rest = run()
        outcome.rescans = sum(e.kind is Change.RESCAN for e in rest)
    except AssertionError as exc:
        outcome.error = f"not converged: {exc}".splitlines()[0]
    outcome.diff = mirror.diff(snapshot(*mirror.roots))


# ------------------------------------------------------------------ the kinds


def run_storm(seed: int, *, dense: bool) -> Outcome:
    """Writers on a watched tree, every batch applied as it arrives, then converge."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        with Watcher(root, backend="inotify") as w:
            mirror = RecordingMirror(outcome, root)
            stop = threading.Event()
            failed: list[BaseException] = []

            def consume() -> None:
                try:
                    while not stop.is_set():
                        mirror.apply(w.get(timeout=0.05) or [])
                except BaseException as exc:
                    failed.append(exc)

            reader = threading.Thread(target=consume)
            reader.start()
            try:
                if dense:  # 8 writers on 6 names: renames chain and collide
                    outcome.operations = storm(
                        root, processes=8, seconds=3.0, seed=seed, names=6
                    )
                else:
                    outcome.operations = storm(root, processes=10, seconds=3.0, seed=seed)
            finally:
                stop.set()
                reader.join()
            if failed:
                raise failed[0]
            settle(outcome, mirror, lambda: converge(w, mirror, timeout=60))
    return outcome


def run_paused(seed: int) -> Outcome:
    """The kernel storm with the reader paused: the queue overflows, a rescan repairs."""
    outcome = Outcome()
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        root, burst_root = os.path.join(tmp, "root"), os.path.join(tmp, "burst")
        os.mkdir(root)
        os.mkdir(burst_root)
        with Watcher(root, burst_root, backend="inotify", max_queue=50) as w:
            mirror = RecordingMirror(outcome, root, burst_root)
            burst = subprocess.Popen([sys.executable, "-c", CREATOR, burst_root, "30000"])
            try:
                outcome.operations = storm(root, processes=10, seconds=3.0, seed=seed)
            finally:
                if burst.wait(timeout=120) != 0:
                    raise RuntimeError(f"burst failed with exit code {burst.returncode}")
            outcome.operations += 30000
            settle(outcome, mirror, lambda: converge(w, mirror, timeout=60))
        if outcome.error is None and not outcome.rescans:
            outcome.error = "converged without a rescan: the kernel queue did not overflow"
    return outcome


def load_replay_tests() -> ModuleType:
    """``tests/test_engine_random.py``, for its racing backend."""
    spec = importlib.util.spec_from_file_location("_engine_random_tests", REPLAY_TESTS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replay(
    tests: ModuleType, root: str, backend: ScriptedBackend, ops: FileOps, seed: int, batch: int
) -> Outcome:
    """The tests' ``_replay``, with a mirror that records the events and what broke."""
    outcome = Outcome(operations=150)
    mirror = RecordingMirror(outcome, root)
    try:
        tests._replay(root, backend, ops, seed, batch, mirror=mirror)
    except AssertionError:
        disk = snapshot(root)
        outcome.error = "not converged: " + mirror.diff(disk).splitlines()[0]
        outcome.diff = mirror.diff(disk)
    return outcome


def run_replays(seed: int, tests: ModuleType) -> list[tuple[str, Outcome]]:
    """Every batching, racing and not, for one seed."""
    results = []
    for racing in (False, True):
        for batch in (1, 3, 7, 20):
            with tempfile.TemporaryDirectory(dir=SHM) as tmp:
                root = os.path.join(tmp, "root")
                os.mkdir(root)
                ops = FileOps()
                backend = (
                    tests._RacingBackend(root, ops, random.Random(-seed))
                    if racing
                    else ScriptedBackend()
                )
                label = f"batch={batch}{' racing' if racing else ''}"
                try:
                    outcome = replay(tests, root, backend, ops, seed, batch)
                except Exception as exc:
                    outcome = Outcome(error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                    outcome.diff = traceback.format_exc()
                results.append((label, outcome))
    return results


# ------------------------------------------------------------------ the run


def seeds(spec: str) -> list[int]:
    """``A-B`` (inclusive) or ``A,B,C``."""
    if "-" in spec.lstrip("-") and "," not in spec:
        first, last = spec.split("-", 1)
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in spec.split(",")]


def save(directory: str, kind: str, seed: int, label: str, outcome: Outcome) -> None:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"fail-{kind}-{seed}.txt")
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(f"{kind} seed {seed} {label}\n")
        f.write(f"operations {outcome.operations}, events {len(outcome.events)}\n")
        for line in outcome.broken:
            f.write(f"broken: {line}\n")
        if outcome.error:
            f.write(f"error: {outcome.error}\n")
        f.write(f"mirror against the disk at the end:\n{outcome.diff}\n")
        f.write("events:\n")
        for i, event in enumerate(outcome.events):
            f.write(f"{i} {event!r}\n")


def report(kind: str, seed: int, label: str, outcome: Outcome) -> None:
    what = outcome.broken[0] if outcome.broken else outcome.error
    more = f" (+{len(outcome.broken) - 1} more broken)" if len(outcome.broken) > 1 else ""
    also = f"; also {outcome.error}" if outcome.broken and outcome.error else ""
    print(f"FAIL {kind} seed {seed}{' ' + label if label else ''}: {what}{more}{also}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["strict", "dense", "paused", "replays"])
    parser.add_argument("--seeds", required=True, help="A-B (inclusive) or A,B,C")
    parser.add_argument("--save", metavar="DIR", help="write each failure's record here")
    args = parser.parse_args(argv)
    tests = load_replay_tests() if args.kind == "replays" else None
    clean = total = runs = operations = events = rescans = 0
    started = time.monotonic()
    for seed in seeds(args.seeds):
        t0 = time.monotonic()
        if tests is not None:
            results = run_replays(seed, tests)
        else:
            try:
                if args.kind == "paused":
                    outcome = run_paused(seed)
                else:
                    outcome = run_storm(seed, dense=args.kind == "dense")
            except Exception as exc:
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}".splitlines()[0])
                outcome.diff = traceback.format_exc()
            results = [("", outcome)]
        total += 1
        ok = True
        for label, outcome in results:
            runs += 1
            operations += outcome.operations
            events += len(outcome.events)
            rescans += outcome.rescans
            if not outcome.clean:
                ok = False
                report(args.kind, seed, label, outcome)
                if args.save:
                    save(args.save, args.kind, seed, label, outcome)
        clean += ok
        print(
            f"{args.kind} seed {seed}: {'clean' if ok else 'FAILED'}, "
            f"{sum(o.operations for _, o in results)} operations, "
            f"{sum(len(o.events) for _, o in results)} events, "
            f"{sum(o.rescans for _, o in results)} rescans, {time.monotonic() - t0:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    per = f"{runs} runs, " if runs != total else ""
    print(
        f"{args.kind}: {per}{operations} operations, {events} events, {rescans} rescans, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"{args.kind}: {clean} of {total} clean", flush=True)
    return 0 if clean == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

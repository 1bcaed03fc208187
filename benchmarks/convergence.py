"""Convergence over many seeds: a diagnostic, not a timed test.

    python benchmarks/convergence.py strict  --seeds 7000-7299
    python benchmarks/convergence.py dense   --seeds 5000-5299
    python benchmarks/convergence.py paused  --seeds 1-20
    python benchmarks/convergence.py replays --seeds 11000-11499
    python benchmarks/convergence.py writer ROOT SEED SECONDS NAMES   (used by dense)

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
from crosswatch._engine import Engine
from crosswatch._feed import feed
from crosswatch.backend import Observation
from crosswatch.testing import FileOps, GuaranteeError, Mirror, ScriptedBackend, snapshot
from crosswatch.testing._conformance import converge
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


# ------------------------------------------------------------------ writers


def random_operation(rng: random.Random, root: str, ops: FileOps, names: int = 40) -> None:
    """The conformance suite's random operation, on names ``n0`` .. ``n{names-1}``."""
    entries = [root]
    for path, is_dir in snapshot(root).items():
        if is_dir:
            entries.append(path)
    where = rng.choice(entries)
    name = os.path.join(where, f"n{rng.randrange(names)}")
    existing = [p for p in snapshot(root) if not p.startswith(name + os.sep)]
    op = rng.random()
    try:
        if op < 0.3:
            ops.write(name, b"x" * rng.randrange(10), append=rng.random() < 0.5)
        elif op < 0.45:
            ops.mkdir(name)
        elif op < 0.75 and existing:
            src = rng.choice(existing)
            if not name.startswith(src + os.sep):
                ops.rename(src, name)
        elif existing:
            ops.rmtree(rng.choice(existing))
    except OSError:
        pass  # a collision with what is there: the operation simply did not happen


def write(root: str, seed: int, seconds: float, names: int) -> int:
    """One writer: random operations under ``root`` for ``seconds``; returns the count."""
    rng = random.Random(seed)
    ops = FileOps()
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        random_operation(rng, root, ops, names)
        count += 1
    return count


def dense_storm(root: str, *, processes: int, seconds: float, seed: int, names: int) -> int:
    """``processes`` writers of this script on ``root``; returns the operations made."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "writer",
                root,
                str(seed * 1000 + i),
                str(seconds),
                str(names),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"writer failed with exit code {proc.returncode}")
        total += int(out.strip() or 0)
    return total


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
                if dense:
                    outcome.operations = dense_storm(
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


def replay(root: str, backend: ScriptedBackend, ops: FileOps, seed: int, batch: int) -> Outcome:
    """``_replay`` of the tests, recording the events: 150 operations, read every
    ``batch`` of them through ``feed``; the strict mirror must end equal to the disk."""
    outcome = Outcome(operations=150)
    engine = Engine(pair_wait=0.0)
    engine.add_root(root, backend)
    ops.attach(backend)
    mirror = RecordingMirror(outcome, root)
    rng = random.Random(seed)

    def read(observations: list[Observation]) -> None:
        feed(engine, backend, observations)
        engine.expire(float("inf"))
        mirror.apply(engine.take())

    try:
        for n in range(1, 151):
            random_operation(rng, root, ops)
            if n % batch == 0:
                read(list(backend.read()))
        more = list(backend.read())
        while True:  # until nothing is left unread (a racing backend may queue more)
            read(more)
            more = list(backend.read())
            if not more:
                break
    finally:
        backend.close()
    disk = snapshot(root)
    if mirror.entries != disk:
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
                    outcome = replay(root, backend, ops, seed, batch)
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
    if argv[:1] == ["writer"]:
        root, writer_seed, seconds, names = argv[1:5]
        print(write(root, int(writer_seed), float(seconds), int(names)))
        return 0
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

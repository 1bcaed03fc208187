"""A storm of random file operations from several processes, for convergence tests.

``python -m crosswatch.testing._storm ROOT SEED SECONDS [NAMES]`` runs one writer;
use :func:`storm` to run several at once and wait for them.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from .._events import Event
from .._watch import Watcher
from ._collect import converge
from ._mirror import Mirror
from ._operations import random_operation
from ._scripted import FileOps


def write_storm(
    root: str, seed: int, seconds: float, names: int = 40, *, respell: bool = False
) -> int:
    """Random creates, writes, mkdirs, renames and deletes under ``root``; returns the count.

    ``names``: how many entry names the operations choose from; ``respell``: paths in
    random cases (see random_operation).
    """
    rng = random.Random(seed)
    ops = FileOps()
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        random_operation(rng, root, ops, names, respell=respell)
        count += 1
    return count


def storm(
    root: str, *, processes: int, seconds: float, seed: int, names: int = 40,
    respell: bool = False,
) -> int:
    """Run ``processes`` writers on ``root`` for ``seconds``; returns the operations made."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "crosswatch.testing._storm", root, str(seed * 1000 + i),
             str(seconds), str(names), "respell" if respell else "exact"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"storm writer failed with exit code {proc.returncode}")
        total += int(out.strip() or 0)
    return total


@contextlib.contextmanager
def reading(watcher: Watcher, *, paused: bool = False) -> Iterator[list[Event]]:
    """The events ``watcher`` delivers while the block runs, read on a thread of their
    own (kept up with); ``paused``: none read, the list stays empty."""
    consumed: list[Event] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            batch = watcher.get(timeout=0.05)
            if batch:
                consumed.extend(batch)

    reader = threading.Thread(target=consume)
    if not paused:
        reader.start()
    try:
        yield consumed
    finally:
        stop.set()
        if not paused:
            reader.join()


def storm_while_reading(
    watcher: Watcher, root: str, *, seed: int, names: int = 40, respell: bool = False
) -> tuple[int, list[Event]]:
    """Four writers storm ``root`` for 3 s while ``watcher``'s events are read, kept
    up with; (operations, the events read meanwhile)."""
    with reading(watcher) as consumed:
        ops = storm(root, processes=4, seconds=3.0, seed=seed, names=names, respell=respell)
    return ops, consumed


def storm_and_converge(
    watcher: Watcher, root: str, *, seed: int, timeout: float = 30.0, settle: float = 0.3,
    respell: bool = False,
) -> tuple[int, list[Event]]:
    """:func:`storm_while_reading`, whose events a strict mirror takes; then the mirror
    must equal the disk. (operations, events). ``respell``: the writers spell paths in
    random cases (see random_operation)."""
    mirror = Mirror.of(root)  # strict: duplicates or bad order fail at once
    ops, consumed = storm_while_reading(watcher, root, seed=seed, respell=respell)
    mirror.apply(consumed)
    converge(watcher, mirror, timeout=timeout, settle=settle)
    return ops, consumed


if __name__ == "__main__":
    names = int(sys.argv[4]) if len(sys.argv) > 4 else 40
    respell = len(sys.argv) > 5 and sys.argv[5] == "respell"
    print(write_storm(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), names, respell=respell))

"""Writer processes: they change the watched tree, never in the watcher's process.

    python benchmarks/writers.py latency TARGET COUNT INTERVAL_S
    python benchmarks/writers.py burst DIR COUNT
    python benchmarks/writers.py storm ROOT SEED SECONDS OPS_PER_S

Each prints one JSON object on stdout: the wall-clock times (``time.time_ns``) of the
writes for ``latency``, the start and end of the burst, or the operations made and
every rename that succeeded for ``storm`` (source, destination, when, and the inode
of the entry renamed: see ``renames.py``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time

#: Names the storm writers pick from: few enough that they collide with each other.
STORM_NAMES = 20


def latency(target: str, count: int, interval: float) -> dict[str, object]:
    """Append one line to ``target`` every ``interval`` s; the time is read just before."""
    fd = os.open(target, os.O_WRONLY | os.O_APPEND)
    times: list[int] = []
    try:
        start = time.monotonic() + interval
        for i in range(count):
            _sleep_until(start + i * interval)
            times.append(time.time_ns())
            os.write(fd, b"x\n")
    finally:
        os.close(fd)
    return {"writes": times}


def burst(directory: str, count: int) -> dict[str, object]:
    """Create ``count`` empty files in ``directory`` as fast as possible."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    start = time.time_ns()
    for i in range(count):
        os.close(os.open(os.path.join(directory, f"f{i:06d}"), flags, 0o644))
    return {"start": start, "end": time.time_ns()}


def storm(root: str, seed: int, seconds: float, rate: float) -> dict[str, object]:
    """Random creates, appends, mkdirs, renames, deletes and rmdirs at ``rate`` per second."""
    rng = random.Random(seed)
    renames: list[tuple[str, str, int, int | None]] = []
    ops = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        _sleep_until(start + ops / rate)
        began = time.time_ns()
        moved = _random_operation(rng, root)
        if moved is not None:
            renames.append((moved[0], moved[1], began, moved[2]))
        ops += 1
    return {"ops": ops, "renames": renames}


def _random_operation(rng: random.Random, root: str) -> tuple[str, str, int | None] | None:
    """One operation; returns (src, dst, inode) if it was a rename that took place."""
    entries = _entries(root)
    dirs = [root] + [p for p, is_dir in entries.items() if is_dir]
    name = os.path.join(rng.choice(dirs), f"n{rng.randrange(STORM_NAMES)}")
    files = [p for p, is_dir in entries.items() if not is_dir]
    op = rng.random()
    try:
        if op < 0.25:
            with open(name, "ab") as f:
                f.write(b"x" * rng.randrange(1, 10))
        elif op < 0.40:
            os.mkdir(name)
        elif op < 0.70 and entries:
            src = rng.choice(list(entries))
            if src != name and not name.startswith(src + os.sep):
                return src, name, _rename(src, name)
        elif op < 0.85 and files:
            os.unlink(rng.choice(files))
        elif len(dirs) > 1:
            shutil.rmtree(rng.choice(dirs[1:]))
    except OSError:
        pass  # another writer got there first: the operation did not happen
    return None


def _rename(src: str, dst: str) -> int | None:
    """Rename; the inode of the entry moved, or None if another writer may have
    put another entry at ``src`` or ``dst`` in the middle."""
    fd = os.open(src, os.O_PATH | os.O_NOFOLLOW)
    try:
        inode = os.fstat(fd).st_ino
        os.rename(src, dst)
    finally:
        os.close(fd)
    try:
        return inode if os.lstat(dst).st_ino == inode else None
    except OSError:
        return None  # renamed on or removed already


def _entries(root: str) -> dict[str, bool]:
    """path -> is_dir for everything below ``root``, read now."""
    out: dict[str, bool] = {}
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    is_dir = entry.is_dir(follow_symlinks=False)
                    out[entry.path] = is_dir
                    if is_dir:
                        stack.append(entry.path)
        except OSError:
            continue  # removed or renamed by another writer meanwhile
    return out


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "latency":
        result = latency(args[0], int(args[1]), float(args[2]))
    elif mode == "burst":
        result = burst(args[0], int(args[1]))
    elif mode == "storm":
        result = storm(args[0], int(args[1]), float(args[2]), float(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: use latency, burst or storm")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Cost of one polling tick per entry, against a bare lstat walk of the same tree.

    python benchmarks/polling_cost.py [--dirs 200] [--files 100] [--dir /dev/shm]

Prints a markdown table: a tick over an unchanged tree (one lstat per entry, no
listing), a tick after every directory changed (listing again), and a plain
``os.lstat`` of every entry for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from crosswatch._engine import Engine
from crosswatch._polling import PollingBackend
from crosswatch.backend import DirDirty


def build(root: str, dirs: int, files: int) -> int:
    for d in range(dirs):
        path = os.path.join(root, f"d{d}")
        os.mkdir(path)
        for f in range(files):
            with open(os.path.join(path, f"f{f}"), "w") as fh:
                fh.write("x")
    return dirs * (files + 1)


def lstat_all(root: str) -> None:
    for d in os.listdir(root):
        path = os.path.join(root, d)
        os.lstat(path)
        for f in os.listdir(path):
            os.lstat(os.path.join(path, f))


def best(fn: object, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        entries = build(root, args.dirs, args.files)
        backend = PollingBackend()
        engine = Engine()
        engine.add_root(root, backend)
        time.sleep(1.1)  # past the racy window, so unchanged directories are not re-listed
        tick = [DirDirty(root, "", recursive=True)]
        engine.apply(backend, tick)

        def quiet() -> None:
            engine.apply(backend, tick)
            assert not engine.take()

        def touched() -> None:
            for d in range(args.dirs):  # every directory's mtime moves: all are listed
                os.utime(os.path.join(root, f"d{d}"), ns=(0, time.time_ns() - 5_000_000_000))
            engine.apply(backend, tick)
            engine.take()

        results = [
            ("polling tick, nothing changed", best(quiet)),
            ("polling tick, every directory re-listed", best(touched)),
            ("bare lstat of every entry (for scale)", best(lambda: lstat_all(root))),
        ]
        backend.close()
    print(f"| {entries:,} entries on {args.dir or 'the default temp dir'} | per tick | per entry |")
    print("| --- | --- | --- |")
    for name, seconds in results:
        print(f"| {name} | {seconds * 1000:.1f} ms | {seconds / entries * 1e6:.2f} µs |")


if __name__ == "__main__":
    main()

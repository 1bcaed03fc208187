"""What the tests of following a published tree share: a publisher and a
follower each in a process of its own, storms beside them, and a publisher on
the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats

from crosswatch import Follower
from crosswatch._publish import apublish
from crosswatch.testing import snapshot
from crosswatch.testing._follower import load
from crosswatch.testing._storm import storm


class Publishing:
    """``crosswatch publish`` in a process of its own."""

    def __init__(self, root: str, url: str, stream: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crosswatch", "publish", root, "--to", url, "--stream",
             stream, *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr, lines))
        self._reader.start()
        try:
            line = lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise AssertionError("the publisher did not begin in 60 s") from None
        assert "publishing to" in line, line
        self.id = line.rsplit(" as root ", 1)[1].strip()

    @staticmethod
    def _read(stream: Any, lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self._reader.join()


@contextlib.contextmanager
def publishing(root: str, url: str, stream: str, *extra: str) -> Iterator[Publishing]:
    pub = Publishing(root, url, stream, *extra)
    try:
        yield pub
    finally:
        pub.stop()


def follower(url: str, stream: str, root_id: str, state: str,
             durable: str | None = None) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "crosswatch.testing._follower", url, stream, root_id, state]
    return subprocess.Popen(argv + ([durable] if durable else []), stdin=subprocess.DEVNULL)


def converged(state: str, root: str, procs: list[subprocess.Popen[bytes]],
              timeout: float = 60.0) -> dict[str, Any]:
    """The follower's state once its mirror equals the tree (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    want = snapshot(root)
    while True:
        for proc in procs:
            assert proc.poll() is None, f"the follower exited with {proc.returncode}"
        got = load(state)
        if got is not None and got["entries"] == want:
            return got
        if time.monotonic() > deadline:
            have = {} if got is None else got["entries"]
            extra = sorted(set(have) - set(want))[:5]
            missing = sorted(set(want) - set(have))[:5]
            raise AssertionError(f"no convergence: extra {extra}, missing {missing}; "
                                 f"resyncs {got and got['resyncs']}, at {got and got['position']}")
        time.sleep(0.2)
        want = snapshot(root)


def stopped(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def seed_tree(root: str) -> None:
    for d in ("a", "a/b", "c"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for f in ("a/x", "a/b/y", "z"):
        Path(root, f).write_text("x")


# --------------------------------------------------------------------------- storms


@contextlib.contextmanager
def storming(root: str, *, seconds: float, seed: int) -> Iterator[threading.Thread]:
    """Three writer processes on ``root`` for ``seconds``, while the block runs;
    waited for at its end."""
    writers = threading.Thread(target=storm, args=(root,),
                               kwargs={"processes": 3, "seconds": seconds, "seed": seed})
    writers.start()
    try:
        yield writers
    finally:
        writers.join()


@contextlib.asynccontextmanager
async def publishing_here(url: str, root: str, stream: str,
                           baseline_every: int) -> Any:
    """A publisher of ``root`` on this loop, one batch per change (no debounce); its
    root's id."""
    stop, ready = asyncio.Event(), asyncio.Event()
    ids: dict[str, str] = {}

    def on_ready(p: Any) -> None:
        ids.update(p.ids)
        ready.set()

    task = asyncio.create_task(apublish(root, to=url, stream=stream, stop_event=stop,
                                        baseline_every=baseline_every, on_ready=on_ready,
                                        debounce=0))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield ids[root]
    finally:
        stop.set()
        await task


async def write_files(root: str, prefix: str, count: int) -> None:
    for i in range(count):
        Path(root, f"{prefix}{i}").write_text("x")
        await asyncio.sleep(0.03)
    await asyncio.sleep(0.5)


async def drop_after(url: str, stream: str, position: int) -> None:
    """Remove the stream's next message after ``position``, as its limits would."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        for seq in range(position + 1, info.state.last_seq + 1):
            try:
                await js.delete_msg(stream, seq)
                return
            except Exception:
                continue  # that one is gone already
    finally:
        await nc.close()


async def until_quiet(f: Follower, quiet: float = 1.5) -> AsyncIterator[list[Any]]:
    """The follower's batches until none came for ``quiet`` seconds."""
    batches = f.__aiter__()
    while True:
        try:
            yield await asyncio.wait_for(anext(batches), quiet)
        except TimeoutError:
            return

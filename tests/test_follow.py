"""Following a tree from another process through NATS JetStream: the follower's
mirror converges to the tree under storms, across restarts of the follower, of
the publisher and of the server, when it starts late, and when the stream drops
batches."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from remote_kit import (
    Publishing,
    converged,
    drop_after,
    follower,
    publishing,
    publishing_here,
    seed_tree,
    stopped,
    storming,
    until_quiet,
    write_files,
)

from crosswatch import Change, Follower, FollowerGapError
from crosswatch.testing import NatsServer, snapshot
from crosswatch.testing._storm import storm

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="storms run on Linux here")


@pytest.fixture
def root(fast_root: str) -> str:
    """The watched tree, on tmpfs."""
    return fast_root


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_follower_in_another_process_converges_under_a_storm(
    root: str, nats_server: NatsServer, tmp_path: Path, seed: int
) -> None:
    seed_tree(root)
    state = str(tmp_path / "state.json")
    with publishing(root, nats_server.url, f"storm{seed}") as pub:
        proc = follower(nats_server.url, f"storm{seed}", pub.id, state)
        try:
            ops = storm(root, processes=3, seconds=3.0, seed=seed)
            got = converged(state, root, [proc])
        finally:
            stopped(proc)
    assert ops > 300
    assert proc.returncode == 0
    assert got["resyncs"] == 1  # the baseline at the start, and no place lost


@pytest.mark.slow
def test_a_durable_follower_killed_mid_storm_resumes_and_converges(
    root: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    seed_tree(root)
    state = str(tmp_path / "state.json")
    with publishing(root, nats_server.url, "durable") as pub:
        proc = follower(nats_server.url, "durable", pub.id, state, "mirror")
        try:
            with storming(root, seconds=4.0, seed=7):
                time.sleep(1.5)
                proc.kill()  # mid-batch, maybe: nothing saved, nothing acknowledged
                proc.wait()
                time.sleep(1.0)  # the storm goes on without it
                proc = follower(nats_server.url, "durable", pub.id, state, "mirror")
            got = converged(state, root, [proc])
        finally:
            stopped(proc)
    # It went on where it stopped: no baseline loaded again.
    assert got["resyncs"] == 1


@pytest.mark.slow
def test_a_publisher_killed_and_started_again_makes_the_follower_resync(
    root: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    seed_tree(root)
    state = str(tmp_path / "state.json")
    pub = Publishing(root, nats_server.url, "restart")
    proc = follower(nats_server.url, "restart", pub.id, state)
    try:
        with storming(root, seconds=4.0, seed=11):
            time.sleep(1.5)
            pub.kill()  # changes made now are seen by no one
            time.sleep(0.5)
            pub = Publishing(root, nats_server.url, "restart")
        got = converged(state, root, [proc])
    finally:
        pub.stop()
        stopped(proc)
    assert got["resyncs"] == 2  # a new epoch: the follower said so and started again


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backlog", "resyncs"),
    [pytest.param(None, 1, id="the-backlog-covers-it"),
     pytest.param(2000, 2, id="past-the-backlog-a-new-epoch")],
)
def test_the_server_stopped_and_started_again_mid_storm(
    root: str, tmp_path: Path, backlog: int | None, resyncs: int
) -> None:
    seed_tree(root)
    state = str(tmp_path / "state.json")
    extra = [] if backlog is None else ["--max-backlog", str(backlog)]
    with NatsServer() as server, publishing(root, server.url, "outage", *extra) as pub:
        proc = follower(server.url, "outage", pub.id, state)
        try:
            with storming(root, seconds=5.0, seed=5):
                time.sleep(1.5)
                server.stop()  # the storm goes on; both ends lose their connection
                time.sleep(2.0)
                server.start()
            got = converged(state, root, [proc])
            assert pub.proc.poll() is None, "the publisher gave up"
        finally:
            stopped(proc)
    assert got["resyncs"] == resyncs


def test_a_follower_started_late_catches_up_from_the_newest_baseline(
    root: str, nats_server: NatsServer
) -> None:
    async def go() -> list[list[Any]]:
        async with publishing_here(nats_server.url, root, "late", 20) as rid:
            for i in range(100):  # about one batch each: "an hour" of batches
                Path(root, f"f{i}").write_text("x")
                if i % 3 == 0 and i:
                    os.unlink(os.path.join(root, f"f{i - 1}"))
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)
            batches: list[list[Any]] = []
            async with Follower(nats_server.url, "late", root=rid, wait=0.3) as f:
                mirror: set[str] = set()
                async for batch in f:
                    batches.append(batch)
                    for e in batch:
                        if e.kind is Change.CREATED:
                            mirror.add(e.path)
                        elif e.kind is Change.DELETED:
                            mirror.discard(e.path)
                    if mirror == set(snapshot(root)):
                        break
        return batches

    batches = asyncio.run(asyncio.wait_for(go(), 120))
    assert batches[0][0].kind is Change.RESYNC
    # It began at a baseline near the end, not at the stream's first batch.
    assert len(batches) <= 1 + 20 + 2, len(batches)


@pytest.mark.parametrize("covered", [True, False], ids=["a-newer-baseline", "none"])
def test_batches_the_stream_dropped_are_a_resync_never_a_hole(
    nats_server: NatsServer, root: str, covered: bool
) -> None:
    stream = f"dropped{int(covered)}"

    async def go() -> None:
        every = 5 if covered else 1000
        async with publishing_here(nats_server.url, root, stream, every) as rid:
            await write_files(root, "a", 3)
            async with Follower(nats_server.url, stream, root=rid, durable="d",
                                wait=0.3) as f:
                got = [batch async for batch in until_quiet(f)]
            assert got[0][0].kind is Change.RESYNC
            at = f._stream_pos
            # Away: more batches of the same epoch (a baseline after every 5 of them,
            # or none), the first of them dropped as the stream's limits would.
            await write_files(root, "b", 12)
            await drop_after(nats_server.url, stream, at)
            follower = Follower(nats_server.url, stream, root=rid, durable="d", wait=0.3,
                                baseline_wait=2.0)
            if not covered:
                async with follower as f:
                    with pytest.raises(FollowerGapError, match="no baseline past the gap"):
                        async for _ in f:
                            pass
                return
            async with follower as f:
                again = [batch async for batch in until_quiet(f)]
        resync = [i for i, b in enumerate(again) if b[0].kind is Change.RESYNC]
        assert resync, "the gap was not told"
        mirror: set[str] = set()
        for batch in again[resync[-1]:]:
            mirror |= {e.path for e in batch if e.kind is Change.CREATED}
        assert mirror == set(snapshot(root))

    asyncio.run(asyncio.wait_for(go(), 120))


def test_a_durable_follower_that_took_nothing_starts_again_from_the_baseline(
    nats_server: NatsServer, root: str
) -> None:
    seed_tree(root)

    async def go() -> None:
        async with publishing_here(nats_server.url, root, "untaken", 1000) as rid:
            for _ in range(2):  # the baseline handed over, and nothing acknowledged
                async with Follower(nats_server.url, "untaken", root=rid,
                                    durable="d") as f:
                    first = await anext(f.__aiter__())
                assert first[0].kind is Change.RESYNC
                assert {e.path for e in first[1:]} == set(snapshot(root))

    asyncio.run(asyncio.wait_for(go(), 60))

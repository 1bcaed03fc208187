"""What a follower refuses, and says: a root or a stream never published, a
message of another producer, a damaged baseline, a server that does not answer;
and the follow command, and what a follower leaves behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest
from remote_kit import publishing, publishing_here, seed_tree

import crosswatch
from crosswatch import Change, Follower, MessageError, ServerUnreachableError, UnknownRootError
from crosswatch._publish import subject_of
from crosswatch.testing import NatsServer


@pytest.fixture
def root(fast_root: str) -> str:
    """The watched tree, on tmpfs."""
    return fast_root


def _published(nats_server: NatsServer, root: str, stream: str) -> str:
    """Publish ``root`` until its first baseline is stored; its id."""
    async def go() -> str:
        async with publishing_here(nats_server.url, root, stream, 1000) as rid:
            return str(rid)

    return str(asyncio.run(asyncio.wait_for(go(), 60)))


def test_a_root_never_published_is_named(nats_server: NatsServer, root: str) -> None:
    _published(nats_server, root, "known")

    async def go() -> None:
        with pytest.raises(UnknownRootError, match="never published"):
            await Follower(nats_server.url, "known", root="0123456789abcdef").open()
        with pytest.raises(UnknownRootError, match="no stream 'nothing'"):
            await Follower(nats_server.url, "nothing", root="0123456789abcdef").open()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_message_of_another_producer_is_refused(nats_server: NatsServer, root: str) -> None:
    rid = _published(nats_server, root, "foreign")

    async def go() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().publish(subject_of("foreign", rid), b'{"hello": 1}')
        finally:
            await nc.close()
        async with Follower(nats_server.url, "foreign", root=rid, wait=0.3) as f:
            batches = f.__aiter__()
            assert (await anext(batches))[0].kind is Change.RESYNC
            with pytest.raises(MessageError, match="another producer"):
                await anext(batches)

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_corrupt_baseline_is_refused(nats_server: NatsServer, root: str) -> None:
    rid = _published(nats_server, root, "corrupt")

    async def go() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            store = await nc.jetstream().object_store("crosswatch-corrupt")
            got = await store.get(rid)
            from nats.js.api import ObjectMeta

            damaged = bytearray(got.data or b"")
            damaged[len(damaged) // 2] ^= 0xFF
            await store.put(rid, bytes(damaged),
                            meta=ObjectMeta(name=rid, description=got.info.description))
        finally:
            await nc.close()
        with pytest.raises(MessageError, match=r"baseline of root .* is damaged"):
            await Follower(nats_server.url, "corrupt", root=rid).open()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_follower_told_no_server_answers_at_once(root: str) -> None:
    with NatsServer() as server:
        url = server.url
    with pytest.raises(ServerUnreachableError, match="no NATS server answered"):
        asyncio.run(Follower(url, "s", root="0123456789abcdef",
                             options={"timeout": 2}).open())


def test_the_follow_command_prints_the_tree_then_its_changes(
    nats_server: NatsServer, root: str
) -> None:
    seed_tree(root)
    with publishing(root, nats_server.url, "cli") as pub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crosswatch", "follow", nats_server.url, "--stream", "cli",
             "--root", pub.id], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = [proc.stdout.readline() for _ in range(7)]
            Path(root, "new").write_text("x")
            later = proc.stdout.readline()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
    assert first[0] == f"resync\t{root}/\n"
    assert sorted(first[1:]) == sorted(
        f"created\t{os.path.join(root, p)}{'/' if d else ''}\n"
        for p, d in [("a", True), ("a/b", True), ("c", True), ("a/x", False),
                     ("a/b/y", False), ("z", False)])
    assert later == f"created\t{root}/new\n"
    assert proc.returncode == 143


def test_publisher_and_follower_leave_no_thread_or_descriptor(
    nats_server: NatsServer, root: str, clean: None
) -> None:
    rid = _published(nats_server, root, "closing")
    got = []
    for batch in crosswatch.follow(nats_server.url, "closing", root=rid):
        got.append(batch)
        break  # leaving the loop closes the connection and the loop
    assert got[0][0].kind is Change.RESYNC

"""Publishing a tree's changes to NATS JetStream: the message format, the sink
registry, and a publisher against a real ``nats-server -js`` on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from remote_kit import publishing_here

from crosswatch import (
    Change,
    ConfigError,
    Event,
    MessageError,
    PluginError,
    RemoteAuthError,
    ServerUnreachableError,
    StreamMismatchError,
)
from crosswatch._jetstream import JetStreamSink
from crosswatch._publish import Publisher, apublish, root_id, subject_of, subjects
from crosswatch._sinks import SinkRegistry
from crosswatch._wire import Message, decode, from_wire, to_wire
from crosswatch.testing import NatsServer

# --------------------------------------------------------------------------- the message


def test_a_message_goes_and_comes_back_with_names_that_are_not_utf8() -> None:
    odd = os.fsdecode(b"caf\xe9")
    events = (Event(Change.CREATED, f"d/{odd}"), Event(Change.MOVED, "e", True, "d"),
              Event(Change.MODIFIED, "f", replaced=True), Event(Change.RESCAN, "", True))
    msg = Message("r1", "ep", 3, events)
    data = msg.encode()
    data.decode("ascii")  # escapes only: any transport carries it
    back = decode(data)
    assert back == msg
    assert os.fsencode(back.events[0].path) == b"d/caf\xe9"
    assert msg.msg_id == "r1.ep.3"


def test_paths_travel_relative_to_their_root(tmp_path: Path) -> None:
    root = str(tmp_path / "r")
    ev = Event(Change.MOVED, os.path.join(root, "a", "b"), False, os.path.join(root, "c"))
    wire = to_wire(ev, root)
    assert (wire.path, wire.src_path) == ("a/b", "c")
    assert to_wire(Event(Change.RESCAN, root, True), root).path == ""
    assert from_wire(wire, "/elsewhere") == Event(
        Change.MOVED, os.path.join("/elsewhere", "a", "b"), False, os.path.join("/elsewhere", "c"))


def _body(**changes: Any) -> bytes:
    body = {"schema": "crosswatch.batch", "version": 1, "root": "r", "epoch": "e", "seq": 1,
            "events": [["created", "a", False, None, False]]}
    body.update(changes)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b'{"hello": "world"}', "another producer"),
        (b"[1, 2]", "another producer"),
        (_body(version=2), "version 2"),
        (_body(seq="1"), "damaged"),
        (_body(events=[["created", "a"]]), "damaged"),
        (_body(events=[["exploded", "a", False, None, False]]), "damaged"),
        (_body(events=[["created", "../out", False, None, False]]), "damaged"),
        (_body(events=[["created", "/etc/passwd", False, None, False]]), "damaged"),
        (_body(events=[["moved", "a", False, "a/../../x", False]]), "damaged"),
    ],
    ids=["bytes", "foreign", "list", "newer", "seq-type", "short", "kind", "climbs",
         "absolute", "src-climbs"],
)
def test_a_message_this_cannot_read_is_refused_with_a_reason(data: bytes, says: str) -> None:
    with pytest.raises(MessageError, match=says):
        decode(data)


# --------------------------------------------------------------------------- the registry


def test_an_unknown_scheme_names_the_ones_known() -> None:
    from crosswatch import Plugins

    with pytest.raises(ConfigError, match=r"known: nats://, tls://"):
        Plugins().sinks.sink("kafka://host:9092", "s", {})


def test_two_plugins_may_not_take_one_scheme() -> None:
    registry = SinkRegistry()
    registry("redis", lambda url, stream, options: JetStreamSink(url, stream, options))
    with pytest.raises(PluginError, match="two plugins"):
        registry("redis", lambda url, stream, options: JetStreamSink(url, stream, options))
    with pytest.raises(PluginError, match="URL scheme"):
        registry("Not A Scheme", lambda url, stream, options: JetStreamSink(url, stream, options))


def test_loading_the_plugins_loads_no_network_client() -> None:
    """The NATS plugin is registered with every plugin set, at every watcher's start:
    its client (asyncio, nats-py) loads only when a sink is made."""
    code = ("import sys; from crosswatch import Plugins; Plugins(autoload=False)\n"
            "print(sorted(m for m in ('asyncio', 'nats', 'crosswatch._jetstream') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_root_ids_hide_the_path_and_last_across_runs(tmp_path: Path) -> None:
    assert root_id(str(tmp_path), "host") == root_id(str(tmp_path) + "/.", "host")
    assert root_id(str(tmp_path), "host") != root_id(str(tmp_path), "other-host")
    assert tmp_path.name not in root_id(str(tmp_path), "host")


def test_a_stream_name_nats_cannot_take_is_refused_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="stream name"):
        asyncio.run(apublish(str(tmp_path), to="nats://127.0.0.1:1", stream="a.b"))


# --------------------------------------------------------------------------- against a server


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


async def _stored(url: str, stream: str, subject: str) -> list[tuple[str, Message]]:
    """Every message of ``stream`` on ``subject``, in order, with its Nats-Msg-Id."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        out: list[tuple[str, Message]] = []
        if not info.state.messages:
            return out  # (first_seq is then 0, which is no message's number)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await js.get_msg(stream, seq)
            if raw.subject == subject:
                out.append(((raw.headers or {}).get("Nats-Msg-Id", ""), decode(raw.data or b"")))
        return out
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _sink(url: str, stream: str) -> AsyncIterator[JetStreamSink]:
    """A sink of ``stream``, open while the block runs."""
    sink = JetStreamSink(url, stream, {})
    try:
        await sink.open(subjects(stream))
        yield sink
    finally:
        await sink.close()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not published in time"
        await asyncio.sleep(0.1)


def test_batches_are_stored_in_order_on_the_root_subject(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    subject = subject_of("order", root_id(str(root)))

    async def changes() -> None:
        async with publishing_here(nats_server.url, str(root), "order", 1000):
            for i in range(5):
                (root / f"f{i}").write_text("x")
                await asyncio.sleep(0.2)
            (root / "d").mkdir()
            (root / "f0").rename(root / "d" / "g")

            async def all_there() -> bool:
                got = await _stored(nats_server.url, "order", subject)
                paths = {e.path for _, m in got for e in m.events}
                return {"f4", "d/g"} <= paths

            await _until(all_there)

    _run(changes())
    got = _run(_stored(nats_server.url, "order", subject))
    ids, messages = [i for i, _ in got], [m for _, m in got]
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    assert len({m.epoch for m in messages}) == 1
    assert ids == [m.msg_id for m in messages]
    events = [e for m in messages for e in m.events]
    created = [e.path for e in events if e.kind is Change.CREATED and not e.is_dir]
    assert created[:5] == [f"f{i}" for i in range(5)]
    assert Event(Change.MOVED, "d/g", False, "f0") in events


def test_a_publisher_started_again_begins_a_new_epoch(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    subject = subject_of("epochs", root_id(str(root)))

    def one_run(name: str) -> None:
        async def change() -> None:
            async with publishing_here(nats_server.url, str(root), "epochs", 1000):
                (root / name).write_text("x")

                async def there() -> bool:
                    got = await _stored(nats_server.url, "epochs", subject)
                    return any(e.path == name for _, m in got for e in m.events)

                await _until(there)

        _run(change())

    one_run("first")
    one_run("second")
    messages = [m for _, m in _run(_stored(nats_server.url, "epochs", subject))]
    epochs = list(dict.fromkeys(m.epoch for m in messages))
    assert len(epochs) == 2
    assert next(m.seq for m in messages if m.epoch == epochs[1]) == 1


def test_a_batch_sent_twice_is_stored_once(tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> None:
        async with _sink(nats_server.url, "dedupe") as sink:
            pub = Publisher(sink, "dedupe", [str(tmp_path)], {str(tmp_path): "root1"})
            [msg] = await pub.send([Event(Change.CREATED, str(tmp_path / "a"))])
            # a retry after a lost acknowledgement: the same id
            await sink.send(subject_of("dedupe", "root1"), msg.encode(), msg.msg_id)

    _run(go())
    got = _run(_stored(nats_server.url, "dedupe", subject_of("dedupe", "root1")))
    assert [m.seq for _, m in got] == [1]


def test_events_outside_every_root_are_not_sent(tmp_path: Path, nats_server: NatsServer) -> None:
    async def go() -> list[Message]:
        async with _sink(nats_server.url, "roots") as sink:
            pub = Publisher(sink, "roots", [str(tmp_path / "a"), str(tmp_path / "a" / "b")])
            return await pub.send([Event(Change.CREATED, str(tmp_path / "a" / "x")),
                                   Event(Change.CREATED, str(tmp_path / "a" / "b" / "y")),
                                   Event(Change.CREATED, str(tmp_path / "ab"))])

    sent = _run(go())
    assert sorted((m.root, [e.path for e in m.events]) for m in sent) == sorted(
        [(root_id(str(tmp_path / "a")), ["x"]), (root_id(str(tmp_path / "a" / "b")), ["y"])])


# --------------------------------------------------------------------------- bad input


def test_an_unreachable_server_is_told_at_once(tmp_path: Path) -> None:
    with NatsServer() as server:
        url = server.url
    with pytest.raises(ServerUnreachableError, match="no NATS server answered"):
        _run(apublish(str(tmp_path), to=url, stream="s", options={"timeout": 2}))


def test_wrong_credentials_are_told_without_the_password(tmp_path: Path, clean: None) -> None:
    with NatsServer(user="alice", password="right") as server:
        with pytest.raises(RemoteAuthError, match="refused the credentials") as info:
            _run(apublish(str(tmp_path), to=server.url, stream="s",
                          options={"user": "alice", "password": "wrong-secret"}))
        assert "wrong-secret" not in str(info.value)

        async def with_the_right_ones() -> None:
            sink = JetStreamSink(server.url, "s", {"user": "alice", "password": "right"})
            try:
                await sink.open(subjects("s"))
            finally:
                await sink.close()

        _run(with_the_right_ones())


def test_a_stream_with_other_subjects_is_refused(tmp_path: Path, nats_server: NatsServer) -> None:
    async def make_other() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(name="taken", subjects=["elsewhere.>"])
        finally:
            await nc.close()

    _run(make_other())
    with pytest.raises(StreamMismatchError, match="exists for subjects"):
        _run(apublish(str(tmp_path), to=nats_server.url, stream="taken"))


def test_unknown_sink_options_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown NATS option.*passwd"):
        _run(apublish(str(tmp_path), to="nats://127.0.0.1:1", options={"passwd": "x"}))

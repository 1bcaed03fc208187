"""awatch(): batches for ``async for``, ended by the stream, stop_event, break or
cancellation, with nothing left behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import crosswatch
from crosswatch import Change, ConfigTypeError, Event, WatchPathError
from crosswatch.testing import own_threads

FAST = {"backend": "polling", "poll_interval": 0.05}
WAIT = 30  # seconds: generous, never a measure


async def first(aiter_: object, wanted: Change) -> list[Event]:
    seen: list[Event] = []
    async for batch in aiter_:  # type: ignore[attr-defined]
        seen += batch
        if any(e.kind is wanted for e in batch):
            return seen
    return seen


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, WAIT))  # type: ignore[arg-type]


def test_batches_come_to_async_for(tmp_path: Path, clean: None) -> None:
    async def main() -> list[Event]:
        async with crosswatch.awatch(tmp_path, **FAST) as w:
            (tmp_path / "new").write_text("x")
            return await first(w, Change.CREATED)

    events = run(main())
    assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(tmp_path / "new"))]


def test_stop_event_ends_iteration_and_closes(tmp_path: Path, clean: None) -> None:
    async def main() -> int:
        stop = asyncio.Event()
        batches = 0
        async for _ in crosswatch.awatch(tmp_path, stop_event=stop, **FAST):
            batches += 1
            stop.set()
        return batches

    async def writer_and_main() -> int:
        task = asyncio.ensure_future(main())
        while not task.done():
            (tmp_path / "f").write_text(str(os.urandom(4)))
            await asyncio.sleep(0.05)
        return task.result()

    assert run(writer_and_main()) == 1


def test_a_stop_event_set_while_waiting_wakes_the_iteration(tmp_path: Path, clean: None) -> None:
    async def main() -> list[list[Event]]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return [b async for b in crosswatch.awatch(tmp_path, stop_event=stop, **FAST)]

    assert run(main()) == []


def test_cancelled_while_waiting_it_closes(tmp_path: Path, clean: None) -> None:
    started = asyncio.Event

    async def consume(up: asyncio.Event) -> None:
        async with crosswatch.awatch(tmp_path, **FAST) as w:
            up.set()
            async for _ in w:
                pass

    async def main() -> bool:
        up = started()
        task = asyncio.ensure_future(consume(up))
        await up.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert run(main()) is True


def test_a_bare_async_for_left_by_break_closes_the_watcher(tmp_path: Path, clean: None) -> None:
    async def write() -> None:
        while True:
            (tmp_path / "f").write_text(str(os.urandom(4)))
            await asyncio.sleep(0.05)

    async def main() -> crosswatch.AsyncWatcher:
        aw = crosswatch.awatch(tmp_path, **FAST)
        writer = asyncio.ensure_future(write())
        async for _ in aw:
            break
        writer.cancel()
        for _ in range(50):  # the generator is closed by the loop, soon after
            if aw.watcher.closed and not own_threads():
                break
            await asyncio.sleep(0.02)
        return aw

    aw = run(main())
    assert isinstance(aw, crosswatch.AsyncWatcher)
    assert aw.watcher.closed


def test_the_stream_ends_when_the_root_is_deleted(clean: None) -> None:
    root = tempfile.mkdtemp()

    async def main() -> list[Event]:
        seen: list[Event] = []
        async with crosswatch.awatch(root, **FAST) as w:
            shutil.rmtree(root)
            async for batch in w:
                seen += batch
        return seen

    events = run(main())
    assert events[-1].kind is Change.DELETED
    assert events[-1].path == root


@pytest.fixture
def big_tree() -> Iterator[str]:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    top = tempfile.mkdtemp(dir=base)
    for i in range(300):
        sub = os.path.join(top, f"d{i}")
        os.mkdir(sub)
        for j in range(30):
            os.mkdir(os.path.join(sub, f"e{j}"))
    yield top
    shutil.rmtree(top)


def test_reading_the_tree_in_does_not_block_the_loop(big_tree: str, clean: None) -> None:
    async def main() -> int:
        ticks = 0
        done = False

        async def tick() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        async with crosswatch.awatch(big_tree, **FAST):
            done = True
        await ticker
        return ticks

    assert run(main()) > 0  # the loop ran other work while the 9,300 directories were read


def test_cancelled_while_reading_the_tree_in_it_closes(big_tree: str, clean: None) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(crosswatch.awatch(big_tree, **FAST).start())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_a_start_that_fails_raises_from_async_for(tmp_path: Path, clean: None) -> None:
    async def main() -> None:
        aw = crosswatch.awatch(tmp_path, backend="nonexistent")
        async for _ in aw:
            pass

    with pytest.raises(crosswatch.UnknownBackendError):
        run(main())


def test_arguments_are_checked_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigTypeError, match="takes no callback="):
        crosswatch.awatch(tmp_path, callback=print)
    with pytest.raises(ConfigTypeError, match=r"stop_event= must be None or an asyncio\.Event"):
        crosswatch.awatch(tmp_path, stop_event=5)  # type: ignore[arg-type]
    with pytest.raises(WatchPathError):
        crosswatch.awatch(tmp_path / "missing")
    with pytest.raises(ConfigTypeError, match="recursive"):
        crosswatch.awatch(tmp_path, recursive="yes")


def test_importing_crosswatch_does_not_load_asyncio() -> None:
    import subprocess
    import sys

    code = "import sys, crosswatch; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"

"""awatch() under trio (and anyio on trio): the same batches, ends and clean-up as
under asyncio, with ``trio.run`` inside plain test functions."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import crosswatch
from crosswatch import Change, Event
from crosswatch.testing import own_threads

trio = pytest.importorskip("trio")

from test_async import FAST, WAIT  # noqa: E402

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        with trio.fail_after(WAIT):
            return await main()

    result: T = trio.run(bounded)
    return result


async def keep_writing(path: Path) -> None:
    while True:
        path.write_text(str(os.urandom(4)))
        await trio.sleep(0.05)


def test_batches_come_to_async_for(tmp_path: Path, clean: None) -> None:
    async def main() -> list[Event]:
        seen: list[Event] = []
        async with crosswatch.awatch(tmp_path, **FAST) as w:
            (tmp_path / "new").write_text("x")
            async for batch in w:
                seen += batch
                if any(e.kind is Change.CREATED for e in batch):
                    break
        return seen

    events = run(main)
    assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(tmp_path / "new"))]


def test_stop_event_ends_iteration_and_closes(tmp_path: Path, clean: None) -> None:
    async def main() -> tuple[int, bool]:
        stop = trio.Event()
        batches = 0
        aw = crosswatch.awatch(tmp_path, stop_event=stop, **FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing, tmp_path / "f")
            async for _ in aw:
                batches += 1
                stop.set()
            nursery.cancel_scope.cancel()
        return batches, aw.watcher.closed

    assert run(main) == (1, True)


def test_a_stop_event_set_while_waiting_wakes_the_iteration(tmp_path: Path, clean: None) -> None:
    async def main() -> list[list[Event]]:
        stop = trio.Event()

        async def set_later() -> None:
            await trio.sleep(0.2)
            stop.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(set_later)
            return [b async for b in crosswatch.awatch(tmp_path, stop_event=stop, **FAST)]

    assert run(main) == []


def test_cancelled_while_waiting_it_closes(tmp_path: Path, clean: None) -> None:
    async def main() -> tuple[bool, bool]:
        aw = crosswatch.awatch(tmp_path, **FAST)
        with trio.move_on_after(0.3) as scope:
            async for _ in aw:
                pass
        return scope.cancelled_caught, aw.watcher.closed

    assert run(main) == (True, True)


def test_cancelled_inside_async_with_it_closes(tmp_path: Path, clean: None) -> None:
    async def main() -> bool:
        with trio.move_on_after(0.3):
            async with crosswatch.awatch(tmp_path, **FAST) as w:
                async for _ in w:
                    pass
        return w.watcher.closed

    assert run(main) is True


def test_a_bare_async_for_left_by_break_closes_the_watcher(tmp_path: Path, clean: None) -> None:
    async def main() -> crosswatch.AsyncWatcher:
        aw = crosswatch.awatch(tmp_path, **FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing, tmp_path / "f")
            async for _ in aw:
                break
            nursery.cancel_scope.cancel()
        for _ in range(500):  # trio closes the dropped generator soon after
            if aw.watcher.closed and not own_threads():
                break
            await trio.sleep(0.02)
        return aw

    assert run(main).watcher.closed


def test_cancelled_while_reading_the_tree_in_it_closes(tmp_path: Path, clean: None) -> None:
    for i in range(200):
        for j in range(20):
            os.makedirs(tmp_path / f"d{i}" / f"e{j}")

    async def main() -> tuple[bool, bool]:
        aw = crosswatch.awatch(tmp_path, **FAST)
        with trio.CancelScope() as scope:
            scope.cancel()  # delivered at start()'s first wait, the reading under way
            await aw.start()
        return scope.cancelled_caught, aw.watcher.closed

    assert run(main) == (True, True)


def test_a_batch_after_the_run_ended_is_no_error(tmp_path: Path, clean: None) -> None:
    async def main() -> crosswatch.AsyncWatcher:
        return await crosswatch.awatch(tmp_path, **FAST).start()

    aw = run(main)  # started, never closed: its thread outlives the run
    try:
        (tmp_path / "late").write_text("x")
        for _ in range(1500):
            if aw.watcher.backlog.events:
                break
            threading.Event().wait(0.02)
        assert aw.watcher.backlog.events  # the put told a finished run, and went on
    finally:
        aw.watcher.close()  # raises what stopped the watcher, if anything did


def test_a_start_that_fails_raises_from_async_for(tmp_path: Path, clean: None) -> None:
    async def main() -> None:
        async for _ in crosswatch.awatch(tmp_path, backend="nonexistent"):
            pass

    with pytest.raises(crosswatch.UnknownBackendError):
        run(main)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_anyio(backend: str, tmp_path: Path, clean: None) -> None:
    anyio = pytest.importorskip("anyio")

    async def main() -> list[Event]:
        seen: list[Event] = []
        with anyio.fail_after(WAIT):
            stop = anyio.Event()
            async with crosswatch.awatch(tmp_path, stop_event=stop, **FAST) as w:
                (tmp_path / "new").write_text("x")
                async for batch in w:
                    seen += batch
                    stop.set()
        return seen

    events: Any = anyio.run(main, backend=backend)
    assert [(e.kind, e.path) for e in events] == [(Change.CREATED, str(tmp_path / "new"))]


def test_importing_the_async_api_loads_no_trio_anyio_or_sniffio() -> None:
    code = (
        "import sys, crosswatch, crosswatch._async; "
        "print(sorted({'trio', 'anyio', 'sniffio'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "[]"

"""The FSEvents backend on the real macOS: the conformance suite and a few direct
checks of the door. Skipped elsewhere (the macOS CI job runs them)."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest
from crosswatch_fsevents import FSEventsBackend, _flags
from crosswatch_fsevents._coreservices import SYSTEM, CoreServices

from crosswatch.testing import BackendConformance

pytestmark = pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS (FSEvents)")


class TestFSEvents(BackendConformance):
    backend = FSEventsBackend
    settle = 0.5


def test_the_probe_says_available(tmp_path: Path) -> None:
    probe = FSEventsBackend.probe(str(tmp_path))
    assert probe.available, probe.reason


def test_a_stream_calls_back_with_paths_flags_ids_and_file_ids(tmp_path: Path) -> None:
    door = CoreServices()
    door.load()
    got: list[tuple[list[object], list[int], list[int]]] = []
    lock = threading.Lock()

    def callback(events: list[object], flags: list[int], ids: list[int]) -> None:
        with lock:
            got.append((events, flags, ids))

    real = os.path.realpath(tmp_path)
    queue = door.queue_create("org.crosswatch.fsevents.test")
    stream = door.stream_create(callback, [real], _flags.kFSEventStreamEventIdSinceNow, 0.05,
                                _flags.STREAM_FLAGS)
    assert stream is not None
    door.stream_set_dispatch_queue(stream, queue)
    assert door.stream_start(stream)
    try:
        Path(real, "f").write_text("x")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            door.stream_flush_sync(stream)
            with lock:
                if got:
                    break
            time.sleep(0.05)
    finally:
        door.stream_stop(stream)
        door.stream_invalidate(stream)
        door.stream_release(stream)
        door.queue_sync(queue)
        door.queue_release(queue)
    events, flags, ids = got[0]
    assert len(events) == len(flags) == len(ids)
    first = events[0]
    if door.extended_data():
        assert isinstance(first, dict)
        assert os.fsdecode(first["path"]).startswith(real)
        assert first.get("fileID") == os.lstat(os.path.join(real, "f")).st_ino
    else:
        assert isinstance(first, bytes)
    assert flags[0] & _flags.kFSEventStreamEventFlagItemCreated
    assert door.current_event_id() >= ids[-1] > 0


def test_the_shared_door_loads_once() -> None:
    SYSTEM.load()
    SYSTEM.load()
    assert SYSTEM.unavailable() is None

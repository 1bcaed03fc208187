"""A watcher closed while it starts: it stops quietly, and leaks nothing."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from crosswatch import Watcher
from crosswatch._backend import Handle
from crosswatch._polling import PollingBackend


@pytest.fixture
def root() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield tmp


# ------------------------------------------------------------ close() during start()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


class ClosedAtTheRoot(PollingBackend):
    """Its root's watch has the watcher closed from another thread, then goes on."""

    name = "closed-at-the-root"
    watcher: ClassVar[Watcher | None] = None

    def watch(self, path: str, *, recursive: bool) -> Handle:
        handle = super().watch(path, recursive=recursive)
        w = type(self).watcher
        assert w is not None
        closer = threading.Thread(target=w.close)
        closer.start()
        for _ in range(1000):  # until close() has said so (it then waits for start())
            if w.closed:
                break
            time.sleep(0.01)
        return handle


def test_close_while_starting_stops_the_reading_quietly(root: str) -> None:
    for i in range(50):
        os.makedirs(os.path.join(root, f"d{i}", "sub"))
    before = _fds()
    said: list[str] = []
    w = Watcher(root, backend=ClosedAtTheRoot, on_warning=said.append)
    ClosedAtTheRoot.watcher = w
    assert w.start() is w
    assert w.closed
    assert list(w) == []
    w.close()
    (watched,) = w._engine.watched
    assert len(watched.node.children) == 0  # stopped before the first listing
    assert said == []
    assert _fds() == before


def test_close_before_start_opens_nothing(root: str) -> None:
    before = _fds()
    w = Watcher(root, backend="polling")
    w.close()
    assert w.start() is w
    assert w.backends == {}
    assert list(w) == []
    assert _fds() == before

"""What the fanotify tests share: whether this kernel and user can mark a file system."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from crosswatch_fanotify import FanotifyBackend

from crosswatch.testing import tmpfs


def _unavailable() -> str | None:
    probed = FanotifyBackend.probe(tmpfs() or tempfile.gettempdir())
    return None if probed.available else probed.reason


UNAVAILABLE = _unavailable()


@pytest.fixture
def fanotify() -> None:
    """Skip unless the real kernel API can be used here (root, Linux 5.9, handles)."""
    if UNAVAILABLE is not None:
        pytest.skip(f"fanotify: {UNAVAILABLE}")


@pytest.fixture
def shm(fanotify: None) -> Iterator[str]:
    """A watched root on tmpfs, with room beside it for what is not watched."""
    with tempfile.TemporaryDirectory(dir=tmpfs()) as tmp:
        root = os.path.join(os.path.realpath(tmp), "root")
        os.mkdir(root)
        yield root

"""The conformance suite: the backend on its Linux emulation, and on the real Windows."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pytest
from crosswatch_windows import WindowsBackend
from crosswatch_windows.testing import EmulatedWindows

from crosswatch.testing import BackendConformance


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the emulation stands on inotify")
class TestEmulatedWindows(BackendConformance):
    backend: ClassVar[Any] = EmulatedWindows


@pytest.mark.skipif(sys.platform != "win32", reason="the real ReadDirectoryChangesW")
class TestWindows(BackendConformance):
    backend: ClassVar[Any] = WindowsBackend

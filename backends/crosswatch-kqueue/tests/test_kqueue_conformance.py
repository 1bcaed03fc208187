"""The conformance suite: the kqueue backend on the Linux emulation, and on the real kqueue."""

from __future__ import annotations

import select
import sys

import pytest
from crosswatch_kqueue import KqueueBackend
from crosswatch_kqueue.testing import EmulatedKqueue

from crosswatch.testing import BackendConformance


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the emulation needs inotify")
class TestEmulatedKqueue(BackendConformance):
    backend = EmulatedKqueue


@pytest.mark.skipif(not hasattr(select, "kqueue"), reason="needs macOS or BSD (kqueue)")
class TestKqueue(BackendConformance):
    backend = KqueueBackend

"""The conformance suite, with the FSEvents backend over its Linux emulation."""

from __future__ import annotations

import sys

import pytest
from crosswatch_fsevents.testing import EmulatedFSEvents

from crosswatch.testing import BackendConformance

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the emulation stands on inotify (Linux)")


class TestEmulatedFSEvents(BackendConformance):
    backend = EmulatedFSEvents
    #: Callbacks come after the latency (0.05 s), coalesced: wait past a few windows.
    settle = 0.5

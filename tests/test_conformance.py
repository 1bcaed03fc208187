"""The conformance suite against the built-in backends."""

from __future__ import annotations

from crosswatch import Watcher
from crosswatch.testing import BackendConformance, FileOps, ScriptedBackend


class TestPolling(BackendConformance):
    backend = "polling"


class TestScripted(BackendConformance):
    """The engine's precise path, fed by an emulation of inotify's semantics."""

    backend = ScriptedBackend
    sees_descriptor_ops = False

    def connect(self, watcher: Watcher, ops: FileOps) -> None:
        backend = watcher.backend("scripted")
        assert isinstance(backend, ScriptedBackend)
        ops.attach(backend)

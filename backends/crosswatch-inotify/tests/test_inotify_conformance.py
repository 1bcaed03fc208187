"""The conformance suite, against the real kernel."""

from __future__ import annotations

from crosswatch.testing import BackendConformance


class TestInotify(BackendConformance):
    backend = "inotify"

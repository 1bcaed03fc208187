"""The conformance suite, against the real kernel (as root)."""

from __future__ import annotations

import pytest

from crosswatch.testing import BackendConformance

pytestmark = pytest.mark.usefixtures("fanotify")


class TestFanotify(BackendConformance):
    backend = "fanotify"

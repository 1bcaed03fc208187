"""Suite-wide switches.

``CROSSWATCH_FORCE_PORTABLE=1`` runs every test with the core's portable fallbacks
forced (see ``crosswatch.testing.force_portable``), as on an OS that lacks the
fast paths. Only this file reads it; the core never does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from crosswatch.testing import force_portable, tmpfs

FORCED = os.environ.get("CROSSWATCH_FORCE_PORTABLE") == "1"


def pytest_configure(config: pytest.Config) -> None:
    if FORCED:  # before collection, so that every module sees the fallbacks
        patch = pytest.MonkeyPatch()
        force_portable(patch)
        config.add_cleanup(patch.undo)


def pytest_report_header() -> str | None:
    return "crosswatch: portable fallbacks forced (crosswatch._os)" if FORCED else None


@pytest.fixture
def fast_root() -> Iterator[str]:
    """A fresh directory on tmpfs where there is one (a disk is slow for storms),
    resolved as the OS names it to a backend (macOS: /var is /private/var)."""
    with tempfile.TemporaryDirectory(dir=tmpfs()) as tmp:
        root = os.path.join(os.path.realpath(tmp), "root")
        os.mkdir(root)
        yield root

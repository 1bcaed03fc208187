"""The core's portable fallbacks, forced on an OS that does not need them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .. import _os

if TYPE_CHECKING:
    import pytest


def force_portable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``crosswatch._os`` say what an OS without the fast paths says: no
    ``O_DIRECTORY``, no ``scandir(fd)`` (directories listed by path), selectors
    that take no pipes (the waker a socket pair), listed entries whose stat lacks
    their identity (asked again by path, as on Windows). Whether names fold is the
    file system's, not the OS's: that is tested on a real folding file system
    (:class:`FoldingFS`). Undone with ``monkeypatch``."""
    monkeypatch.setattr(_os, "DIR_FLAGS", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    monkeypatch.setattr(_os, "LISTS_BY_FD", False)
    monkeypatch.setattr(_os, "SELECTS_PIPES", False)
    monkeypatch.setattr(_os, "ENTRY_STAT_IDENTIFIES", False)

"""pytest marks for tests that need something not every OS has, each saying why.

Every test module uses these instead of its own ``skipif``, so a reason is written
once and the tests that depend on a fact are found by the mark's name.
"""

from __future__ import annotations

import os

import pytest

from ._fuse import FoldingFS
from ._platform import BYTE_NAMES, LINUX, POSIX_PERMISSIONS, symlinks_work


def linux_only(why: str) -> pytest.MarkDecorator:
    """Skip off Linux: the test is about ``why`` (inotify, /proc, mounts, ...)."""
    return pytest.mark.skipif(not LINUX, reason=f"Linux only: {why}")


#: Symbolic links made by the test (Windows: only with the privilege).
needs_symlinks = pytest.mark.skipif(
    not symlinks_work(),
    reason="cannot make symbolic links here (on Windows: needs the privilege or developer mode)",
)
#: Names that are not UTF-8: refused by APFS, rewritten by HFS+, impossible on Windows.
needs_byte_names = pytest.mark.skipif(
    not BYTE_NAMES,
    reason="names here must be valid Unicode (macOS: UTF-8 only; Windows: UTF-16)",
)
#: A directory made unreadable with ``chmod``.
needs_posix_permissions = pytest.mark.skipif(
    not POSIX_PERMISSIONS, reason="needs POSIX permissions (chmod decides who reads)"
)
#: Absolute POSIX paths such as a Linux mount table holds (Windows resolves them
#: onto the current drive).
needs_posix_paths = pytest.mark.skipif(
    os.name != "posix", reason="POSIX paths are not absolute on Windows (they resolve onto a drive)"
)
#: A FoldingFS mount (FUSE): Linux, root, and /dev/fuse.
needs_fuse = pytest.mark.skipif(
    FoldingFS.available() is not None, reason=str(FoldingFS.available())
)
#: SIGINT and SIGTERM sent to a child process, and their handlers.
needs_posix_signals = pytest.mark.skipif(
    os.name != "posix", reason="needs POSIX signals (Windows sends no SIGINT or SIGTERM)"
)

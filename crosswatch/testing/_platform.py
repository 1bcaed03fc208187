"""What the OS running the tests can do, in one place, so tests skip or adapt alike.

Facts that tests on macOS, Windows and BSD differ on: which OS this is, whether
names may be any bytes, whether symbolic links can be made, where a tmpfs is, and
how to list this process's open descriptors. The pytest marks built on them are in
``crosswatch.testing._marks``.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import sys
import tempfile
import threading

#: Linux: inotify, ``/proc``, mounts, ``unshare``.
LINUX = sys.platform.startswith("linux")
MACOS = sys.platform == "darwin"
WINDOWS = sys.platform == "win32"
#: May a name be any bytes but ``/`` and NUL? (APFS takes only UTF-8, and HFS+
#: rewrites other bytes; Windows names are UTF-16.)
BYTE_NAMES = not (MACOS or WINDOWS)
#: Do ``chmod`` modes decide who reads a directory? (Windows keeps a read-only flag.)
POSIX_PERMISSIONS = os.name == "posix"
#: Named pipes and Unix-domain socket files (neither is made this way on Windows).
FIFOS = hasattr(os, "mkfifo")
UNIX_SOCKETS = hasattr(socket, "AF_UNIX")
#: Where ``open_fds`` stops looking where the OS lists no descriptors.
_FD_PROBE_LIMIT = 1 << 16


def tmpfs() -> str | None:
    """A directory on tmpfs to make heavy trees in (``/dev/shm``), or ``None`` for
    the usual temporary directory where there is none (macOS, Windows)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


@functools.cache
def symlinks_work() -> bool:
    """Can this process make symbolic links? Tried once: Windows allows them only
    with a privilege or in developer mode."""
    where = tempfile.mkdtemp()
    try:
        os.symlink("target", os.path.join(where, "link"))
    except (OSError, NotImplementedError):
        return False
    else:
        return True
    finally:
        shutil.rmtree(where, ignore_errors=True)


def case_folds(directory: str | os.PathLike[str]) -> bool:
    """Does the file system of ``directory`` find a name under another case (the
    default volumes of macOS and Windows)? Tried with a file made and removed."""
    probe = os.path.join(directory, ".case-probe")
    with open(probe, "x"):
        pass
    try:
        return os.path.exists(os.path.join(directory, ".CASE-PROBE"))
    finally:
        os.unlink(probe)


def own_threads() -> list[threading.Thread]:
    """crosswatch's threads now running (every one is named ``crosswatch…``)."""
    return [t for t in threading.enumerate() if t.name.startswith("crosswatch")]


def open_fds() -> set[int]:
    """This process's open descriptors: from ``/proc/self/fd`` on Linux, else each
    number asked in turn (``fstat``) up to the open-file limit."""
    if os.path.isdir("/proc/self/fd"):
        return {int(n) for n in os.listdir("/proc/self/fd")}
    found = set()
    for fd in range(_fd_limit()):
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.add(fd)
    return found


def _fd_limit() -> int:
    try:
        import resource
    except ImportError:  # Windows: the C runtime's descriptors go up to 8192
        return 8192
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _FD_PROBE_LIMIT if soft == resource.RLIM_INFINITY else min(soft, _FD_PROBE_LIMIT)

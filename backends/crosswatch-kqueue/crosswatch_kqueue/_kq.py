"""The OS calls of the kqueue backend, behind one small object.

Everything the backend asks of the kernel goes through a :class:`KqueueSystem`:
the queue, its kevents, opening and closing the descriptors it watches, and the
open-file limit. The real one is :data:`SYSTEM` (a :class:`System`); a stand-in
with the same methods (the Linux emulation in ``crosswatch_kqueue.testing``, a
test's fake) takes its place as the backend class's ``system``. Nothing here runs
at import: ``select.kqueue`` is looked up when asked for. Listing a directory and
``stat`` are the portable file API and are not part of it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys
from collections.abc import Sequence
from typing import Any, Protocol

#: ``O_EVTONLY`` of macOS's ``fcntl.h``: open for event notification only, so the
#: descriptor does not keep a volume from being unmounted. ``os.O_EVTONLY`` where
#: Python has it.
DARWIN_O_EVTONLY = 0x8000
#: ``O_SYMLINK`` of macOS: open a symbolic link itself rather than where it leads.
DARWIN_O_SYMLINK = 0x200000
#: ``O_PATH`` of FreeBSD 13 and later: with ``O_NOFOLLOW``, opens a link itself, and
#: kevent takes such a descriptor.
FREEBSD_O_PATH = 0x00400000


class Queue(Protocol):
    """A kqueue as :meth:`KqueueSystem.kqueue` returns it."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class KqueueSystem(Protocol):
    """The calls the kqueue backend makes, with the shapes of the real ones."""

    platform: str

    def available(self) -> bool: ...

    def kqueue(self) -> Any: ...

    def kevent(self, ident: int, filter: int, flags: int, fflags: int,
               udata: int = 0) -> Any: ...

    def control(
        self, kq: Any, changes: Sequence[Any] | None, max_events: int, timeout: float | None
    ) -> list[Any]: ...

    def open(self, path: str, dir_fd: int | None = None, *, link: bool = False) -> int: ...

    def close(self, fd: int) -> None: ...

    def getrlimit(self) -> tuple[int, int]: ...

    def setrlimit(self, soft: int, hard: int) -> None: ...

    def maxfilesperproc(self) -> int | None: ...


class System:
    """The kernel as the kqueue backend sees it."""

    platform: str = sys.platform

    def available(self) -> bool:
        """Has this OS kqueue (``select.kqueue``)?"""
        return hasattr(select, "kqueue")

    def kqueue(self) -> Any:
        """A new queue (``select.kqueue()``): ``control``, ``fileno``, ``close``."""
        return select.kqueue()  # type: ignore[attr-defined,unused-ignore]

    def kevent(self, ident: int, filter: int, flags: int, fflags: int, udata: int = 0) -> Any:
        """One change to hand to :meth:`control`."""
        return select.kevent(  # type: ignore[attr-defined,unused-ignore]
            ident, filter, flags, fflags, 0, udata
        )

    def control(
        self, kq: Any, changes: Sequence[Any] | None, max_events: int, timeout: float | None
    ) -> list[Any]:
        """``kevent(2)``: apply ``changes``, return up to ``max_events`` events."""
        return list(kq.control(changes, max_events, timeout))

    def open_flags(self) -> int:
        """Flags to open an entry with: for events only, never following a link,
        never blocking (a FIFO), closed on exec."""
        if self.platform == "darwin":
            base = getattr(os, "O_EVTONLY", DARWIN_O_EVTONLY)
        else:
            base = os.O_RDONLY
        return base | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

    def link_flags(self) -> int | None:
        """Flags that open a symbolic link itself for kevent; None where none do."""
        base = self.open_flags()
        if self.platform == "darwin":  # O_SYMLINK alone never follows the last link
            return (base & ~os.O_NOFOLLOW) | getattr(os, "O_SYMLINK", DARWIN_O_SYMLINK)
        o_path = getattr(os, "O_PATH", FREEBSD_O_PATH if "freebsd" in self.platform else None)
        if o_path is None:
            return None
        return o_path | os.O_NOFOLLOW | os.O_CLOEXEC

    def open(self, path: str, dir_fd: int | None = None, *, link: bool = False) -> int:
        """A descriptor to watch ``path`` through (relative to ``dir_fd`` if given).

        ``link``: a symbolic link is opened itself; where the OS cannot, it fails as a
        link opened with ``O_NOFOLLOW`` does (``ELOOP``).
        """
        flags = self.link_flags() if link else None
        return os.open(path, self.open_flags() if flags is None else flags, dir_fd=dir_fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def getrlimit(self) -> tuple[int, int]:
        """(soft, hard) ``RLIMIT_NOFILE``."""
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)

    def setrlimit(self, soft: int, hard: int) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def maxfilesperproc(self) -> int | None:
        """``kern.maxfilesperproc`` (macOS, FreeBSD) by ``sysctlbyname``; None if unread."""
        if self.platform != "darwin" and "bsd" not in self.platform:
            return None
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            value = ctypes.c_int(0)
            size = ctypes.c_size_t(ctypes.sizeof(value))
            rc = libc.sysctlbyname(
                b"kern.maxfilesperproc", ctypes.byref(value), ctypes.byref(size), None, 0
            )
        except (OSError, AttributeError):
            return None
        return value.value if rc == 0 and value.value > 0 else None


SYSTEM = System()

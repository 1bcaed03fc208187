"""The OS calls of the kqueue backend, behind one small object.

Everything the backend asks of the kernel goes through a :class:`System`: the
queue, its kevents, opening and closing the descriptors it watches, and the
open-file limit. The real one is :data:`SYSTEM`; a stand-in with the same methods
(an emulation, a test's fake) takes its place by being handed to the backend.
Nothing here runs at import: ``select.kqueue`` is looked up when asked for.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys
from collections.abc import Sequence
from typing import Any

#: ``O_EVTONLY`` of macOS's ``fcntl.h``: open for event notification only, so the
#: descriptor does not keep a volume from being unmounted. ``os.O_EVTONLY`` where
#: Python has it.
DARWIN_O_EVTONLY = 0x8000


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

    def open(self, path: str, dir_fd: int | None = None) -> int:
        return os.open(path, self.open_flags(), dir_fd=dir_fd)

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

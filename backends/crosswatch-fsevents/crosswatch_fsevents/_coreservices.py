"""The one door to CoreServices and CoreFoundation: every macOS call goes through here.

The backend holds an instance of :class:`CoreServices` and calls nothing else of
the OS, so a test can hand it another object with the same methods (an FSEvents
emulation). Nothing is loaded at import: :meth:`CoreServices.load` opens the
frameworks through ``ctypes``, and on any other OS it raises
:class:`CoreServicesUnavailable` saying so.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

from crosswatch.backend import WatchError

#: Where the frameworks live on every macOS since 10.x.
CORE_SERVICES = "/System/Library/Frameworks/CoreServices.framework/CoreServices"
CORE_FOUNDATION = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"

#: FSEventStreamCallback(streamRef, clientCallBackInfo, numEvents, eventPaths,
#: eventFlags, eventIds): flags are UInt32, ids UInt64.
CALLBACK = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint32),
    ctypes.POINTER(ctypes.c_uint64),
)


class CoreServicesUnavailable(WatchError):
    """FSEvents cannot be used here (not macOS, or the frameworks did not load)."""


def unavailable() -> str | None:
    """Why FSEvents cannot be used here, or None; cheap, loads nothing."""
    platform: str = sys.platform  # a plain value: the same code is checked for every OS
    return None if platform == "darwin" else "needs macOS (FSEvents)"


class CoreServices:
    """The frameworks, loaded on first use; see the module docstring."""

    def __init__(self) -> None:
        self._cs: Any = None
        self._cf: Any = None

    def load(self) -> None:
        """Open CoreServices and CoreFoundation; raise a clear error where they are not."""
        if self._cs is not None:
            return
        reason = unavailable()
        if reason is not None:
            raise CoreServicesUnavailable(
                f"the fsevents backend {reason}; on {sys.platform} use another backend "
                "(crosswatch backends lists them)"
            )
        try:
            cs = ctypes.cdll.LoadLibrary(CORE_SERVICES)
            cf = ctypes.cdll.LoadLibrary(CORE_FOUNDATION)
        except OSError as exc:
            raise CoreServicesUnavailable(
                f"the CoreServices framework did not load ({exc}); use backend='kqueue' "
                "or 'polling'"
            ) from None
        self._declare(cs, cf)
        self._cs, self._cf = cs, cf

    @staticmethod
    def _declare(cs: Any, cf: Any) -> None:
        vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
        for lib, name, restype, argtypes in (
            (cs, "FSEventStreamCreate", vp,
             [vp, CALLBACK, vp, vp, u64, ctypes.c_double, u32]),
            (cs, "FSEventStreamSetDispatchQueue", None, [vp, vp]),
            (cs, "FSEventStreamStart", ctypes.c_bool, [vp]),
            (cs, "FSEventStreamFlushSync", None, [vp]),
            (cs, "FSEventStreamStop", None, [vp]),
            (cs, "FSEventStreamInvalidate", None, [vp]),
            (cs, "FSEventStreamRelease", None, [vp]),
            (cs, "FSEventStreamGetLatestEventId", u64, [vp]),
            (cf, "CFRelease", None, [vp]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes

    def _need(self) -> Any:
        if self._cs is None:
            self.load()
        return self._cs

    def stream_start(self, stream: int) -> bool:
        return bool(self._need().FSEventStreamStart(stream))

    def stream_flush(self, stream: int) -> None:
        self._need().FSEventStreamFlushSync(stream)

    def stream_latest_id(self, stream: int) -> int:
        return int(self._need().FSEventStreamGetLatestEventId(stream))

    def stream_close(self, stream: int) -> None:
        """Stop, invalidate and release a stream: every way out ends here."""
        cs = self._need()
        cs.FSEventStreamStop(stream)
        cs.FSEventStreamInvalidate(stream)
        cs.FSEventStreamRelease(stream)

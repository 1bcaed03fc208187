"""The one door to CoreServices, CoreFoundation and libdispatch: every macOS call.

:class:`FSEventsBackend.system <crosswatch_fsevents.FSEventsBackend>` is an object
with the methods of :class:`CoreServicesAPI`, one per C call the stream needs
and in that call's shape (the same arguments, the same results: a stream that
could not be created is ``None``, ``FSEventStreamStart`` answers a bool). The real
one is :data:`SYSTEM`; an emulation (``crosswatch_fsevents.testing``) takes its
place in a subclass. Nothing is loaded at import: :meth:`CoreServices.load` opens
the frameworks through ``ctypes``, and off macOS it raises
:class:`CoreServicesUnavailable` saying so.

The callback's trampoline turns the CF arrays it is handed into Python lists: the
paths as ``bytes`` (their file-system representation) or, with extended data,
dictionaries ``{"path": bytes, "fileID": int}``; an item of another CF type, or one
that cannot be read, is ``None``, which the decoder refuses as garbled.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from crosswatch.backend import WatchError

#: Where the libraries live on every macOS since 10.x.
CORE_SERVICES = "/System/Library/Frameworks/CoreServices.framework/CoreServices"
CORE_FOUNDATION = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
LIB_SYSTEM = "/usr/lib/libSystem.B.dylib"  # libdispatch

#: FSEventStreamCallback(streamRef, clientCallBackInfo, numEvents, eventPaths,
#: eventFlags, eventIds): flags are UInt32, ids UInt64; with UseCFTypes the paths
#: are a CFArrayRef.
CALLBACK = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint32),
    ctypes.POINTER(ctypes.c_uint64),
)
#: dispatch_function_t, for dispatch_sync_f.
DISPATCH_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

kCFNumberSInt64Type = 4
_U64 = 0xFFFFFFFFFFFFFFFF


class CoreServicesUnavailable(WatchError):
    """FSEvents cannot be used here (not macOS, or the frameworks did not load)."""


class StreamCallback(Protocol):
    """What a stream calls with one callback's events, as Python lists."""

    def __call__(self, events: list[object], flags: list[int], ids: list[int]) -> None: ...


class CoreServicesAPI(Protocol):
    """The calls of the backend's stream, one method per C function."""

    def unavailable(self) -> str | None:
        """Why FSEvents cannot be used here, or None; cheap, loads nothing."""

    def load(self) -> None:
        """Open the libraries; raise :class:`CoreServicesUnavailable` where they are not."""

    def extended_data(self) -> bool:
        """Does ``kFSEventStreamCreateFlagUseExtendedData`` give file ids (macOS 10.13+)?"""

    def current_event_id(self) -> int:
        """``FSEventsGetCurrentEventId()``: the latest event id, system-wide."""

    def queue_create(self, label: str) -> Any:
        """``dispatch_queue_create(label, NULL)``: a serial queue for callbacks."""

    def queue_sync(self, queue: Any) -> None:
        """``dispatch_sync_f`` of nothing: returns once every callback queued has run."""

    def queue_release(self, queue: Any) -> None:
        """``dispatch_release(queue)``."""

    def stream_create(
        self,
        callback: StreamCallback,
        paths: Sequence[str],
        since_when: int,
        latency: float,
        flags: int,
    ) -> Any | None:
        """``FSEventStreamCreate(NULL, callback, NULL, paths, sinceWhen, latency,
        flags)``; None where it returned NULL. The callback is kept alive until
        :meth:`stream_release`."""

    def stream_set_dispatch_queue(self, stream: Any, queue: Any) -> None:
        """``FSEventStreamSetDispatchQueue(stream, queue)``."""

    def stream_start(self, stream: Any) -> bool:
        """``FSEventStreamStart(stream)``: False if the stream could not start."""

    def stream_flush_sync(self, stream: Any) -> None:
        """``FSEventStreamFlushSync(stream)``: every event so far delivered on return."""

    def stream_stop(self, stream: Any) -> None:
        """``FSEventStreamStop(stream)``."""

    def stream_invalidate(self, stream: Any) -> None:
        """``FSEventStreamInvalidate(stream)``."""

    def stream_release(self, stream: Any) -> None:
        """``FSEventStreamRelease(stream)``; the callback is let go."""


def unavailable() -> str | None:
    """Why FSEvents cannot be used here, or None; cheap, loads nothing."""
    platform_: str = sys.platform  # a plain value: the same code is checked for every OS
    return None if platform_ == "darwin" else "needs macOS (FSEvents)"


def macos_version(release: str) -> tuple[int, ...]:
    """``"10.13.6"`` as ``(10, 13, 6)``; ``()`` for anything else."""
    try:
        return tuple(int(p) for p in release.split("."))
    except ValueError:
        return ()


class CoreServices:
    """The real libraries, loaded on first use; see the module docstring."""

    def __init__(self) -> None:
        self._cs: Any = None
        self._cf: Any = None
        self._dispatch: Any = None
        self._callbacks: dict[int, Any] = {}  # stream -> its ctypes callback, kept alive
        self._noop: Any = None  # the dispatch_function_t of queue_sync, made at load
        self._labels: dict[int, bytes] = {}  # queue -> its label, alive as long as it
        self._keys: tuple[int, int] = (0, 0)
        self._types: tuple[int, int, int] = (0, 0, 0)

    def unavailable(self) -> str | None:
        return unavailable()

    def extended_data(self) -> bool:
        return unavailable() is None and macos_version(platform.mac_ver()[0]) >= (10, 13)

    def load(self) -> None:
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
            dispatch = ctypes.cdll.LoadLibrary(LIB_SYSTEM)
        except OSError as exc:
            raise CoreServicesUnavailable(
                f"the CoreServices framework did not load ({exc}); use backend='kqueue' "
                "or 'polling'"
            ) from None
        _declare(cs, cf, dispatch)
        if self.extended_data():
            self._keys = (
                ctypes.c_void_p.in_dll(cs, "kFSEventStreamEventExtendedDataPathKey").value or 0,
                ctypes.c_void_p.in_dll(cs, "kFSEventStreamEventExtendedFileIDKey").value or 0,
            )
        self._types = (cf.CFStringGetTypeID(), cf.CFDictionaryGetTypeID(),
                       cf.CFNumberGetTypeID())
        self._noop = DISPATCH_FUNCTION(lambda _: None)
        self._cs, self._cf, self._dispatch = cs, cf, dispatch

    def _need(self) -> Any:
        if self._cs is None:
            self.load()
        return self._cs

    # ------------------------------------------------------------ event ids, queues

    def current_event_id(self) -> int:
        return int(self._need().FSEventsGetCurrentEventId())

    def queue_create(self, label: str) -> Any:
        self._need()
        raw = label.encode()
        queue = self._dispatch.dispatch_queue_create(raw, None)
        self._labels[queue] = raw
        return queue

    def queue_sync(self, queue: Any) -> None:
        self._need()
        self._dispatch.dispatch_sync_f(queue, None, self._noop)

    def queue_release(self, queue: Any) -> None:
        self._need()
        self._dispatch.dispatch_release(queue)
        self._labels.pop(queue, None)

    # ------------------------------------------------------------ streams

    def stream_create(
        self,
        callback: StreamCallback,
        paths: Sequence[str],
        since_when: int,
        latency: float,
        flags: int,
    ) -> Any | None:
        cs, cf = self._need(), self._cf
        strings = [cf.CFStringCreateWithFileSystemRepresentation(None, os.fsencode(p))
                   for p in paths]
        try:
            if not all(strings):
                return None
            values = (ctypes.c_void_p * len(strings))(*strings)
            callbacks = ctypes.c_void_p.in_dll(cf, "kCFTypeArrayCallBacks")
            array = cf.CFArrayCreate(None, values, len(strings), ctypes.addressof(callbacks))
            if not array:
                return None
            trampoline = CALLBACK(self._trampoline(callback))
            try:
                stream = cs.FSEventStreamCreate(
                    None, trampoline, None, array, since_when & _U64, latency, flags
                )
            finally:
                cf.CFRelease(array)
        finally:
            for s in strings:
                if s:
                    cf.CFRelease(s)
        if not stream:
            return None
        self._callbacks[stream] = trampoline
        return stream

    def stream_set_dispatch_queue(self, stream: Any, queue: Any) -> None:
        self._need().FSEventStreamSetDispatchQueue(stream, queue)

    def stream_start(self, stream: Any) -> bool:
        return bool(self._need().FSEventStreamStart(stream))

    def stream_flush_sync(self, stream: Any) -> None:
        self._need().FSEventStreamFlushSync(stream)

    def stream_stop(self, stream: Any) -> None:
        self._need().FSEventStreamStop(stream)

    def stream_invalidate(self, stream: Any) -> None:
        self._need().FSEventStreamInvalidate(stream)

    def stream_release(self, stream: Any) -> None:
        self._need().FSEventStreamRelease(stream)
        self._callbacks.pop(stream, None)

    # ------------------------------------------------------------ the callback

    def _trampoline(self, callback: StreamCallback) -> Any:
        """The C callback: CF arrays to Python lists, then ``callback``. It never
        raises (ctypes would only print it): what it cannot read is ``None``."""

        def call(stream: int, info: int, n: int, paths: int, flags: Any, ids: Any) -> None:
            try:
                count = self._cf.CFArrayGetCount(paths) if paths else 0
                events = [self._item(self._cf.CFArrayGetValueAtIndex(paths, i))
                          for i in range(count)]
                flag_list = [int(flags[i]) for i in range(n)]
                id_list = [int(ids[i]) for i in range(n)]
            except Exception:  # whatever it is, the callback is garbled
                events, flag_list, id_list = [None], [0], [0]
            try:
                callback(events, flag_list, id_list)
            except Exception:  # the backend's callback does not raise; never into C
                pass

        return call

    def _item(self, ref: int | None) -> object:
        """One item of the paths array: bytes, a dictionary, or None."""
        if not ref:
            return None
        cf = self._cf
        string, dictionary, _ = self._types
        kind = cf.CFGetTypeID(ref)
        if kind == string:
            return self._string(ref)
        if kind != dictionary:
            return None
        out: dict[str, object] = {}
        path = cf.CFDictionaryGetValue(ref, self._keys[0])
        if path and cf.CFGetTypeID(path) == string:
            out["path"] = self._string(path)
        file_id = cf.CFDictionaryGetValue(ref, self._keys[1])
        if file_id:
            out["fileID"] = self._number(file_id)
        return out

    def _string(self, ref: int) -> bytes | None:
        cf = self._cf
        size = cf.CFStringGetMaximumSizeOfFileSystemRepresentation(ref)
        if size <= 0:
            return None
        buf = ctypes.create_string_buffer(size)
        if not cf.CFStringGetFileSystemRepresentation(ref, buf, size):
            return None
        return buf.value

    def _number(self, ref: int) -> int | None:
        cf = self._cf
        if cf.CFGetTypeID(ref) != self._types[2]:
            return None
        value = ctypes.c_int64()
        if not cf.CFNumberGetValue(ref, kCFNumberSInt64Type, ctypes.byref(value)):
            return None
        return value.value & _U64


def _declare(cs: Any, cf: Any, dispatch: Any) -> None:
    vp, u32, u64, long_ = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_long
    for lib, name, restype, argtypes in (
        (cs, "FSEventStreamCreate", vp, [vp, CALLBACK, vp, vp, u64, ctypes.c_double, u32]),
        (cs, "FSEventStreamSetDispatchQueue", None, [vp, vp]),
        (cs, "FSEventStreamStart", ctypes.c_bool, [vp]),
        (cs, "FSEventStreamFlushSync", None, [vp]),
        (cs, "FSEventStreamStop", None, [vp]),
        (cs, "FSEventStreamInvalidate", None, [vp]),
        (cs, "FSEventStreamRelease", None, [vp]),
        (cs, "FSEventsGetCurrentEventId", u64, []),
        (cf, "CFRelease", None, [vp]),
        (cf, "CFGetTypeID", ctypes.c_ulong, [vp]),
        (cf, "CFStringGetTypeID", ctypes.c_ulong, []),
        (cf, "CFDictionaryGetTypeID", ctypes.c_ulong, []),
        (cf, "CFNumberGetTypeID", ctypes.c_ulong, []),
        (cf, "CFStringCreateWithFileSystemRepresentation", vp, [vp, ctypes.c_char_p]),
        (cf, "CFStringGetMaximumSizeOfFileSystemRepresentation", long_, [vp]),
        (cf, "CFStringGetFileSystemRepresentation", ctypes.c_bool,
         [vp, ctypes.c_char_p, long_]),
        (cf, "CFArrayCreate", vp, [vp, ctypes.POINTER(vp), long_, vp]),
        (cf, "CFArrayGetCount", long_, [vp]),
        (cf, "CFArrayGetValueAtIndex", vp, [vp, long_]),
        (cf, "CFDictionaryGetValue", vp, [vp, vp]),
        (cf, "CFNumberGetValue", ctypes.c_bool, [vp, long_, vp]),
        (dispatch, "dispatch_queue_create", vp, [ctypes.c_char_p, vp]),
        (dispatch, "dispatch_sync_f", None, [vp, vp, DISPATCH_FUNCTION]),
        (dispatch, "dispatch_release", None, [vp]),
    ):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


#: The real door, shared: loaded on first use, never at import.
SYSTEM = CoreServices()

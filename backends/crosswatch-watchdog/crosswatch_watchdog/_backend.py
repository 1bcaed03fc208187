"""The watchdog adapter: one watchdog observer, its events turned into hints.

watchdog's events are not trusted as they are (its observers coalesce, guess types
and lose events on some OSes). Each one only names the directories to look at,
``DirDirty``, and the engine's diff against the disk decides what changed: it
pairs renames by identity, finds writes and attribute changes by comparing stats
(the backend declares ``polls`` so that the engine keeps them), and drops what did
not happen.

watchdog's threads hand what they see to the watcher's thread through a queue and
a :class:`~crosswatch.backend.Waker`, whose descriptor is :meth:`WatchdogBackend.fileno`.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, cast

from crosswatch.backend import (
    VIRTUAL_FS,
    Backend,
    Capabilities,
    Gone,
    Observation,
    Options,
    Probe,
    SubtreeLost,
    Waker,
    WatchError,
    WatchGoneError,
    WatchLimitError,
    fs_type,
)

from ._events import Handler, Watch
from ._threads import LossLog, guarded, stop

#: The probe's score: below every native backend (inotify 100), above polling (10).
SCORE = 20
#: Failures of watchdog's threads are counted over this many seconds.
FAILURE_WINDOW = 60.0
INSTALL = "install watchdog (pip install crosswatch[watchdog])"


def _inotify_refused(observer: type[Any]) -> str | None:
    """Why watchdog's inotify observer could not start now (no instance left), or None.

    Opens one instance and closes it at once, as the inotify backend's probe does:
    the kernel's answer is the only reliable one.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:
        return None
    if not issubclass(observer, InotifyObserver):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None  # the observer will say why, when it starts
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    return (
        f"watchdog's inotify observer cannot start: no inotify instance can be opened "
        f"({os.strerror(err)}); raise fs.inotify.max_user_instances, or close programs "
        "that watch files"
    )


class WatchdogBackend(Backend):
    """watchdog's observer (the native one for the OS by default) as a backend."""

    name = "watchdog"
    description = "watchdog's observers, any OS watchdog supports; every event verified"
    # polls: every change is found by the engine's diff, which then compares each
    # file's stat with one kept from the first scan (not with the scan's time, which
    # would report a file written just before the scan as modified).
    capabilities = Capabilities(recursive=True, polls=True)
    observer_class: ClassVar[type[Any] | None] = None
    """The observer run; ``None``: ``watchdog.observers.Observer``, the OS's native one.
    A subclass sets another (``watchdog.observers.polling.PollingObserver``)."""
    max_failures: ClassVar[int] = 3
    """Threads of watchdog's that may die one after the other, within
    ``FAILURE_WINDOW`` seconds and with no event delivered between them (an
    observer that cannot run), before :meth:`read` gives up with a
    :class:`WatchError`. One that delivered events before it died was working: a
    storm makes watchdog's own threads die now and then, and each time the
    engine's rescan covers what was lost."""
    check_interval: ClassVar[float] = 1.0
    """Seconds between checks that watchdog's helper threads (the inotify observer's
    reader, for one) are alive; they cannot be told to report their end."""

    @classmethod
    def _observer(cls) -> type[Any]:
        if cls.observer_class is not None:
            return cls.observer_class
        from watchdog.observers import Observer

        return cast("type[Any]", Observer)  # the OS's observer class

    @classmethod
    def probe(cls, path: str) -> Probe:
        try:
            import watchdog.version

            observer = cls._observer()
        except ImportError:
            return Probe.unavailable(cls.name, INSTALL)
        refused = _inotify_refused(observer)
        if refused is not None:
            return Probe(cls.name, False, refused, limit=0)
        kind = fs_type(path)
        if kind in VIRTUAL_FS:
            return Probe(
                cls.name,
                True,
                f"changes on {kind} are not reported by the kernel: a virtual file system, "
                "where watchdog's observers see at most what its OS backend or scan sees",
                score=0,
            )
        return Probe(
            cls.name,
            True,
            f"watchdog {watchdog.version.VERSION_STRING} ({observer.__name__}): its events "
            "name the directories the engine diffs; below the native backends",
            score=SCORE,
        )

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options or Options())
        try:
            self._observer_type = self._observer()
        except ImportError:
            raise WatchError(errno.ENOSYS, INSTALL) from None
        refused = _inotify_refused(self._observer_type)
        if refused is not None:  # used up since the probe: selection picks another
            raise WatchLimitError(errno.EMFILE, refused)
        self._queue: queue.SimpleQueue[Observation] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._watches: dict[int, Watch] = {}
        self._roots: dict[tuple[str, bool], int] = {}
        self._ended: list[Any] = []  # watchdog watches whose emitter ended unasked
        self._stopping: set[Any] = set()
        self._threads: dict[int, Any] = {}  # our observer's threads: ident -> watch
        self._failures: list[tuple[float, BaseException]] = []
        self._delivered = False  # an event came since the last failure
        self._helpers: set[threading.Thread] = set()
        self._next_check = time.monotonic() + self.check_interval
        self._closed = False
        self._waker = Waker()
        self._log = LossLog(self)
        logging.getLogger("watchdog").addHandler(self._log)
        try:
            self._obs = self._start_observer()
        except BaseException:
            self.close()
            raise

    def _start_observer(self) -> Any:
        before = set(threading.enumerate())
        observer = self._observer_type(timeout=self.options.poll_interval)
        emitter = getattr(observer, "_emitter_class", None)
        if isinstance(emitter, type):
            # To hear of an emitter thread that dies (or stops by itself).
            observer._emitter_class = guarded(emitter, self)
        run = observer.run

        def guarded_run() -> None:
            self._thread_started(None)
            try:
                run()
            except BaseException as exc:
                self._failed(exc, None)
            finally:
                self._thread_ended()

        observer.run = guarded_run
        observer.start()
        self._helpers = set()
        self._adopt(before, observer)
        return observer

    def _adopt(self, before: set[threading.Thread], observer: Any) -> None:
        """Note the threads of watchdog's started since ``before`` that are neither
        the observer nor an emitter (those report their end themselves)."""
        emitter = getattr(observer, "_emitter_class", None)
        for t in set(threading.enumerate()) - before:
            if t is observer or type(t).__module__.partition(".")[0] != "watchdog":
                continue
            if not (isinstance(emitter, type) and isinstance(t, emitter)):
                self._helpers.add(t)

    # ------------------------------------------------------------- from watchdog's threads

    def _post(self, observations: Sequence[Observation]) -> None:
        if self._closed:
            return  # (the waker's descriptors may be another file's by now)
        for obs in observations:
            self._queue.put(obs)
            if not isinstance(obs, SubtreeLost):
                self._delivered = True
        self._waker.wake()

    def _thread_started(self, watch: Any) -> None:
        with self._lock:
            self._threads[threading.get_ident()] = watch

    def _thread_ended(self) -> None:
        with self._lock:
            self._threads.pop(threading.get_ident(), None)

    def _ours(self, ident: int | None) -> bool:
        """Is ``ident`` a thread of this backend's observer, not being stopped?"""
        with self._lock:
            if self._closed or ident not in self._threads:
                return False
            watch = self._threads[ident]
            return watch is None or watch not in self._stopping

    def _failed(self, exc: BaseException | None, watch: Any) -> None:
        """A thread of the observer ended: on an error, or by itself (watch given)."""
        with self._lock:
            if self._closed:
                return
            # An end without an error, of a watch being stopped, was asked for. (An
            # error is never asked for: the thread of a watch scheduled again can
            # die before its key leaves ``_stopping``.)
            if exc is None and watch is not None and watch in self._stopping:
                return
            if exc is not None:
                if self._delivered:
                    self._failures.clear()  # it worked in between: no crash loop
                self._delivered = False
                self._failures.append((time.monotonic(), exc))
            self._ended.append(watch)  # None: the dispatcher, so every watch
        # What the thread had not yet reported is lost: the Gone that read() reports
        # for its watches has the engine watch them again and rescan them.
        self._post([])

    # ------------------------------------------------------------- the watcher's side

    def fileno(self) -> int | None:
        return None if self._closed else self._waker.fileno()

    def deadline(self) -> float | None:
        return self._next_check if self._helpers else None

    def _check_helpers(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.check_interval
        dead = [t for t in self._helpers if not t.is_alive()]
        if dead:
            self._helpers.clear()
            self._failed(RuntimeError(f"watchdog's thread {dead[0].name} ended"), None)

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        existing = self._roots.get((path, recursive))
        if existing is not None:
            return existing
        handle = self._schedule(path, path, recursive, None)
        self._roots[(path, recursive)] = handle
        return handle

    def watch_self(self, path: str) -> Hashable:
        """Watch ``path``'s parent, not recursively, for what happens to ``path``."""
        parent = os.path.dirname(path.rstrip(os.sep)) or os.sep
        return self._schedule(parent, parent, False, path)

    def _schedule(self, path: str, where: str, recursive: bool, target: str | None) -> int:
        # (Too many failures are told by read(), the consumer's stream: a refused
        # watch of a root being watched again would only end that root.)
        if not os.path.isdir(where):
            raise WatchGoneError(errno.ENOENT, f"{where!r} is not a directory", where)
        handle = next(self._ids)
        handler = Handler(self._post, handle, path, target)
        before = set(threading.enumerate())
        try:
            key = self._obs.schedule(handler, where, recursive=recursive)
        except FileNotFoundError as exc:
            raise WatchGoneError(errno.ENOENT, str(exc), where) from None
        except OSError as exc:
            raise WatchError(exc.errno or errno.EIO, f"watchdog: {exc}", where) from None
        except RecursionError:
            # Its observers walk a tree by recursion, and by paths: a tree deeper than
            # Python's recursion limit (or than PATH_MAX) is beyond them.
            raise WatchLimitError(
                errno.ENAMETOOLONG,
                f"watchdog cannot watch a tree this deep ({where!r}: its observer walks "
                "it by recursion); use the inotify or polling backend for it",
                where,
            ) from None
        with self._lock:
            self._stopping.discard(key)
        self._adopt(before, self._obs)
        self._watches[handle] = Watch(handle, path, key, handler, target)
        return handle

    def unwatch(self, handle: Hashable) -> None:
        w = self._watches.pop(handle, None)  # type: ignore[call-overload]
        if w is None:
            return
        if w.target is None:
            self._roots = {k: v for k, v in self._roots.items() if v != handle}
        self._release(w)

    def _release(self, w: Watch) -> None:
        shared = any(o.key == w.key for o in self._watches.values())
        try:
            if shared:
                self._obs.remove_handler_for_watch(w.handler, w.key)
            else:
                with self._lock:
                    self._stopping.add(w.key)
                self._obs.unschedule(w.key)
        except Exception:  # dropped already, or watchdog's books are broken
            pass

    def read(self) -> Sequence[Observation]:
        self._check_helpers()
        self._waker.drain()
        out: list[Observation] = []
        seen: set[Observation] = set()
        while True:
            try:
                obs = self._queue.get_nowait()
            except queue.Empty:
                break
            if obs not in seen:  # duplicates only repeat a look the engine takes anyway
                seen.add(obs)
                out.append(obs)
        out.extend(self._restart())
        return out

    def _restart(self) -> list[Observation]:
        """The handles of watches whose thread ended unasked, as ``Gone``.

        The engine watches a root again if it is still there and rescans it (after
        the ``SubtreeLost`` already posted); a fate's handle makes it check the roots
        below. Too many errors end the stream with a :class:`WatchError`.
        """
        with self._lock:
            ended, self._ended = self._ended, []
        if not ended:
            return []
        self._check_failures()
        if None in ended:  # the dispatcher died: a new observer for every watch
            old, self._obs = self._obs, None
            with self._lock:
                self._stopping.update(w.key for w in self._watches.values())
            stop(old, self._helpers)
            self._obs = self._start_observer()
            dead = list(self._watches.values())
        else:
            dead = [w for w in self._watches.values() if w.key in ended]
        for key in {id(w.key): w.key for w in dead}.values():
            if key is None:
                continue
            with self._lock:
                self._stopping.add(key)
            try:
                self._obs.unschedule(key)
            except Exception:  # not on the new observer, or its books broken
                pass
        for w in dead:
            del self._watches[w.handle]
            self._roots = {k: v for k, v in self._roots.items() if v != w.handle}
        return [Gone(w.handle) for w in dead]

    def _check_failures(self) -> None:
        since = time.monotonic() - FAILURE_WINDOW
        with self._lock:
            failures = [exc for t, exc in self._failures if t >= since]
        if len(failures) >= self.max_failures:
            last = failures[-1]
            raise WatchError(
                errno.EIO,
                f"watchdog's {self._observer_type.__name__} failed {len(failures)} times "
                f"in its threads within {FAILURE_WINDOW:g} s (last: {type(last).__name__}: "
                f"{last}); changes may have "
                "been missed since: choose another backend (backend=...)",
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        logging.getLogger("watchdog").removeHandler(self._log)
        obs = getattr(self, "_obs", None)
        if obs is not None:
            stop(obs, self._helpers)
        self._waker.close()

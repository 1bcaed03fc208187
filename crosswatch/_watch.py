"""The synchronous API: :class:`Watcher` and :func:`watch`.

A watcher checks its arguments, picks a backend per root, reads the roots in
(``start``), then one thread per watcher (``_loop``) runs the engine and hands
batches of events to the consumer through the queue (``_queue``).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from types import TracebackType

from . import (
    _args,
    _backend_options,
    _config,
    _config_values,
    _mounts,
    _os,
    _select,
    _setup,
    _snaplive,
)
from ._backend import Backend, Options
from ._engine import Engine, Stopped
from ._errors import (
    BackendUnavailableError,
    ConfigError,
    CrosswatchWarning,
    NotStartedError,
    SnapshotError,
    WatchLimitError,
    WatchPathError,
)
from ._events import ACCESS_KINDS, Change, Event
from ._loop import Callback, Loop
from ._plugins import Plugins
from ._progress import Meter, Progress
from ._queue import Backlog, EventQueue
from ._select import Needs
from ._setup import Paths
from ._snaptree import record_filters

BackendSpec = str | Sequence[str] | type[Backend] | None

def _warn(message: str) -> None:
    warnings.warn(message, CrosswatchWarning, stacklevel=2)


class Watcher:
    """Watches paths and delivers batches of :class:`Event`, in order.

    Iterate over it (``for batch in watcher``) or pass ``callback``, which is then
    called with each batch on the watcher's thread. ``start()`` returns once every
    root has been read: any change made after that is reported. ``close()`` can be
    called from any thread and releases every descriptor and thread.

    ``max_queue`` and ``max_queue_bytes`` bound the events waiting for a slow
    consumer, in number and in estimated memory; past either one the watcher stops
    reading the OS, which sheds load in the kernel (an overflow the engine repairs
    with a rescan) instead of growing memory. ``get()`` hands over everything waiting,
    merged into one list of at most ``max_batch`` events, so a slow consumer catches
    up in few calls; :attr:`backlog` shows what waits.

    ``pids=True`` selects only backends that report the pid of each change
    (``Event.pid``; fanotify does). ``ignore_pids`` leaves out the changes those
    processes make, and ``ignore_own=True`` the watching process's own: the cache
    still follows them, so later events stay right. Both imply ``pids=True``.

    ``progress`` is called on the thread in ``start()`` with a :class:`Progress`
    about every 0.1 s while the roots are read, and once more when all are.
    """

    def __init__(
        self,
        *paths: Paths,
        recursive: bool = True,
        backend: BackendSpec = None,
        deny: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
        gitignore: bool | None = None,
        default_ignore: bool | None = None,
        hidden: bool | None = None,
        kinds: Iterable[Change | str] | None = None,
        access: bool = False,
        pids: bool = False,
        ignore_pids: Iterable[int] | None = None,
        ignore_own: bool = False,
        debounce: float | None = None,
        settle: float | None = None,
        coalesce: bool | None = None,
        poll_interval: float | None = None,
        backend_options: Mapping[str, Mapping[str, object]] | None = None,
        callback: Callback | None = None,
        max_queue: int = 100_000,
        max_queue_bytes: int = 32 * 2**20,
        max_batch: int = 10_000,
        pair_wait: float = 0.02,
        plugins: Plugins | None = None,
        config_file: str | os.PathLike[str] | None = None,
        on_warning: Callable[[str], None] | None = None,
        progress: Callable[[Progress], object] | None = None,
    ) -> None:
        # Every argument is checked before anything is read or watched (see _args).
        given = _args.paths(paths)
        recursive = _args.flag("recursive", recursive)
        access = _args.flag("access", access)
        ignored = _args.pids("ignore_pids", ignore_pids)
        if _args.flag("ignore_own", ignore_own):
            ignored |= {os.getpid()}
        self._needs = Needs(access=access, pids=_args.flag("pids", pids) or bool(ignored))
        chosen_backend = _args.backend(backend)
        forced = chosen_backend if isinstance(chosen_backend, type) else None
        args: dict[str, object] = {
            "backend": None if forced else chosen_backend,
            "deny": _args.deny(deny),
            "ignore": _args.ignore(ignore),
            "include": _args.include(include),
            "gitignore": _args.optional_flag("gitignore", gitignore),
            "default_ignore": _args.optional_flag("default_ignore", default_ignore),
            "hidden": _args.optional_flag("hidden", hidden),
            "debounce": _args.optional_seconds("debounce", debounce, zero_ok=True),
            "settle": _args.optional_seconds("settle", settle, zero_ok=True),
            "coalesce": _args.optional_flag("coalesce", coalesce),
            "poll_interval": _args.optional_seconds("poll_interval", poll_interval, zero_ok=False),
            "backend_options": _args.backend_options(backend_options),
        }
        wanted_kinds = _args.kinds(kinds)
        bounds = {
            "max_queue": _args.count("max_queue", max_queue),
            "max_queue_bytes": _args.count("max_queue_bytes", max_queue_bytes),
            "max_batch": _args.count("max_batch", max_batch),
        }
        pair_wait = _args.seconds("pair_wait", pair_wait, zero_ok=True)
        self._plugins = _args.plugins(plugins)
        self._callback = _args.function("callback", callback, "one argument, a list of Event")
        warn = _args.function("on_warning", on_warning, "one argument, the warning's text")
        report = _args.function("progress", progress, "one argument, a Progress")
        self._meter = Meter(report) if report is not None else None
        file = _args.config_file(config_file)

        self.settings = _config.resolve(args=args, config_file=file)
        self.roots = _setup.roots(given, recursive)
        self.recursive = recursive
        self.kinds = self._kinds(wanted_kinds, access)
        self._queue = EventQueue(**bounds, on_room=self._wake)
        self._snapshots = _snaplive.Requests(record_filters(self.settings))
        self._forced = forced
        self._debounce = self.settings.debounce or 0.0
        self._settle = self.settings.settle or 0.0
        self._options = Options(
            access=access,
            poll_interval=self.settings.poll_interval or 0.5,
        )
        self._warn = warn or _warn
        self._engine = Engine(
            access=access,
            ignore_pids=ignored,
            ignore=_setup.ignore(self.settings),
            gitignore=self.settings.gitignore is True,
            pair_wait=pair_wait,
            fallback_interval=self._options.poll_interval,
            warn=self._warn,
            stopped=lambda: self._queue.closed,
            listed=self._meter.listed if self._meter is not None else lambda entries: None,
        )
        self._backends: dict[type[Backend], Backend] = {}
        self._chosen: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._waker: _os.Waker | None = None
        self._started = False
        self._starter: threading.Thread | None = None  # the thread in start(), while it is
        self._start_done = threading.Event()
        self._release_lock = threading.Lock()

    @staticmethod
    def _kinds(kinds: Iterable[Change | str] | None, access: bool) -> frozenset[Change] | None:
        if kinds is None:
            return None
        chosen = frozenset(_config_values.parse_kinds(kinds, "argument kinds="))
        if chosen & ACCESS_KINDS and not access:
            raise ConfigError("access kinds were asked for without access=True")
        return chosen

    # ------------------------------------------------------------ lifecycle

    @property
    def backends(self) -> dict[str, str]:
        """Which backend watches each root (after :meth:`start`)."""
        return dict(self._chosen)

    def backend(self, name: str) -> Backend:
        """The open backend instance called ``name`` (for tests and diagnostics)."""
        for instance in self._backends.values():
            if instance.name == name:
                return instance
        raise KeyError(name)

    def start(self) -> Watcher:
        """Pick a backend per root, read every root, and start delivering.

        A :meth:`close` meanwhile (from another thread) stops the reading at the next
        directory: ``start()`` then releases what it opened and returns, the watcher
        closed, its stream empty.
        """
        if self._started:
            return self
        self._started = True
        self._starter = threading.current_thread()
        try:
            if self._meter is not None:
                self._meter.begin()
            if not self._queue.closed:
                self._open()
            if self._meter is not None:
                self._meter.finish()
            if not self._queue.closed:
                self._thread = threading.Thread(target=self._run, name="crosswatch", daemon=True)
                self._thread.start()
                return self
        except Stopped:
            pass
        except BaseException:
            self._release()
            self._queue.close()  # nothing will come: get() returns None, not waits
            raise
        finally:
            self._starter = None
            self._start_done.set()
        self._release()  # closed while starting
        return self

    def _open(self) -> None:
        plugins = self._plugins
        if self._forced is None and plugins is None:
            plugins = Plugins()
        # Every root is looked at before any is watched: with access events on, a
        # watch already placed would report these looks as reads.
        self._check_backend_options(plugins)
        chosen: list[Backend] = []
        refused: dict[str, str] = {}  # backends that said yes, then could not open
        for root in self.roots:
            while True:
                if self._forced is not None:
                    cls = self._forced
                    unmet = _select.unmet(cls, self._needs)
                    if unmet is not None:
                        raise BackendUnavailableError(unmet)
                else:
                    assert plugins is not None
                    cls, _ = _select.select_backend(
                        root,
                        self.settings.backend,
                        self.settings.deny,
                        plugins,
                        needs=self._needs,
                        refused=refused,
                        warn=self._warn,
                    )
                try:
                    instance = self._instance(cls)
                    break
                except WatchLimitError as exc:  # a limit used up since the probe
                    reason = exc.strerror or str(exc)
                    if self._forced is not None:
                        raise BackendUnavailableError(
                            f"backend {cls.name!r} cannot watch {root!r}: {reason}; "
                            "or let selection fall back (backend='auto')"
                        ) from None
                    refused[cls.name] = reason  # chosen again: the next best, or an error
            _setup.check_readable(root)
            kind = _mounts.virtual(root)  # only a forced backend gets this far there
            if kind is not None:
                self._engine.warn(f"watching with {cls.name}: {_select.unseen_warning(root, kind)}")
            chosen.append(instance)
        for root, instance in zip(self.roots, chosen, strict=True):
            try:
                self._engine.add_root(root, instance, recursive=self.recursive)
            except FileNotFoundError:
                raise WatchPathError(f"cannot watch {root!r}: it vanished while starting") from None
            self._chosen[root] = instance.name
        self._waker = _os.Waker()

    def _instance(self, cls: type[Backend]) -> Backend:
        """The watcher's open instance of ``cls``, opened on first use with its options."""
        instance = self._backends.get(cls)
        if instance is None:
            extra = dict(self.settings.backend_options.get(cls.name, {}))
            instance = cls(replace(self._options, extra=extra))
            self._backends[cls] = instance
        return instance

    def _check_backend_options(self, plugins: Plugins | None) -> None:
        """Refuse options a backend does not read; warn of a backend name that looks
        mistyped. Options of backends not installed here are left alone."""
        given = self.settings.backend_options
        if self._forced is not None:
            _backend_options.check_names(given, self._forced.name, self._forced.extra_options)
            return
        assert plugins is not None
        registry = plugins.backends
        for name in given:
            if name in registry:
                _backend_options.check_names(given, name, registry[name].extra_options)
            elif (typo := _backend_options.typo_of(name, registry)) is not None:
                self._warn(
                    f"backend options for {name!r} are ignored: no such backend is "
                    f"installed (did you mean {typo!r}?)"
                )

    def close(self) -> None:
        """Stop watching and release everything; safe to call twice, from any thread.

        In callback mode, an error that stopped the watcher's thread is raised here.
        While :meth:`start` reads the roots on another thread, it is stopped at the
        next directory; this returns once it has released what it opened.
        """
        self._queue.close()
        self._wake()
        if self._starter is threading.current_thread():
            return  # called while starting (by on_warning): start() releases all
        thread = self._thread
        if thread is threading.current_thread():
            return  # called from the callback: the loop releases all when it returns
        if self._started:
            self._start_done.wait()  # start() stops at its next directory
            thread = self._thread
        if thread is not None:
            thread.join()
        self._release()
        error = self._queue.take_error() if self._callback is not None else None
        if error is not None:
            raise error

    def _release(self) -> None:
        with self._release_lock:
            self._release_locked()

    def _release_locked(self) -> None:
        for instance in self._backends.values():
            try:
                instance.close()
            except OSError:
                pass
        self._backends.clear()
        waker, self._waker = self._waker, None
        if waker is not None:
            waker.close()

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker.wake()  # never blocks, and does nothing once closed

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._queue.ended

    @property
    def max_queue(self) -> int:
        return self._queue.max_queue

    @property
    def max_queue_bytes(self) -> int:
        return self._queue.max_queue_bytes

    @property
    def max_batch(self) -> int:
        return self._queue.max_batch

    # ------------------------------------------------------------- consuming

    def __iter__(self) -> Iterator[list[Event]]:
        if self._callback is not None:
            raise TypeError("this watcher delivers to its callback; do not also iterate it")
        self.start()
        while True:
            batch = self.get()
            if batch is None:
                return
            yield batch

    @property
    def backlog(self) -> Backlog:
        """What waits for the consumer now, and the most that ever did."""
        return self._queue.backlog()

    def get(self, timeout: float | None = None) -> list[Event] | None:
        """Every event waiting, in order, at most ``max_batch`` of them.

        Waits for one if none is; returns ``[]`` if ``timeout`` passed first and
        ``None`` once the stream ended. Before :meth:`start` nothing could ever come,
        so it raises :class:`NotStartedError` instead of waiting forever.
        """
        if self._callback is not None:
            raise TypeError("this watcher delivers to its callback; do not also get() from it")
        if not self._started and not self._queue.ended:
            raise NotStartedError(
                "get() was called before start(): call start() first, or use the watcher "
                "as 'with watch(...) as w:'; iterating over it also starts it"
            )
        return self._queue.get(timeout)

    def snapshot(self, file: str | os.PathLike[str]) -> list[Event]:
        """Write the watched trees, as the stream stands now, to snapshot ``file``.

        Returns the events before that point which ``get()`` has not handed over:
        applied after those it has, they give the tree the snapshot holds. Every
        later event is after the snapshot (see the Snapshots page of the docs).
        """
        if not self._started:
            raise NotStartedError("snapshot() was called before start(): call start() first")
        if self._thread is None or not self._thread.is_alive():
            raise _snaplive.stopped()
        if self._thread is threading.current_thread():
            raise SnapshotError("snapshot() cannot be called from the callback: call it "
                                "from another thread")
        return _snaplive.take(self._snapshots, self._queue, self._wake, os.fspath(file))

    # -------------------------------------------------------------- the thread

    def _run(self) -> None:
        waker = self._waker
        assert waker is not None  # made by start() before this thread
        try:
            Loop(
                self._engine,
                self._queue,
                wake=waker,
                kinds=self.kinds,
                debounce=self._debounce,
                settle=self._settle,
                coalesce=self.settings.coalesce is True,
                callback=self._callback,
                snapshots=self._snapshots,
            ).run()
        finally:
            if self._queue.closed:
                self._release()


#: ``watch(*paths, **keywords)``: an unstarted :class:`Watcher`, with the very same
#: keywords; use it as ``with watch("src") as w: for batch in w: ...``.
watch = Watcher

"""watchdog's threads: each one reports its end, its warnings mean losses, and
all of them are stopped, also when watchdog's own stop fails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from crosswatch.backend import Observation, SubtreeLost

#: Seconds to wait for each of watchdog's threads to end once told to.
JOIN_TIMEOUT = 5.0


class Owner(Protocol):
    """What the threads tell the backend that runs them."""

    def _post(self, observations: Sequence[Observation]) -> None: ...
    def _thread_started(self, watch: Any) -> None: ...
    def _thread_ended(self) -> None: ...
    def _failed(self, exc: BaseException | None, watch: Any) -> None: ...
    def _ours(self, ident: int | None) -> bool: ...


def stop(observer: Any, helpers: set[threading.Thread]) -> None:
    """Stop ``observer`` and its threads, also when watchdog's own stop fails.

    A thread of watchdog's that died may leave its books broken, and stopping then
    raises partway (a ``KeyError`` from the inotify observer): each part is then
    stopped on its own, and the dispatcher is woken so that it ends.
    """
    if not observer.is_alive():
        try:
            observer.unschedule_all()  # its emitters
        except Exception:
            stop_parts(observer, helpers)
        return
    try:
        observer.stop()
    except Exception:
        stop_parts(observer, helpers)
        observer.event_queue.put(type(observer).stop_event)
    observer.join(JOIN_TIMEOUT)


def stop_parts(observer: Any, helpers: set[threading.Thread]) -> None:
    threads: list[Any] = [*list(observer.emitters), *helpers]
    for t in threads:
        try:
            t.stop()
        except Exception:
            pass
    for t in threads:
        if t.is_alive() and t is not threading.current_thread():
            t.join(JOIN_TIMEOUT)


def guarded(emitter: type[Any], owner: Owner) -> type[Any]:
    """``emitter`` whose thread tells ``owner`` when it ends, and why."""

    def run(self: Any) -> None:
        owner._thread_started(self.watch)
        error: BaseException | None = None
        try:
            emitter.run(self)
        except BaseException as exc:
            error = exc
        finally:
            owner._thread_ended()
            owner._failed(error, self.watch)

    return type(emitter.__name__, (emitter,), {"run": run})


class LossLog(logging.Handler):
    """watchdog's warnings (a kernel queue overflowed, a watch could not be placed)
    from the backend's own threads: events may be lost, so the engine rescans."""

    def __init__(self, owner: Owner) -> None:
        super().__init__(logging.WARNING)
        self._owner = owner

    def emit(self, record: logging.LogRecord) -> None:
        if self._owner._ours(record.thread):
            self._owner._post([SubtreeLost(None)])

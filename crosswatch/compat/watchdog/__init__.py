"""watchdog's API over crosswatch: switch by changing one import.

Replace ``from watchdog.observers import Observer`` with
``from crosswatch.compat.watchdog import Observer``; handlers and event classes
stay watchdog's own (``watchdog.events``), so watchdog 7 or later must be
installed. See the documentation page "watchdog compatibility".
"""

from __future__ import annotations

from ..._errors import CrosswatchError


class WatchdogMissingError(CrosswatchError, ImportError):
    """``crosswatch.compat.watchdog`` was imported without watchdog 7 installed."""


def _check_watchdog() -> None:
    try:
        from watchdog.version import VERSION_MAJOR
    except ImportError:
        raise WatchdogMissingError(
            "crosswatch.compat.watchdog uses watchdog's handler and event classes, and "
            "watchdog is not installed: pip install 'watchdog>=7'"
        ) from None
    if VERSION_MAJOR < 7:
        raise WatchdogMissingError(
            f"crosswatch.compat.watchdog needs watchdog 7 or later, found {VERSION_MAJOR}.x: "
            "pip install --upgrade 'watchdog>=7'"
        )


_check_watchdog()

from watchdog.observers.api import EventQueue, ObservedWatch  # noqa: E402

from ._observer import CrosswatchEmitter, CrosswatchObserver, WatchPathNotFoundError  # noqa: E402

#: The observer class, under the name watchdog's programs import.
Observer = CrosswatchObserver

__all__ = [
    "CrosswatchEmitter",
    "CrosswatchObserver",
    "EventQueue",
    "ObservedWatch",
    "Observer",
    "WatchPathNotFoundError",
    "WatchdogMissingError",
]

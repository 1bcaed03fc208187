"""crosswatch's watchdog adapter: any of watchdog's observers as a backend.

Importing this module does not import watchdog, so it registers everywhere; the
probe says whether watchdog is installed.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import WatchdogBackend

__all__ = ["WatchdogBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(WatchdogBackend)

"""crosswatch's inotify backend: one watch per directory, exact names and rename cookies.

Importing this module touches no OS API, so it registers on every OS; the kernel
calls happen when the backend opens.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import InotifyBackend

__all__ = ["InotifyBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(InotifyBackend)

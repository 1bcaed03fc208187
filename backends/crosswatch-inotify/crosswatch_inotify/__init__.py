"""crosswatch's inotify backend: one watch per directory, exact names and rename cookies.

Importing this module touches no OS API, so it registers on every OS; the kernel
calls happen when the backend opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import crosswatch

from ._backend import InotifyBackend

if TYPE_CHECKING:
    from crosswatch import BackendRegistry

__all__ = ["InotifyBackend"]


@crosswatch.hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(InotifyBackend)

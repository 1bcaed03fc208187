"""crosswatch's fanotify backend: one mark per file system, kernel-paired renames, pids.

Importing this module touches no OS API, so it registers on every OS; the kernel
calls happen when the backend probes or opens.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import FanotifyBackend

__all__ = ["FanotifyBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(FanotifyBackend)

"""crosswatch's kqueue backend: one descriptor per entry, ``EVFILT_VNODE`` notes.

Importing this module touches no kqueue API, so it registers on every OS; the
kernel calls happen when the backend opens, through ``_kq.SYSTEM``.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import KqueueBackend

__all__ = ["KqueueBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(KqueueBackend)

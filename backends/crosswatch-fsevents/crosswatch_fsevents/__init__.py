"""crosswatch's FSEvents backend (macOS): one recursive stream, file-level events.

Importing this module touches no macOS API, so it registers on every OS; its
probe says where it is unavailable, and the frameworks load when it opens.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import FSEventsBackend

__all__ = ["FSEventsBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(FSEventsBackend)

"""crosswatch's Windows backend: ReadDirectoryChangesW, one recursive handle per root.

Importing this module touches no Windows API, so it registers on every OS; the
kernel32 calls happen only when the backend opens, on Windows.
"""

from __future__ import annotations

from crosswatch.backend import BackendRegistry, hookimpl

from ._backend import WindowsBackend

__all__ = ["WindowsBackend"]


@hookimpl
def crosswatch_register_backends(register: BackendRegistry) -> None:
    register(WindowsBackend)

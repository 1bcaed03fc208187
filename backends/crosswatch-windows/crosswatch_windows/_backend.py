"""The Windows backend: its probe, its options, and the structure of its driving logic.

Built so far: the decoding of change records (``_abi``) and the kernel32 object the
backend calls through (``_kernel32``). Not built yet: the overlapped reads, their
completion and the handles' lifecycle. Until they are, the probe says so on
Windows too, and selection never picks this backend.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from crosswatch import ConfigError
from crosswatch.backend import Backend, Capabilities, Observation, Options, Probe

from . import _abi
from ._kernel32 import Kernel32, Kernel32Api, on_windows

#: Bytes per read buffer. Reads of a directory over the network fail with a buffer
#: above 64 KiB (a limit of the file-sharing protocols), so that is the default.
BUFFER_SIZE = 64 * 1024
MIN_BUFFER_SIZE = _abi.EXTENDED_HEADER.size + 2 * 260  # one record with a MAX_PATH name
MAX_BUFFER_SIZE = 16 * 1024 * 1024


def buffer_size(options: Options) -> int:
    """The ``buffer_size`` option (``extra``), checked: a multiple of 4, within bounds."""
    value = options.extra.get("buffer_size", BUFFER_SIZE)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"buffer_size must be an integer number of bytes, not {value!r}")
    if not MIN_BUFFER_SIZE <= value <= MAX_BUFFER_SIZE or value % 4:
        raise ConfigError(
            f"buffer_size must be a multiple of 4 between {MIN_BUFFER_SIZE} and "
            f"{MAX_BUFFER_SIZE} bytes, not {value}; 65536 (the default) also works over "
            "the network"
        )
    return value


class WindowsBackend(Backend):
    """ReadDirectoryChangesW: one recursive handle per root, renames paired by the OS."""

    name = "windows"
    description = "Windows ReadDirectoryChangesW: one recursive handle per root"
    capabilities = Capabilities(recursive=True)

    @classmethod
    def probe(cls, path: str) -> Probe:
        if not on_windows():
            return Probe.unavailable(cls.name, "needs Windows (ReadDirectoryChangesW)")
        return Probe.unavailable(
            cls.name,
            "the ReadDirectoryChangesW driving logic is not built yet; polling watches "
            "here meanwhile",
        )

    def __init__(self, options: Options | None = None, kernel32: Kernel32Api | None = None):
        super().__init__(options or Options())
        self.buffer_size = buffer_size(self.options)
        # The real kernel32 raises WindowsOnlyError on other OSes; a test gives an emulation.
        self._kernel32 = kernel32 if kernel32 is not None else Kernel32()
        self._translator = _abi.Translator()

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        raise NotImplementedError(
            "the ReadDirectoryChangesW driving logic is not built yet; use backend='polling'"
        )

    def unwatch(self, handle: Hashable) -> None:
        self._translator.forget(handle)

    def read(self) -> Sequence[Observation]:
        return []

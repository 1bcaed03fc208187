"""What the kqueue backend holds per watched directory, and how it lists one.

A watched directory holds one descriptor of its own and one per regular file in
it (a file's writes are seen only on its own descriptor). Each registered
descriptor is a :class:`Knote`, found again by its ``udata``: a counter, never
the descriptor's number, which the OS reuses once it is closed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from crosswatch.backend import WatchError, WatchGoneError, WatchLimitError

from ._abi import Vnode
from ._limits import RESERVE

#: Opens a watched directory again, to list it (its own descriptor may be for
#: events only, as ``O_EVTONLY`` is on macOS).
LIST_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
#: The entry is not there (any more) as what was expected: not an error.
GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EMLINK, errno.EBADF})
#: The open-file limit (per process, per system) or the kernel's memory.
LIMIT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


@dataclass(eq=False, slots=True)
class Knote:
    """One descriptor registered with the queue.

    ``vnode`` says what it watches (``None``: only its own fate, for ``fate``, a
    handle of :meth:`watch_self`). ``home`` is the directory whose bookkeeping holds
    it: its own for a directory's descriptor. ``ino``: for a file, the inode number
    its directory's listing showed when it was opened, to see the name reused.
    """

    fd: int
    udata: int
    vnode: Vnode | None
    home: Dir | None = None
    ino: int = 0
    fate: int | None = None


@dataclass(eq=False, slots=True)
class Dir:
    """A watched directory: its handle, its identity, its descriptor and its files'."""

    handle: int
    path: str
    identity: tuple[int, int]
    knote: Knote | None = None
    files: dict[str, Knote] = field(default_factory=dict)

    def file_path(self, name: str) -> str:
        return os.path.join(self.path, name)


class Refused(Exception):
    """Opening or registering an entry of a directory failed: the directory is refused."""

    def __init__(self, error: OSError, path: str) -> None:
        super().__init__(error, path)
        self.error = error
        self.path = path


def regular_files(listing_fd: int) -> Iterator[tuple[str, int]]:
    """(name, inode number) of each regular file in the directory open as ``listing_fd``.

    Links, sockets, FIFOs and devices get no descriptor: their directory sees them
    come and go.
    """
    with os.scandir(listing_fd) as it:
        for entry in it:
            try:
                if entry.is_file(follow_symlinks=False):
                    yield entry.name, entry.inode()
            except OSError:
                continue  # vanished while listed


def is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def limit_message(err: int, path: str, limits: tuple[int, int] | None) -> str:
    """What to tell the user when ``err`` (EMFILE, ENFILE, ENOMEM) refused ``path``."""
    if err == errno.ENFILE:
        what = "the system's table of open files is full (kern.maxfiles)"
    elif err == errno.ENOMEM:
        what = "the kernel has no memory for more kqueue watches"
    else:
        soft = f" ({limits[0]}, RLIMIT_NOFILE)" if limits is not None else " (RLIMIT_NOFILE)"
        what = (f"the open-file limit{soft} is reached, less {RESERVE} descriptors kept for "
                "the rest of the program")
    return (
        f"kqueue holds one open descriptor per watched directory and file, and {what}: "
        f"cannot watch {path!r}; raise the limit (ulimit -n, up to the hard limit "
        "ulimit -Hn and kern.maxfilesperproc), watch a smaller tree, or use "
        "backend='fsevents' (macOS) or backend='polling'"
    )


def refusal(exc: OSError, path: str, limits: tuple[int, int] | None) -> WatchError:
    """The error :meth:`watch` raises when opening or registering ``path`` failed."""
    err = exc.errno or 0
    if err in GONE_ERRNOS:
        return WatchGoneError(err, os.strerror(err), path)
    if err in LIMIT_ERRNOS:
        return WatchLimitError(err, limit_message(err, path, limits), path)
    return WatchError(err, f"kqueue cannot watch {path!r}: {os.strerror(err)}", path)


def file_refusal(exc: OSError, path: str, limits: tuple[int, int] | None) -> WatchError:
    """The error for a directory one of whose files cannot be opened or registered.

    Always a ``WatchLimitError``: the engine then polls the directory (and says so
    once) rather than leave that file's writes unseen.
    """
    err = exc.errno or 0
    if err in LIMIT_ERRNOS:
        return WatchLimitError(err, limit_message(err, path, limits), path)
    return WatchLimitError(
        err,
        f"kqueue cannot open the file {path!r} to see its writes ({os.strerror(err)}): "
        "its directory is polled instead",
        path,
    )

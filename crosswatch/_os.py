"""The OS facts the core depends on, each with a fallback where the OS lacks it.

Everything in the core that differs between operating systems is read from this
one module object at call time, so a test can force the fallbacks on Linux by
replacing its attributes (see :func:`crosswatch.testing.force_portable`):

- :data:`DIR_FLAGS`: how a directory is opened to be listed.
- :data:`LISTS_BY_FD`: can a directory be opened, checked (``fstat``) and listed
  (``scandir(fd)``) through one descriptor? Else it is listed by path, with a stat
  before and after (:func:`open_listing` says what that guarantees).
- :data:`SELECTS_PIPES`: do selectors wait on pipes? Else :class:`Waker` is a
  socket pair (Windows ``select`` takes only sockets).
- :data:`ENTRY_STAT_IDENTIFIES`: does a listed entry's ``stat()`` hold its
  identity (``st_dev``, ``st_ino``)? Else :func:`entry_lstat` asks the OS again
  (on Windows those fields are 0 in what a listing gives).
- :data:`FOLDS_NAMES`: do file systems here take names that differ in case or in
  Unicode form for one entry? ``None``: it differs by volume, and
  :func:`folds_names` finds out per root.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from . import _longpath as longpath

if TYPE_CHECKING:
    from os import _ScandirIterator

    #: An open directory to list: a descriptor, or (listed by path) its entries.
    Opened = int | _ScandirIterator[str]

#: Flags for ``os.open`` of a directory to list (only the ones this OS has).
DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
#: Can an opened directory be listed through its descriptor?
LISTS_BY_FD = hasattr(os, "O_DIRECTORY") and os.scandir in os.supports_fd
#: Do ``selectors`` wait on pipes (everywhere but Windows)?
SELECTS_PIPES = sys.platform != "win32"
#: Does ``DirEntry.stat()`` hold ``st_dev`` and ``st_ino``? (Windows: zeros.)
ENTRY_STAT_IDENTIFIES = sys.platform != "win32"
#: macOS volumes (APFS, HFS+) never tell apart the Unicode forms of a name, even
#: the case-sensitive ones; elsewhere it depends on the volume.
FOLDS_NAMES: bool | None = True if sys.platform == "darwin" else None


class Replaced(FileNotFoundError):
    """The path led to another directory while it was being opened to be listed:
    what was asked for is, as far as this listing can tell, gone from there."""


def open_listing(path: str) -> tuple[Opened, os.stat_result]:
    """An open directory at ``path`` (symbolic links followed) to list with
    :func:`entries`, and its stat; close it with :func:`close`.

    With :data:`LISTS_BY_FD` the stat is the open directory's own (``fstat``): the
    listing is of exactly the directory stated, at any depth. Otherwise the path is
    stated, opened for listing, and stated again; if the two stats name different
    directories, :class:`Replaced` is raised. That proves the listing is of the
    stated directory unless, between the two stats, the path was led to another
    directory and back again (two renames within microseconds), or the directory
    was removed and its identity reused at once. Paths past ``PATH_MAX`` are not
    reachable that way (see :func:`crosswatch._longpath.entries_out_of_reach`).
    """
    if LISTS_BY_FD:
        fd = longpath.open_dir(path, DIR_FLAGS)
        try:
            return fd, os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
    before = os.stat(path)
    listing = os.scandir(path)
    try:
        after = os.stat(path)
    except BaseException:
        listing.close()
        raise
    if (after.st_ino, after.st_dev) != (before.st_ino, before.st_dev):
        listing.close()
        raise Replaced(errno.ENOENT, "the path led to another directory while it was opened", path)
    return listing, before


def entries(opened: Opened) -> _ScandirIterator[str]:
    """The entries of a directory from :func:`open_listing` (a context manager)."""
    return os.scandir(opened) if isinstance(opened, int) else opened


def close(opened: Opened) -> None:
    """Release what :func:`open_listing` opened (after its entries are used)."""
    if isinstance(opened, int):
        os.close(opened)
    else:
        opened.close()


def entry_lstat(entry: os.DirEntry[str]) -> os.stat_result:
    """A listed entry's lstat, identity included; OSError if it is gone.

    Where a listing's stats lack identities, directories are listed by path
    (Windows has no ``scandir(fd)``), so ``entry.path`` is a whole path.
    """
    if ENTRY_STAT_IDENTIFIES or LISTS_BY_FD:
        return entry.stat(follow_symlinks=False)
    return os.lstat(entry.path)


def folds_names(path: str, names: Iterable[str] = ()) -> bool:
    """Does the file system of directory ``path`` find one entry under names that
    differ only in case (NTFS, FAT, case-insensitive APFS and ext4 casefold)?

    Nothing is written or listed: one of ``names`` (entries of ``path``, as a
    listing gave them), or else a name on the way to ``path``, is looked up with
    its case swapped. Where no name has a letter to
    swap, the OS's usual volume decides (Windows: yes; others: no).
    """
    if FOLDS_NAMES is not None:
        return FOLDS_NAMES
    try:
        top = os.lstat(path)
    except OSError:
        return sys.platform == "win32"
    for candidate in _spellings(path, names):
        try:
            st = os.lstat(candidate)
        except OSError:
            continue  # gone meanwhile
        if st.st_dev != top.st_dev:
            continue  # another file system, mounted on the way
        try:
            other = os.lstat(_swapped(candidate))
        except OSError:
            return False  # found one way, not the other: names are told apart
        return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)
    return sys.platform == "win32"


def _spellings(path: str, names: Iterable[str]) -> Iterator[str]:
    """Paths whose last name has a letter whose case can be swapped: entries of the
    directory first (some file systems fold names per directory: ext4 casefold,
    Windows' per-directory case sensitivity), then its own path's, deepest first."""
    for name in names:
        if name.swapcase() != name:
            yield os.path.join(path, name)
    at = os.path.abspath(path)
    while True:
        head, tail = os.path.split(at)
        if not tail:
            break
        if tail.swapcase() != tail:
            yield at
        at = head


def _swapped(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, tail.swapcase())


class Waker:
    """What wakes a selector from another thread: a pipe, or a socket pair where
    selectors take only sockets. Writes never block; a full buffer is awake already."""

    def __init__(self) -> None:
        self._socks: tuple[socket.socket, socket.socket] | None = None
        if SELECTS_PIPES:
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)
        else:
            a, b = self._socks = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            self._r, self._w = a.fileno(), b.fileno()

    def fileno(self) -> int:
        """The descriptor to wait on for reading (-1 once closed)."""
        return self._r

    def wake(self) -> None:
        """Make the selector's next (or current) wait return; safe after close."""
        try:
            if self._socks is not None:
                self._socks[1].send(b"!")
            elif self._w >= 0:
                os.write(self._w, b"!")
        except OSError:
            pass  # already awake (buffer full) or closed

    def drain(self) -> None:
        """Take every wake-up written so far, so that the next wait sleeps again."""
        try:
            if self._socks is not None:
                while self._socks[0].recv(512):
                    pass
            else:
                while os.read(self._r, 512):
                    pass
        except OSError:
            pass  # nothing left (BlockingIOError), or closed

    def close(self) -> None:
        """Release both ends; safe to call twice."""
        fds, self._r, self._w = (self._r, self._w), -1, -1
        socks, self._socks = self._socks, None
        if socks is not None:
            for sock in socks:
                sock.close()
            return
        for fd in fds:
            if fd >= 0:
                os.close(fd)

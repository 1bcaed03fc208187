"""A case-insensitive, normalization-insensitive file system on Linux, for tests.

Linux test machines rarely have one (no vfat, no ext4 casefold), yet macOS (APFS,
HFS+) and Windows (NTFS) watch such file systems by default. :class:`FoldingFS`
mounts one through the kernel's FUSE protocol, spoken directly over
``/dev/fuse`` by a thread of the test process: a passthrough to a backing
directory whose names it folds as APFS does. Root only; no library needed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import sys
import tempfile
import threading
from types import TracebackType
from typing import Any

from ._fuse_server import MAX_WRITE, Server

_BUFFER = MAX_WRITE + 64 * 1024  # the kernel wants room for a write's header too
_MNT_DETACH = 2
_MS_NOSUID = 2
_MS_NODEV = 4


class FuseUnavailableError(OSError):
    """A :class:`FoldingFS` cannot be mounted here; the message says why."""


class FuseServerError(RuntimeError):
    """The file system's server thread failed, or did not end when unmounted."""


class FoldingFS:
    """A FUSE mount of ``backing`` whose names fold like APFS's (the macOS default).

    ``with FoldingFS(backing) as fs:`` mounts on a fresh directory, ``fs.mountpoint``,
    and everything done there goes through the kernel to real files in ``backing``:

    - names are case-insensitive and Unicode-normalization-insensitive (NFC and
      NFD name one entry) but case- and form-preserving: an entry keeps the
      spelling it was created with, and listings return stored spellings;
    - creating a name that folds to an existing one opens that entry (``O_EXCL``:
      ``EEXIST``); ``mkdir`` of one fails with ``EEXIST``;
    - a case-only rename of a file (``a`` -> ``A``) respells it, same inode; a
      rename onto a name that folds to another entry replaces that entry;
    - names that are not UTF-8 pass through as bytes and compare exactly;
    - ``st_ino`` is the backing entry's, ``st_dev`` the mount's; the kernel keeps
      nothing cached (timeouts 0), so it sees every change;
    - inotify on the mount reports what is done through the mount, each name as the
      caller spelled it (``unlink("A")`` of ``a`` is ``IN_DELETE "A"``).

    **Behind the kernel's back:** changing files in ``fs.backing`` directly (see
    :meth:`behind`) is what a remote host does to a network file system: the mount
    shows the change at the next look, and no watch on the mount hears of it.

    Unlike APFS, a case-only rename of a *directory* does nothing: the kernel holds
    one inode for a directory under all its spellings (so that a watch on it hears
    what is done in it through any of them) and skips a rename onto the same
    inode. Respell a directory behind the kernel's back instead. Each other spelling
    of a file is an inode of its own for the kernel (that is how a case-only rename
    reaches the file system), with its own page cache: every open drops it, but a
    file open through two spellings at once may read stale data through one.
    Needs Linux, root and ``/dev/fuse``: :meth:`available` says why not.
    """

    device = "/dev/fuse"

    def __init__(self, backing: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.backing = os.path.abspath(os.fspath(backing))
        self.timeout = timeout
        self.mountpoint = ""
        self._fd = -1
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self._failure: BaseException | None = None
        self._mounted = False
        self._libc: Any = None

    @classmethod
    def available(cls) -> str | None:
        """Why a FoldingFS cannot be mounted here, or None if it can."""
        if not sys.platform.startswith("linux"):
            return "FoldingFS speaks the Linux kernel's FUSE protocol: Linux only"
        geteuid = getattr(os, "geteuid", None)
        if geteuid is None or geteuid() != 0:
            return "mounting a FoldingFS needs root (mount(2) of a FUSE file system)"
        try:
            os.close(os.open(cls.device, os.O_RDWR | getattr(os, "O_CLOEXEC", 0)))
        except OSError as exc:
            return f"{cls.device} cannot be opened ({exc.strerror}): no FUSE in this kernel"
        return None

    def behind(self, path: str | os.PathLike[str] = "") -> str:
        """Where ``path`` (relative, or under ``mountpoint``) is in the backing store.

        Change files there to change them behind the kernel's back.
        """
        raw = os.fspath(path)
        if self.mountpoint and os.path.isabs(raw):
            rel = os.path.relpath(raw, self.mountpoint)
            if rel == os.pardir or rel.startswith(os.pardir + os.sep):
                raise ValueError(f"{raw!r} is not under the mount point {self.mountpoint!r}")
            raw = "" if rel == os.curdir else rel
        return os.path.join(self.backing, raw) if raw else self.backing

    def __enter__(self) -> FoldingFS:
        reason = self.available()
        if reason is not None:
            raise FuseUnavailableError(errno.ENODEV, reason)
        if not os.path.isdir(self.backing):
            raise NotADirectoryError(errno.ENOTDIR, "the backing store must be a directory",
                                     self.backing)
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._server = Server(os.fsencode(self.backing))
        self.mountpoint = tempfile.mkdtemp(prefix="crosswatch-fold-")
        try:
            self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            options = (f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,"
                       "allow_other,default_permissions")
            if self._libc.mount(b"foldingfs", os.fsencode(self.mountpoint), b"fuse",
                                ctypes.c_ulong(_MS_NOSUID | _MS_NODEV),
                                options.encode()) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mount of the FUSE file system failed: {os.strerror(err)}",
                              self.mountpoint)
            self._mounted = True
            self._wake = os.pipe()
            self._thread = threading.Thread(target=self._serve, name="crosswatch-foldingfs",
                                             daemon=True)
            self._thread.start()
            os.stat(self.mountpoint)  # the kernel waits for INIT; then a first request
            if not self._server.initialized.is_set():
                raise FuseServerError("the kernel's INIT request was not answered")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _serve(self) -> None:
        """The server thread: read a request, write its reply, until unmounted."""
        assert self._server is not None
        assert self._wake is not None
        fd, wake = self._fd, self._wake[0]
        try:
            while True:
                ready = select.select([fd, wake], [], [])[0]
                if wake in ready:
                    return
                try:
                    buf = os.read(fd, _BUFFER)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.ENOENT):
                        continue  # nothing after all, or a request the caller gave up
                    if exc.errno == errno.ENODEV:
                        return  # unmounted
                    raise
                out = self._server.handle(buf)
                if out is not None:
                    try:
                        os.write(fd, out)
                    except OSError as exc:
                        if exc.errno != errno.ENOENT:  # ENOENT: the request was interrupted
                            raise
                if self._server.destroyed:
                    return
        except BaseException as exc:
            self._failure = exc
            # Close the device at once: the kernel then fails every request still
            # waiting (ENOTCONN) instead of leaving callers blocked forever.
            os.close(fd)
            self._fd = -1

    def close(self) -> None:
        """Unmount (lazily), stop and join the server, close everything, remove the
        mount point; :class:`FuseServerError` if the server failed or is stuck."""
        if self._mounted:
            self._libc.umount2(os.fsencode(self.mountpoint), _MNT_DETACH)
            self._mounted = False
        stuck = False
        if self._thread is not None:
            self._thread.join(min(1.0, self.timeout))  # unmounted: the device says ENODEV
            if self._thread.is_alive() and self._wake is not None:
                # Still serving the detached mount (a file left open there): stop; the
                # device's close below fails that file's later calls (ENOTCONN).
                os.write(self._wake[1], b"x")
                self._thread.join(self.timeout)
            stuck = self._thread.is_alive()
            self._thread = None
        if not stuck:
            if self._fd >= 0:
                os.close(self._fd)  # also fails whatever still waits on the mount
                self._fd = -1
            if self._wake is not None:
                os.close(self._wake[0])
                os.close(self._wake[1])
                self._wake = None
            if self._server is not None:
                self._server.close()
        if self.mountpoint:
            try:
                os.rmdir(self.mountpoint)
            except OSError:
                pass
        if stuck:
            raise FuseServerError(
                f"the FUSE server thread of {self.mountpoint!r} did not end within "
                f"{self.timeout} s of the unmount; a request handler is stuck")
        failure, self._failure = self._failure, None
        if failure is not None:
            raise FuseServerError(f"the FUSE server thread failed: {failure!r}") from failure

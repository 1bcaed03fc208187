"""Path I/O at any depth: the plain call while a path fits, directory descriptors past that.

The OS refuses a path of ``PATH_MAX`` bytes or more (``ENAMETOOLONG``), however deep
the tree really goes. Such a path is opened in pieces instead: its longest leading
part that fits, then each further part relative to the directory reached so far
(``openat``), every piece under the limit, each descriptor on the way closed. A path
that fits takes exactly the call it always took; the pieces cost only the paths the
plain call refused.

Where ``open`` takes no ``dir_fd`` (:data:`WALKS` is false), or directories are not
listed by descriptor (``crosswatch._os.LISTS_BY_FD``), nothing past the limit can
be reached: the scanner stops listing where entries could pass it, and says so once
per root.
"""

from __future__ import annotations

import errno
import os

NAME_MAX = 255


def _path_max() -> int:
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096


#: Bytes in a path, its terminating NUL included, that the OS still takes whole.
PATH_MAX = _path_max()
#: Can a path longer than that be walked in pieces here?
WALKS = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd
#: How each directory on the way is opened: just to look names up in it.
_STEP = (
    getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
)


def _pieces(path: str) -> list[bytes]:
    """``path`` cut at separators into pieces the OS takes (``ENAMETOOLONG`` if it cannot be)."""
    raw, limit = os.fsencode(path), PATH_MAX - 1
    pieces, start = [], 0
    while len(raw) - start > limit:
        cut = raw.rfind(b"/", start, start + limit + 1)
        if cut <= start:  # one name longer than the OS allows
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
        pieces.append(raw[start:cut])
        start = cut + 1
    pieces.append(raw[start:] or b".")
    return pieces


def _walked(path: str, pieces: list[bytes]) -> int:
    """A descriptor (for lookups only) of the directory ``pieces`` lead to."""
    fd = -1
    try:
        for piece in pieces:
            step = os.open(piece, _STEP) if fd < 0 else os.open(piece, _STEP, dir_fd=fd)
            if fd >= 0:
                os.close(fd)
            fd = step
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise OSError(exc.errno, exc.strerror, path) from None
    return fd


def _parent(path: str, refused: OSError) -> tuple[int, bytes]:
    """A lookup descriptor of the directory holding ``path``'s last piece, and that piece.

    ``refused``, the plain call's error, stands where pieces cannot help.
    """
    if refused.errno != errno.ENAMETOOLONG or not WALKS:
        raise refused
    pieces = _pieces(path)
    if len(pieces) < 2:  # it fits: a name in it is too long
        raise refused
    return _walked(path, pieces[:-1]), pieces[-1]


def open_dir(path: str, flags: int) -> int:
    """``os.open(path, flags)`` at any depth (``flags`` apply to the last component)."""
    try:
        return os.open(path, flags)
    except OSError as exc:
        fd, last = _parent(path, exc)
    try:
        return os.open(last, flags, dir_fd=fd)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)


def lstat(path: str) -> os.stat_result:
    """``os.lstat(path)`` at any depth."""
    try:
        return os.lstat(path)
    except OSError as exc:
        fd, last = _parent(path, exc)
    try:
        return os.stat(last, dir_fd=fd, follow_symlinks=False)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)


def entries_out_of_reach(path: str) -> bool:
    """Could an entry of the directory at ``path`` have a path the OS refuses whole?
    (Asked only where nothing can walk it in pieces.)"""
    return len(os.fsencode(path)) + 1 + NAME_MAX >= PATH_MAX

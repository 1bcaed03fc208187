"""What a watcher is set up with: its roots, checked, and what their trees leave out."""

from __future__ import annotations

import os
from collections.abc import Iterable

from . import _config
from ._engine import Ignore
from ._errors import WatchPathError

Paths = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def roots(paths: Iterable[Paths], recursive: bool) -> list[str]:
    """Absolute, existing, de-duplicated roots; a root inside another one is covered by it."""
    roots: list[str] = []
    for raw in paths:
        path = os.path.abspath(os.fsdecode(raw))
        try:
            os.stat(path)
        except FileNotFoundError:
            raise WatchPathError(
                f"cannot watch {path!r}: it does not exist; check the path or create it first"
            ) from None
        except OSError as exc:
            raise WatchPathError(f"cannot watch {path!r}: {exc.strerror}") from None
        if path not in roots:
            roots.append(path)
    dirs = [r for r in roots if os.path.isdir(r)]

    def covered(root: str) -> bool:
        for d in dirs:
            if d == root:
                continue
            inside = root.startswith(d.rstrip(os.sep) + os.sep)
            if inside and (recursive or (os.path.dirname(root) == d and not os.path.isdir(root))):
                return True
        return False

    return [r for r in roots if not covered(r)]


def ignore(settings: _config.Settings) -> Ignore:
    """What the trees leave out: the patterns given, the default list unless it is
    turned off, hidden entries if asked, and files no include pattern takes in."""
    defaults = _config.DEFAULT_IGNORE if settings.default_ignore is not False else ()
    return Ignore(
        [*settings.ignore, *defaults], hidden=settings.hidden is not False,
        include=settings.include,
    )


def check_readable(path: str) -> None:
    if not os.path.isdir(path):
        return
    try:
        os.scandir(path).close()
    except PermissionError:
        raise WatchPathError(
            f"cannot watch {path!r}: permission denied listing it; "
            "grant read and search access, or watch a directory above or below it"
        ) from None

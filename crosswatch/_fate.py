"""A root's path: what it leads to, and what must stay in place for it to lead there."""

from __future__ import annotations

import os


def followed(path: str) -> str:
    """``path``, or the path it leads to if it is a symbolic link.

    A backend watches what it is given without following a final link (so that a
    directory replaced by a link is never watched through it); a root given as a
    link is followed here, once, and events keep the path as given.
    """
    return os.path.realpath(path) if os.path.islink(path) else path


def fate_paths(path: str, watched: str) -> list[str]:
    """What, if renamed or removed, would make ``path`` lead elsewhere, or nowhere.

    Each entry above ``path`` as given (a directory, or a symbolic link on the way,
    which is then watched itself), each directory above where it leads, and
    ``path`` itself if it is a link. Left out: the directory ``watched`` (or the one
    the link ``watched`` leads to), which is watched with its entries and reports
    its own fate, and ``/``, which is never renamed.
    """
    found: dict[str, None] = {}
    for start in (path, os.path.realpath(path)):
        up = os.path.dirname(start)
        while up != os.path.dirname(up):
            found[up] = None
            up = os.path.dirname(up)
    if os.path.islink(path):
        found[path] = None
    found.pop(os.path.realpath(watched), None)
    if not os.path.islink(watched):
        found.pop(watched, None)
    return list(found)

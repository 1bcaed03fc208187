"""Trees deeper than ``PATH_MAX``: made, changed and removed through directory descriptors.

Paths to such trees are refused whole by the OS, and ``shutil.rmtree`` recurses once
per level; these helpers take any depth, holding two descriptors at most. Where
directories cannot be used through descriptors (Windows), they work by whole paths,
as far as the OS takes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .._longpath import open_dir
from .._os import DIR_FLAGS as _DIR

#: Can directories be made, opened, listed and emptied through descriptors here?
BY_FD = (
    {os.open, os.mkdir, os.unlink, os.rmdir} <= os.supports_dir_fd
    and os.scandir in os.supports_fd
)


def in_dir(path: str, do: Callable[[int], object]) -> None:
    """Call ``do`` with a descriptor of the directory at ``path`` (any depth)."""
    fd = open_dir(path, _DIR)
    try:
        do(fd)
    finally:
        os.close(fd)


def touch(directory: str, name: str) -> None:
    """Create the empty file ``name`` in ``directory`` (any depth)."""
    if not BY_FD:
        os.close(os.open(os.path.join(directory, name), os.O_CREAT | os.O_WRONLY))
        return
    in_dir(directory, lambda fd: os.close(os.open(name, os.O_CREAT | os.O_WRONLY, dir_fd=fd)))


def make_chain(top: str, name: str, depth: int) -> None:
    """Make ``top`` and ``depth`` directories ``name`` nested in it, by descriptors."""
    os.mkdir(top)
    if not BY_FD:
        for _ in range(depth):
            top = os.path.join(top, name)
            os.mkdir(top)
        return
    fd = os.open(top, _DIR)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            below = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = below
    finally:
        os.close(fd)


def remove_tree(top: str) -> None:
    """Remove ``top`` and all below it at any depth (``shutil.rmtree`` recurses)."""
    if not BY_FD:
        _remove_by_path(top)
        return
    stack = [top]
    while stack:
        path = stack[-1]
        subdirs = []
        fd = open_dir(path, _DIR)
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(os.path.join(path, entry.name))
                    else:
                        os.unlink(entry.name, dir_fd=fd)
        finally:
            os.close(fd)
        if subdirs:
            stack += subdirs
            continue
        stack.pop()
        parent, name = os.path.split(path)
        fd = open_dir(parent, _DIR)
        try:
            os.rmdir(name, dir_fd=fd)
        finally:
            os.close(fd)


def _remove_by_path(top: str) -> None:
    stack = [top]
    while stack:
        path = stack[-1]
        with os.scandir(path) as it:
            subdirs = []
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                else:
                    os.unlink(entry.path)
        if subdirs:
            stack += subdirs
            continue
        stack.pop()
        os.rmdir(path)

"""The names in each directory of a recursive watch, kept from the events.

A deleted or moved directory takes its entries with it, and watchdog names each
of them (a deletion for every entry ``rmtree`` removed, a move for every entry
that moved along); crosswatch reports the directory alone. The mirror knows
what was inside, so the compat layer can name those entries without reading a
directory that is no longer there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator


class Mirror:
    """Directory path -> {name: is_dir}, for every directory below a root."""

    def __init__(self, root: str) -> None:
        self._dirs: dict[str, dict[str, bool]] = {root: {}}

    def seed(self, root: str) -> None:
        """Add every entry found below ``root`` now (symbolic links not followed)."""
        stack = [root]
        while stack:
            top = stack.pop()
            names = self._dirs.setdefault(top, {})
            try:
                with os.scandir(top) as it:
                    for entry in it:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        names[entry.name] = is_dir
                        if is_dir:
                            stack.append(entry.path)
            except OSError:
                continue  # gone or unreadable: crosswatch reports what it can see

    def created(self, path: str, is_dir: bool) -> None:
        parent, name = os.path.split(path)
        self._dirs.setdefault(parent, {})[name] = is_dir
        if is_dir:
            self._dirs.setdefault(path, {})

    def deleted(self, path: str) -> list[tuple[str, bool]]:
        """Forget ``path``; return the entries still known below it, each before
        the directory holding it (the order ``rmtree`` removes them in)."""
        parent, name = os.path.split(path)
        self._dirs.get(parent, {}).pop(name, None)
        below = list(self._post_order(path))
        for entry, is_dir in below:
            if is_dir:
                self._dirs.pop(entry, None)
        self._dirs.pop(path, None)
        return below

    def moved(self, src: str, dst: str, is_dir: bool) -> list[tuple[str, bool]]:
        """Relink ``src`` at ``dst``, replacing what was there; return the entries
        below ``dst`` afterwards, top-down as ``os.walk`` lists them."""
        src_parent, src_name = os.path.split(src)
        known = self._dirs.get(src_parent, {}).pop(src_name, None) is not None
        if not known:  # already in place (found there when the mirror was seeded)
            self.created(dst, is_dir)
            return list(self._walk(dst)) if is_dir else []
        self.deleted(dst)
        self.created(dst, is_dir)
        if is_dir:
            prefix = len(src)
            for old in [src, *(p for p, d in self._walk(src) if d)]:
                self._dirs[dst + old[prefix:]] = self._dirs.pop(old, {})
        return list(self._walk(dst)) if is_dir else []

    def _post_order(self, top: str) -> Iterator[tuple[str, bool]]:
        stack: list[tuple[str, Iterator[tuple[str, bool]]]] = [(top, self._children(top))]
        while stack:
            path, children = stack[-1]
            for child, is_dir in children:
                if is_dir:
                    stack.append((child, self._children(child)))
                    break
                yield child, False
            else:
                stack.pop()
                if stack:
                    yield path, True

    def _walk(self, top: str) -> Iterator[tuple[str, bool]]:
        stack = [top]
        while stack:
            path = stack.pop()
            children = list(self._children(path))
            subdirs = [child for child, is_dir in children if is_dir]
            yield from ((child, True) for child in subdirs)
            yield from ((child, False) for child, is_dir in children if not is_dir)
            stack.extend(reversed(subdirs))

    def _children(self, path: str) -> Iterator[tuple[str, bool]]:
        names = self._dirs.get(path, {})
        return iter([(os.path.join(path, name), is_dir) for name, is_dir in names.items()])

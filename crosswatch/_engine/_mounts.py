"""Mount points that changed, found in the watched trees.

A backend that watches the mount table (:class:`~crosswatch.backend.MountWatch`)
says only which points changed: the trees are the engine's, so the engine finds
what each point means for the roots that backend watches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .._backend import Backend
from .._mounts import within
from .._tree import Node
from ._roots import Roots


def mounted(roots: Roots, backend: Backend, points: Iterable[str]) -> tuple[list[Node], list[Node]]:
    """(entries whose subtree is another file system now, tops of roots whose path is).

    A point inside a tree names its nearest cached entry: rescanned, its new contents
    are reported (and watched). A point at or above a root's top means the directory
    watched may not be the one at the root's path any more (or is again): the top is
    to be verified. The mount table has resolved paths; a root's may go through links.
    """
    inside: dict[int, Node] = {}
    covered: dict[int, Node] = {}
    tops = [(r.node, os.path.realpath(r.node.path())) for r in roots.all if r.backend is backend]
    for point in sorted(points):
        for top, real in tops:
            if within(real, point):
                covered[id(top)] = top
            elif within(point, real):
                node = _nearest(top, point[len(real) :])
                inside[id(node)] = node
    return list(inside.values()), list(covered.values())


def _nearest(top: Node, below: str) -> Node:
    """The cached entry at ``below`` (a path relative to ``top``), or its nearest ancestor."""
    node = top
    for part in below.split(os.sep):
        child = node.children.get(part) if part else node
        if child is None:
            break
        node = child
    return node

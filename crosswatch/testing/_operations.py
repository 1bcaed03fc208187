"""Random file operations for convergence tests: one at a time, from any process."""

from __future__ import annotations

import os
import random

from ._mirror import snapshot
from ._scripted import FileOps

__all__ = ["random_operation"]


def random_operation(
    rng: random.Random, root: str, ops: FileOps, names: int = 40, *, respell: bool = False
) -> None:
    """One random create, write, mkdir, rename or delete somewhere under ``root``.

    Entries are named ``n0`` .. ``n{names-1}``: with few names, renames chain and collide.
    ``respell``: paths are spelled with random cases (``N3/n0`` for ``n3/n0``), which on
    a file system that folds names reach the same entries by other spellings.
    """
    entries = [root]
    for path, is_dir in snapshot(root).items():
        if is_dir:
            entries.append(path)
    where = rng.choice(entries)
    name = os.path.join(where, f"n{rng.randrange(names)}")
    existing = [p for p in snapshot(root) if not p.startswith(name + os.sep)]

    def spelled(path: str) -> str:
        if not respell:
            return path
        rel = os.path.relpath(path, root).split(os.sep)
        return os.path.join(root, *(p.swapcase() if rng.random() < 0.3 else p for p in rel))

    op = rng.random()
    try:
        if op < 0.3:
            ops.write(spelled(name), b"x" * rng.randrange(10), append=rng.random() < 0.5)
        elif op < 0.45:
            ops.mkdir(spelled(name))
        elif op < 0.75 and existing:
            src = rng.choice(existing)
            if not name.startswith(src + os.sep):
                ops.rename(spelled(src), spelled(name))
        elif existing:
            ops.rmtree(spelled(rng.choice(existing)))
    except (FileExistsError, IsADirectoryError, NotADirectoryError, OSError):
        pass  # a collision with what is there: the operation simply did not happen

"""Convergence under load: a mirror built only from events equals the disk once quiet."""

from __future__ import annotations

import pytest

from crosswatch import Watcher
from crosswatch.testing._storm import storm_and_converge


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_polling_mirror_converges_under_a_storm(fast_root: str, seed: int) -> None:
    """Four processes create, write, rename and delete files and directories at random."""
    with Watcher(fast_root, backend="polling", poll_interval=0.05) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed)
    print(f"{ops} operations")
    assert ops > 500
    assert consumed, "the storm produced no events"

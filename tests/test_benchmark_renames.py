"""The storm benchmark counts renames by the identity of the entry renamed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from renames import count

# The consumer's view before the storm: path -> inode.
INITIAL: dict[str, int | None] = {"/r/a": 1, "/r/d": 2, "/r/d/f": 3}


def rename(src: str, dst: str, when: int, ino: int | None) -> list[Any]:
    return [src, dst, when, ino]


def test_a_move_reported_under_a_renamed_directory_is_a_move() -> None:
    # f goes to d/x while d is renamed to e: the tool reports the move at e/x.
    log = [[20, "moved", "/r/e", "/r/d", None], [30, "moved", "/r/e/x", "/r/e/f", None]]
    assert count([rename("/r/d/f", "/r/d/x", 10, 3)], INITIAL, log) == {
        "renames": 1, "matched": 1, "uncertain": 0}


def test_a_rename_reported_as_deleted_and_created_is_a_miss() -> None:
    log = [[20, "deleted", "/r/a", None, None], [20, "created", "/r/b", None, 1]]
    assert count([rename("/r/a", "/r/b", 10, 1)], INITIAL, log) == {
        "renames": 1, "matched": 0, "uncertain": 0}


def test_an_entry_the_consumer_never_had_at_the_source_does_not_count() -> None:
    # Another entry (inode 9) took over a's name and moved on before the tool told.
    assert count([rename("/r/a", "/r/b", 10, 9)], INITIAL, [])["renames"] == 0
    # Nothing at the source in the consumer's view: created and renamed unseen.
    assert count([rename("/r/new", "/r/b", 10, 8)], INITIAL, [])["renames"] == 0


def test_each_move_stands_for_one_rename_only() -> None:
    # a goes to b and back; one move is reported, so one of the two is missed.
    renames = [rename("/r/a", "/r/b", 10, 1), rename("/r/b", "/r/a", 40, 1)]
    log = [[20, "moved", "/r/b", "/r/a", None]]
    assert count(renames, INITIAL, log) == {"renames": 2, "matched": 1, "uncertain": 0}


def test_a_move_reported_before_the_rename_was_made_is_not_its_move() -> None:
    # The first rename's identity is uncertain; the second is reported as deleted.
    renames = [rename("/r/a", "/r/b", 10, None), rename("/r/b", "/r/c", 40, 1)]
    log = [[20, "moved", "/r/b", "/r/a", None], [50, "deleted", "/r/b", None, None]]
    assert count(renames, INITIAL, log) == {"renames": 1, "matched": 0, "uncertain": 1}


def test_a_rename_of_uncertain_identity_is_left_out() -> None:
    assert count([rename("/r/a", "/r/b", 10, None)], INITIAL, []) == {
        "renames": 0, "matched": 0, "uncertain": 1}


def test_an_entry_whose_inode_was_gone_on_arrival_counts_by_its_path() -> None:
    # created at /r/n, already gone when the consumer looked: identity unknown.
    log = [[5, "created", "/r/n", None, None], [20, "moved", "/r/m", "/r/n", None]]
    assert count([rename("/r/n", "/r/m", 10, 7)], INITIAL, log) == {
        "renames": 1, "matched": 1, "uncertain": 0}

"""The benchmark against a baseline revision: what it imports, the turns, the verdicts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import report
import revisions
from run import QUICK, Plan

in_git = pytest.mark.skipif(not (revisions.REPO / ".git").exists(),
                            reason="needs a git checkout of crosswatch")


@in_git
def test_a_revision_is_exported_with_its_core_and_inotify_plugin(tmp_path: Path) -> None:
    old = revisions.export("HEAD", tmp_path)
    assert old.tool == "crosswatch@HEAD"
    assert (tmp_path / "crosswatch" / "__init__.py").is_file()
    assert (tmp_path / "backends/crosswatch-inotify/crosswatch_inotify/__init__.py").is_file()
    # the plugin's module is found through the second entry, before site-packages
    assert old.paths == (str(tmp_path), str(tmp_path / "backends/crosswatch-inotify"))
    assert old.env({"PYTHONPATH": "/elsewhere"})["PYTHONPATH"].endswith(os.pathsep + "/elsewhere")


def test_a_child_importing_another_crosswatch_is_refused(tmp_path: Path) -> None:
    old = revisions.Checkout("crosswatch@x", tmp_path, "abc")
    old.check(str(tmp_path / "crosswatch" / "__init__.py"))
    with pytest.raises(revisions.RevisionError, match="should be imported from"):
        old.check(str(revisions.REPO / "crosswatch" / "__init__.py"))
    with pytest.raises(revisions.RevisionError):
        old.check(None)


@in_git
def test_an_unknown_revision_says_what_to_give() -> None:
    with pytest.raises(revisions.RevisionError, match="is not a commit"):
        revisions.commit_of("no-such-revision-anywhere")


def test_the_pair_takes_turns_going_first(tmp_path: Path) -> None:
    here = revisions.Checkout("crosswatch", tmp_path / "a", None)
    old = revisions.Checkout("crosswatch@r", tmp_path / "b", None)
    plan = Plan(QUICK.__class__(**{**QUICK.__dict__, "pairs": 4}), here, old)
    order = plan.order()
    assert order[:4] == [(0, "crosswatch"), (0, "crosswatch@r"), (0, "watchdog"),
                         (0, "watchfiles")]
    assert order[4:] == [(1, "crosswatch@r"), (1, "crosswatch"), (2, "crosswatch"),
                         (2, "crosswatch@r"), (3, "crosswatch@r"), (3, "crosswatch")]
    assert plan.env("crosswatch@r")["PYTHONPATH"].startswith(str(tmp_path / "b"))
    assert plan.env("watchdog")["PYTHONPATH"].startswith(str(tmp_path / "a"))
    # without a baseline, every tool runs once, as before
    alone = Plan(QUICK, here).order(defaults=True)
    assert [t for _, t in alone] == ["crosswatch", "watchdog", "watchfiles",
                                     "watchfiles-default"]


def verdict(cur: list[float | None], base: list[float | None],
            tolerance: tuple[float, float], **kw: object) -> bool:
    return report.compared("m", str, cur, base, tolerance, **kw)[2]  # type: ignore[arg-type]


def test_no_worse_allows_the_relative_or_the_absolute_tolerance() -> None:
    assert verdict([1.09], [1.0], (0.10, 0.0))
    assert not verdict([1.2], [1.0], (0.10, 0.0))
    assert verdict([1.2], [1.0], (0.10, 0.25))  # the floor, for values near zero
    assert verdict([0.5], [1.0], (0.0, 0.0))  # better is no worse


def test_counts_must_not_grow_and_higher_is_better_where_said() -> None:
    assert not verdict([1], [0], report.EXACT)
    assert verdict([0], [0], report.EXACT)
    assert not verdict([1, 1], [1, 2], report.EXACT, pick=sum, higher=True)
    assert verdict([2, 1], [1, 1], report.EXACT, pick=sum, higher=True)


def test_a_measure_missing_on_one_side_is_not_no_worse() -> None:
    assert not verdict([None], [1.0], (0.5, 1.0))
    assert verdict([None], [None], (0.5, 1.0))


def test_latency_percentiles_pool_the_writes_of_all_runs() -> None:
    runs = [{"latencies_ms": [1.0, 2.0, 3.0]}, {"latencies_ms": [4.0]}]
    assert report.pooled_percentile(runs, 50) == 2.0
    assert report.pooled_percentile(runs, 99) == 4.0
    assert report.pooled_percentile([{"latencies_ms": []}], 50) is None

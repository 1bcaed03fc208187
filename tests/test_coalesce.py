"""Coalescing: the rules as data (``coalesce_cases.yaml``), the convergence of a mirror
fed merged batches of random streams, and storms watched with ``coalesce=True``."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_streams import ROOT, Onto, random_stream

from crosswatch import Change, ConfigError, ConfigTypeError, Event, Watcher
from crosswatch._coalesce import coalesce
from crosswatch.testing import LINUX, Mirror, collect
from crosswatch.testing._storm import storm_and_converge

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "coalesce_cases.yaml").read_text(encoding="utf-8")
)


def _path(text: str) -> tuple[str, bool]:
    """A case's relative path as an absolute one, and whether it names a directory."""
    is_dir = text.endswith("/")
    rel = text.rstrip("/")
    path = ROOT if rel == "." else os.path.join(ROOT, *rel.split("/"))
    return path, is_dir


def parse(text: str) -> tuple[Event, str]:
    """``"KIND PATH"``, ``"modified PATH (replaced)"`` or ``"moved SRC -> DST
    [(free)|(held)]"``: the event, and what the engine knew of the move's destination
    (``""``: nothing)."""
    text, _, known = text.partition(" (")
    known = known.rstrip(")")
    kind, _, rest = text.partition(" ")
    if kind == "moved":
        src, _, dst = rest.partition(" -> ")
        path, is_dir = _path(dst)
        return Event(Change.MOVED, path, is_dir, src_path=_path(src)[0]), known
    path, is_dir = _path(rest)
    return Event(Change(kind), path, is_dir, replaced=known == "replaced"), ""


def _tree(paths: list[str]) -> dict[str, bool]:
    return dict(_path(p) for p in paths)


def _applied(tree: dict[str, bool], events: list[Event]) -> dict[str, bool]:
    mirror = Mirror([ROOT], tree)  # strict: a broken guarantee fails the test
    mirror.apply(events)
    return mirror.entries


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_rule(case: dict[str, Any]) -> None:
    parsed = [parse(text) for text in case["events"]]
    events = [event for event, _ in parsed]
    free = {id(event) for event, known in parsed if known == "free"}
    held = {id(event) for event, known in parsed if known == "held"}
    merged = coalesce(events, onto_free=lambda e: id(e) in free, onto_entry=lambda e: id(e) in held)
    assert merged == [parse(text)[0] for text in case["expect"]]
    tree = _tree(case["tree"])
    assert _applied(tree, merged) == _applied(tree, events)


# ------------------------------------------------------------------ random streams


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + os.sep)


def _changed(events: list[Event]) -> set[str]:
    """The paths, at the end, of files whose content the events said is new."""
    dirty: set[str] = set()
    for e in events:
        if e.kind in (Change.CREATED, Change.MODIFIED) and not e.is_dir:
            dirty.add(e.path)
        elif e.kind is Change.DELETED:
            dirty = {p for p in dirty if not _under(p, e.path)}
        elif e.kind is Change.MOVED and e.src_path is not None:
            src, dst = e.src_path, e.path
            moving = {p for p in dirty if _under(p, src)}
            dirty = {p for p in dirty - moving if not _under(p, dst)}
            dirty |= {dst + p[len(src):] for p in moving}
    return dirty


def _merged(events: list[Event], onto: Onto) -> list[Event]:
    free, held = onto
    return coalesce(events, onto_free=lambda e: id(e) in free, onto_entry=lambda e: id(e) in held)


def _check(tree: dict[str, bool], events: list[Event], onto: Onto, cuts: list[int]) -> None:
    merged: list[Event] = []
    for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True):
        merged += _merged(events[start:end], onto)
    end_state = _applied(tree, events)
    assert _applied(tree, merged) == end_state
    assert _changed(merged) == _changed(events)
    assert len(merged) <= len(events)
    again = coalesce(merged)  # a merged batch is a stream like any other
    assert _applied(tree, again) == end_state


@pytest.mark.parametrize("seed", range(300))
def test_a_mirror_of_merged_batches_converges(seed: int) -> None:
    """Random operations on a model tree (files, directories, moves of directories
    with their entries, replacements), the stream a correct watcher gives of them,
    then merged whole and in random batches: the mirror ends in the same tree."""
    rng = random.Random(seed)
    tree, events, onto = random_stream(rng, steps=rng.choice([5, 20, 60]))
    _check(tree, events, onto, [])
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(events)), min(len(events) - 1, 3))) if (
            len(events) > 1
        ) else []
        _check(tree, events, onto, cuts)


def test_merging_shortens_random_streams() -> None:
    """The rules do merge: over many streams, far fewer events come out."""
    given = merged = 0
    for seed in range(200):
        _, events, onto = random_stream(random.Random(seed), steps=40)
        given += len(events)
        merged += len(_merged(events, onto))
    print(f"{given} events merged into {merged}")
    assert merged < given * 0.8


# ------------------------------------------------------------------ storms


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_polling_mirror_converges_under_a_storm_with_coalescing(fast_root: str, seed: int) -> None:
    with Watcher(fast_root, backend="polling", poll_interval=0.05, coalesce=True,
                 debounce=0.2) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, settle=0.6)
    assert ops > 500
    assert consumed, "the storm produced no events"


@pytest.mark.slow
@pytest.mark.skipif(not LINUX, reason="inotify is Linux's")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_inotify_mirror_converges_under_a_storm_with_coalescing(fast_root: str, seed: int) -> None:
    with Watcher(fast_root, backend="inotify", coalesce=True, debounce=0.2) as w:
        ops, consumed = storm_and_converge(w, fast_root, seed=seed, settle=0.6)
    assert ops > 500
    assert consumed, "the storm produced no events"


# ------------------------------------------------------------------ the option


def test_coalesce_must_be_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(ConfigTypeError, match="coalesce="):
        Watcher(tmp_path, coalesce="yes")  # type: ignore[arg-type]


def test_a_config_file_turns_coalescing_on(tmp_path: Path, clean_env: None) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_text("coalesce = true\n", encoding="utf-8")
    assert Watcher(tmp_path, config_file=config).settings.coalesce is True
    assert Watcher(tmp_path, config_file=config, coalesce=False).settings.coalesce is False
    config.write_text('coalesce = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="coalesce must be true or false"):
        Watcher(tmp_path, config_file=config)


@pytest.mark.skipif(not LINUX, reason="inotify is Linux's")
def test_an_atomic_save_is_one_modified(fast_root: str) -> None:
    """A temporary file written and renamed over a file: the engine knew the rename
    replaced it, so the burst is told as the file modified, by another file."""
    target = os.path.join(fast_root, "f")
    Path(target).write_text("old", encoding="utf-8")
    with Watcher(fast_root, backend="inotify", coalesce=True, settle=0.3) as w:
        tmp = os.path.join(fast_root, ".f.tmp")
        Path(tmp).write_text("new", encoding="utf-8")
        os.rename(tmp, target)
        events = collect(w, bool, settle=0.6)
    assert events == [Event(Change.MODIFIED, target, False, replaced=True)]


@pytest.mark.skipif(not LINUX, reason="inotify is Linux's")
def test_a_directory_made_and_moved_is_created_where_it_ends(fast_root: str) -> None:
    with Watcher(fast_root, backend="inotify", coalesce=True, settle=0.3) as w:
        os.makedirs(os.path.join(fast_root, "d", "e"))
        Path(fast_root, "d", "e", "f").write_text("x", encoding="utf-8")
        os.rename(os.path.join(fast_root, "d"), os.path.join(fast_root, "n"))
        events = collect(w, bool, settle=0.6)
    n = os.path.join(fast_root, "n")
    assert events == [
        Event(Change.CREATED, n, True),
        Event(Change.CREATED, os.path.join(n, "e"), True),
        Event(Change.CREATED, os.path.join(n, "e", "f"), False),
    ]

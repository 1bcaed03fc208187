"""``crosswatch stats``: the counting rules, the table and JSON, and the command run
as a real process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from test_cli import FAST, Cli, assert_no_traceback, run, touch

from crosswatch import Change, Event
from crosswatch._errors import ConfigError
from crosswatch._stats import Tally, as_json, sort_key, table
from crosswatch.testing import needs_posix_signals

ROOT = os.path.join(os.sep, "w")


def at(*parts: str) -> str:
    return os.path.join(ROOT, *parts)


def tally_of(*events: Event) -> Tally:
    tally = Tally([ROOT])
    tally.add(events)
    return tally


# --------------------------------------------------------------------------- counting


def test_each_event_counts_for_the_directory_holding_its_entry() -> None:
    tally = tally_of(
        Event(Change.CREATED, at("a")),
        Event(Change.MODIFIED, at("a")),
        Event(Change.CREATED, at("d"), is_dir=True),
        Event(Change.CREATED, at("d", "b")),
        Event(Change.MOVED, at("d", "c"), src_path=at("a")),  # for its destination
        Event(Change.RESCAN, at("d"), is_dir=True),  # for the subtree re-read
        Event(Change.ATTRIB, ROOT, is_dir=True),  # a root's own: for the root
    )
    counts = {row.directory: dict(row.kinds) for row in tally.rows()}
    assert counts == {
        ROOT: {Change.CREATED: 2, Change.MODIFIED: 1, Change.ATTRIB: 1},
        at("d"): {Change.CREATED: 1, Change.MOVED: 1, Change.RESCAN: 1},
    }
    assert tally.total == 7
    assert tally.kinds() == [Change.CREATED, Change.MODIFIED, Change.ATTRIB, Change.MOVED,
                             Change.RESCAN]


def test_a_file_root_counts_for_itself() -> None:
    tally = Tally([at("f")])
    tally.add([Event(Change.MODIFIED, at("f")), Event(Change.MODIFIED, at("f"))])
    assert [(r.directory, r.total) for r in tally.rows()] == [(at("f"), 2)]


@pytest.mark.parametrize(
    ("by", "reverse", "order"),
    [
        ("total", False, ["b", "a", "c"]),
        ("total", True, ["c", "a", "b"]),
        ("deleted", False, ["c", "a", "b"]),  # ties keep the paths' order
        ("created", False, ["b", "a", "c"]),
        ("directory", False, ["a", "b", "c"]),
        ("directory", True, ["c", "b", "a"]),
    ],
)
def test_rows_are_sorted_by_a_column(by: str, reverse: bool, order: list[str]) -> None:
    tally = tally_of(
        Event(Change.CREATED, at("a", "1")),
        Event(Change.CREATED, at("a", "2")),
        Event(Change.CREATED, at("b", "1")),
        Event(Change.CREATED, at("b", "2")),
        Event(Change.CREATED, at("b", "3")),
        Event(Change.DELETED, at("c", "1")),
    )
    rows = tally.rows(by, reverse=reverse)
    assert [os.path.basename(r.directory) for r in rows] == order


def test_sort_keys_are_checked() -> None:
    assert sort_key(" Moved ") == "moved"
    with pytest.raises(ConfigError, match=r"cannot sort by 'size': use one of total, created"):
        sort_key("size")


def test_the_table_has_a_column_per_kind_seen_right_aligned() -> None:
    tally = tally_of(*[Event(Change.MODIFIED, at("f"))] * 12, Event(Change.DELETED, at("d", "g")))
    text = table(tally, tally.rows())
    assert text.splitlines() == [
        "total  modified  deleted  directory",
        f"   12        12        0  {ROOT}",
        f"    1         0        1  {at('d')}",
    ]


def test_json_has_the_totals_and_a_row_per_directory() -> None:
    tally = tally_of(Event(Change.CREATED, at("a")), Event(Change.DELETED, at("d", "g")))
    out = json.loads(as_json(tally, tally.rows("directory"), 2.5))
    assert out == {
        "seconds": 2.5,
        "total": 2,
        "kinds": {"created": 1, "deleted": 1},
        "directories": [
            {"directory": ROOT, "total": 1, "kinds": {"created": 1}},
            {"directory": at("d"), "total": 1, "kinds": {"deleted": 1}},
        ],
    }


# --------------------------------------------------------------------------- the command


def stats(*args: str) -> Cli:
    return Cli(["stats", *args], None, {}, b"\n")


def test_stats_counts_changes_until_the_timeout(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    cli = stats(str(tmp_path), *FAST, "-v", "--timeout", "3", "--json")
    try:
        cli.ready()
        touch(tmp_path / "a")
        touch(tmp_path / "d" / "b")
        touch(tmp_path / "d" / "c")
        assert cli.wait() == 0
    finally:
        cli.kill()
    out = json.loads(cli.rest())
    assert out["total"] == 3, out
    assert out["kinds"] == {"created": 3}
    assert out["directories"] == [
        {"directory": str(tmp_path / "d"), "total": 2, "kinds": {"created": 2}},
        {"directory": str(tmp_path), "total": 1, "kinds": {"created": 1}},
    ]
    assert_no_traceback(cli.stderr)


def test_stats_with_nothing_counted_says_so_and_exits_3(tmp_path: Path) -> None:
    result = run("stats", str(tmp_path), *FAST, "--timeout", "0.3")
    assert result.returncode == 3
    assert result.stdout == b""
    assert b"crosswatch: no events in" in result.stderr


def test_a_bad_sort_key_is_a_usage_error(tmp_path: Path) -> None:
    result = run("stats", str(tmp_path), "--sort", "size")
    assert result.returncode == 2
    assert b"cannot sort by 'size'" in result.stderr


@needs_posix_signals
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_stats_prints_the_table_when_stopped(tmp_path: Path, signum: int, code: int) -> None:
    # A handled signal is reset to its default in the child; an ignored one stays so.
    previous = signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                             else signal.SIG_DFL)
    try:
        cli = stats(str(tmp_path), *FAST, "-v", "--sort", "directory")
    finally:
        signal.signal(signum, previous)
    try:
        cli.ready()
        (tmp_path / "d").mkdir()
        touch(tmp_path / "d" / "x")
        time.sleep(2.0)  # a generous wait: 40 poll intervals for the count to see both
        cli.proc.send_signal(signum)
        assert cli.wait() == code
    finally:
        cli.kill()
    lines = cli.rest().decode().splitlines()
    assert lines[0] == "total  created  directory"
    assert lines[1:] == [f"    1        1  {tmp_path}", f"    1        1  {tmp_path / 'd'}"]
    assert_no_traceback(cli.stderr)

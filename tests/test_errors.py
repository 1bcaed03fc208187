"""One exception hierarchy, every class of it on docs/errors.md, and the exit code of each."""

from __future__ import annotations

import argparse
import errno
import re
from pathlib import Path

import pytest

import crosswatch
import crosswatch.backend
from crosswatch._cli import _dispatch

PAGE = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def _exported() -> list[type[BaseException]]:
    """Every exception and warning class the public modules export."""
    found: dict[str, type[BaseException]] = {}
    for module in (crosswatch, crosswatch.backend):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                found[name] = obj
    return [found[name] for name in sorted(found)]


EXPORTED = _exported()
ERRORS = [cls for cls in EXPORTED if not issubclass(cls, Warning)]


def _table() -> dict[str, str]:
    """Class name -> the page's CLI exit code cell."""
    rows = re.findall(r"^\| `(\w+)` \|.*\| ([^|]+) \|$", PAGE.read_text("utf-8"), re.MULTILINE)
    return {name: code.strip() for name, code in rows}


def test_the_public_modules_export_the_errors() -> None:
    names = {cls.__name__ for cls in EXPORTED}
    assert {"CrosswatchError", "CrosswatchWarning", "WatchError", "WatchLimitError"} <= names


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda cls: cls.__name__)
def test_every_exported_class_is_in_the_hierarchy(cls: type[BaseException]) -> None:
    if issubclass(cls, Warning):
        assert issubclass(cls, crosswatch.CrosswatchWarning)
    else:
        assert issubclass(cls, crosswatch.CrosswatchError)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda cls: cls.__name__)
def test_every_exported_class_is_documented(cls: type[BaseException]) -> None:
    text = PAGE.read_text("utf-8")
    assert cls.__name__ in _table(), f"{cls.__name__} has no row in the table of {PAGE.name}"
    assert re.search(rf"^`{cls.__name__}`", text, re.MULTILINE), f"{cls.__name__} not described"
    tree = text.split("```text", 1)[1].split("```", 1)[0]
    assert re.search(rf"── {cls.__name__}\b", tree), f"{cls.__name__} not in the tree"


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_each_error_gives_its_documented_exit_code(
    cls: type[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise cls("what went wrong")

    assert _dispatch(argparse.Namespace(func=fail)) == int(_table()[cls.__name__])
    assert capsys.readouterr().err == "crosswatch: error: what went wrong\n"


def test_watch_errors_keep_their_errno() -> None:
    exc = crosswatch.WatchLimitError(errno.ENOSPC, "no inotify watches left", "/srv")
    assert isinstance(exc, OSError)
    assert (exc.errno, exc.filename) == (errno.ENOSPC, "/srv")
    with pytest.raises(crosswatch.CrosswatchError):
        raise crosswatch.WatchGoneError(errno.ENOENT, "gone", "/srv/x")

"""Every argument of Watcher is checked at the call, and docs/arguments.md lists them all."""

from __future__ import annotations

import inspect
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import crosswatch
from crosswatch import (
    ConfigError,
    ConfigTypeError,
    NotStartedError,
    Plugins,
    Watcher,
    WatchPathError,
)
from crosswatch.backend import Backend

ARGUMENTS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "arguments.md"

#: Stands for the test's directory among the paths of a case.
ROOT = object()


@dataclass(frozen=True)
class Bad:
    """A call that must raise ``error`` with every fragment in its message."""

    argument: str
    value: object
    error: type[Exception]
    fragments: tuple[str, ...]
    paths: tuple[object, ...] = (ROOT,)
    keywords: dict[str, object] = field(default_factory=dict)

    def call(self, root: Path) -> None:
        paths = [root if p is ROOT else p for p in self.paths]
        keywords = dict(self.keywords)
        if self.argument != "paths":
            keywords[self.argument] = self.value
        Watcher(*paths, **keywords)  # type: ignore[arg-type]


def bad(argument: str, value: object, error: type[Exception], *fragments: str) -> Bad:
    """A bad keyword: the message names it as ``argument <name>=``."""
    return Bad(argument, value, error, (f"argument {argument}=", *fragments))


def bad_path(value: object, error: type[Exception], *fragments: str) -> Bad:
    return Bad("paths", value, error, fragments, paths=(value,))


BAD = [
    bad_path("", WatchPathError, "cannot watch ''", "empty"),
    bad_path("a\0b", WatchPathError, "NUL"),
    bad_path(5, ConfigTypeError, "watch(*paths)", "int 5", "str, bytes or os.PathLike"),
    bad_path(None, ConfigTypeError, "watch(*paths)", "None", "str, bytes or os.PathLike"),
    bad_path(["a", "b"], ConfigTypeError, "watch(*paths)", "['a', 'b']", "separate arguments"),
    bad("recursive", "yes", ConfigTypeError, "'yes'", "True or False"),
    bad("recursive", 1, ConfigTypeError, "int 1", "True or False"),
    bad("recursive", None, ConfigTypeError, "None", "True or False"),
    bad("access", "yes", ConfigTypeError, "'yes'", "True or False"),
    bad("pids", 1, ConfigTypeError, "int 1", "True or False"),
    bad("ignore_own", "yes", ConfigTypeError, "'yes'", "True or False"),
    bad("ignore_pids", 12, ConfigTypeError, "int 12", "process ids"),
    bad("ignore_pids", "12", ConfigTypeError, "'12'", "process ids"),
    bad("ignore_pids", [0], ConfigTypeError, "0 is not a process id"),
    bad("ignore_pids", [True], ConfigTypeError, "True is not a process id"),
    bad("ignore_pids", [-3], ConfigTypeError, "-3 is not a process id"),
    bad("backend", int, ConfigTypeError, "the class int", "subclass of crosswatch.backend.Backend"),
    bad("backend", 5, ConfigTypeError, "int 5", "a backend name"),
    bad("backend", ["polling", 5], ConfigTypeError, "5 in ['polling', 5]", "not a string"),
    bad("backend", Backend, ConfigError, "Backend", "abstract"),
    bad("deny", 5, ConfigTypeError, "int 5", "backend names"),
    bad("deny", [5], ConfigTypeError, "5 in [5]", "not a string"),
    bad("deny", {"polling": True}, ConfigTypeError, "{'polling': True}", "backend names"),
    bad("ignore", 5, ConfigTypeError, "int 5", "a list of strings"),
    bad("ignore", [5], ConfigTypeError, "5 is not a string", "a list of strings"),
    bad("ignore", b".git", ConfigTypeError, "bytes b'.git'", "a list of strings"),
    bad("include", 5, ConfigTypeError, "int 5", "a list of strings"),
    bad("include", [b"*.py"], ConfigTypeError, "b'*.py' is not a string", "a list of strings"),
    bad("kinds", "created", ConfigTypeError, "'created'", "a list of event kinds"),
    bad("kinds", 5, ConfigTypeError, "int 5", "a list of event kinds"),
    bad("kinds", [5], ConfigTypeError, "kind 5", "accepted kinds: created"),
    bad("kinds", [], ConfigError, "empty", "None for every kind"),
    bad("debounce", "x", ConfigTypeError, "'x'", "seconds >= 0"),
    bad("debounce", True, ConfigTypeError, "bool True", "seconds >= 0"),
    bad("poll_interval", "x", ConfigTypeError, "'x'", "positive number of seconds"),
    bad("settle", "x", ConfigTypeError, "'x'", "seconds >= 0"),
    bad("settle", -1, ConfigError, "-1", "seconds >= 0"),
    bad("coalesce", "yes", ConfigTypeError, "str 'yes'", "True or False"),
    bad("backend_options", 5, ConfigTypeError, "int 5", "a table per backend name"),
    bad("backend_options", {"polling": 5}, ConfigTypeError, "'polling'", "table of option names"),
    bad("backend_options", {"Bad Name": {}}, ConfigError, "'Bad Name'", "backend name"),
    bad("backend_options", {"polling": {"a-b": 1}}, ConfigError, "'a-b'", "not an option name"),
    bad("backend_options", {"polling": {"x": [1]}}, ConfigError, "polling.x", "a number, a string"),
    bad("backend_options", {"polling": {"x": float("inf")}}, ConfigError, "polling.x", "finite"),
    bad("callback", 5, ConfigTypeError, "int 5", "a function taking one argument"),
    bad("callback", lambda: None, ConfigTypeError, "<lambda>", "a function taking one argument"),
    bad("on_warning", 5, ConfigTypeError, "int 5", "a function taking one argument"),
    bad("on_warning", lambda a, b: None, ConfigTypeError, "(a, b)", "one argument"),
    bad("default_ignore", "no", ConfigTypeError, "'no'", "True or False"),
    bad("hidden", 0, ConfigTypeError, "int 0", "True or False"),
    bad("gitignore", "yes", ConfigTypeError, "'yes'", "True or False"),
    bad("progress", 5, ConfigTypeError, "int 5", "a function taking one argument"),
    bad("progress", lambda a, b: None, ConfigTypeError, "(a, b)", "one argument"),
    bad("max_queue", "x", ConfigTypeError, "'x'", "whole number of at least 1"),
    bad("max_queue", 2.5, ConfigTypeError, "2.5", "whole number of at least 1"),
    bad("max_queue_bytes", "x", ConfigTypeError, "'x'", "whole number of at least 1"),
    bad("max_batch", None, ConfigTypeError, "None", "whole number of at least 1"),
    bad("pair_wait", -1, ConfigError, "-1", "seconds >= 0"),
    bad("pair_wait", float("nan"), ConfigError, "nan", "seconds >= 0"),
    bad("pair_wait", float("inf"), ConfigError, "inf", "seconds >= 0"),
    bad("pair_wait", "x", ConfigTypeError, "'x'", "seconds >= 0"),
    bad("plugins", "x", ConfigTypeError, "'x'", "crosswatch.Plugins"),
    bad("plugins", Plugins, ConfigTypeError, "the class crosswatch._plugins.Plugins", "Plugins"),
    bad("config_file", 5, ConfigTypeError, "int 5", "file descriptor", "path"),
    bad("config_file", 2.5, ConfigTypeError, "float 2.5", "crosswatch.toml"),
    bad("config_file", "", ConfigError, "empty", "crosswatch.toml"),
]


def _case_id(case: Bad) -> str:
    return f"{case.argument}={case.value!r}"


@pytest.mark.parametrize("case", BAD, ids=_case_id)
def test_a_bad_argument_is_refused_at_the_call_naming_it(tmp_path: Path, case: Bad) -> None:
    with pytest.raises(case.error) as info:
        case.call(tmp_path)
    message = str(info.value)
    for fragment in case.fragments:
        assert fragment in message, (fragment, message)


def test_a_wrong_type_is_a_type_error_and_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as info:
        Watcher(tmp_path, recursive="yes")  # type: ignore[arg-type]
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, crosswatch.CrosswatchError)


def _parameters() -> list[str]:
    """Watcher's parameters as the page writes them (``*paths`` for the paths)."""
    params = list(inspect.signature(Watcher.__init__).parameters.values())[1:]
    return [("*" if p.kind is p.VAR_POSITIONAL else "") + p.name for p in params]


def test_every_argument_has_a_bad_case() -> None:
    assert {case.argument for case in BAD} == {name.lstrip("*") for name in _parameters()}


def _table() -> dict[str, str]:
    """Argument name -> its default cell, from the table of docs/arguments.md."""
    rows: dict[str, str] = {}
    for line in ARGUMENTS_PAGE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([*\w]+)` \| ([^|]*) \|", line)
        if match:
            rows[match[1]] = match[2].strip()
    return rows


def test_the_arguments_page_has_one_row_per_parameter_with_its_default() -> None:
    rows = _table()
    assert list(rows) == _parameters()
    for param in list(inspect.signature(Watcher.__init__).parameters.values())[1:]:
        if param.default is not param.empty:
            assert rows[param.name].startswith(f"`{param.default!r}`"), param.name


def test_a_file_descriptor_as_config_file_is_refused_and_left_open(tmp_path: Path) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_text('ignore = ["*.tmp"]\n', encoding="utf-8")
    fd = os.open(config, os.O_RDONLY)
    try:
        with pytest.raises(ConfigTypeError, match="file descriptor"):
            Watcher(tmp_path, config_file=fd)  # type: ignore[arg-type]
        os.fstat(fd)  # raises if the descriptor was closed
        assert os.read(fd, 6) == b"ignore"  # and nobody read from it
    finally:
        os.close(fd)


def test_config_file_as_bytes_is_read_by_its_name(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.crosswatch]\nignore = ["*.tmp"]\n', encoding="utf-8")
    w = Watcher(tmp_path, config_file=os.fsencode(pyproject))  # type: ignore[arg-type]
    assert w.settings.ignore == ("*.tmp",)


def _get_in_a_thread(w: Watcher, timeout: float | None = None) -> list[object]:
    """What ``w.get()`` returned or raised, or nothing if it still waits after 10 s."""
    out: list[object] = []

    def consume() -> None:
        try:
            out.append(w.get(timeout))
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(10)
    return out


def test_get_before_start_raises_instead_of_waiting_forever(tmp_path: Path) -> None:
    w = Watcher(tmp_path)
    try:
        out = _get_in_a_thread(w)
        assert out, "get() before start() is still waiting"
        assert isinstance(out[0], NotStartedError)
        assert isinstance(out[0], RuntimeError)
        assert "start()" in str(out[0])
        assert "with" in str(out[0])
    finally:
        w.close()


def test_get_after_a_failed_start_ends_instead_of_waiting_forever(tmp_path: Path) -> None:
    w = Watcher(tmp_path, backend="no-such-backend")
    with pytest.raises(crosswatch.UnknownBackendError):
        w.start()
    assert _get_in_a_thread(w) == [None]
    assert w.closed
    w.close()


def test_get_in_callback_mode_is_refused(tmp_path: Path) -> None:
    w = Watcher(tmp_path, callback=lambda batch: None, backend="polling").start()
    try:
        out = _get_in_a_thread(w, timeout=0.1)
        assert out, "get() in callback mode is still waiting"
        assert isinstance(out[0], TypeError)
        assert "callback" in str(out[0])
    finally:
        w.close()

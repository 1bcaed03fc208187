"""Settings resolution: sources, precedence, file discovery and error messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crosswatch._config import (
    Settings,
    find_config_file,
    from_env,
    from_file,
    resolve,
)
from crosswatch._config_values import parse_backend_spec
from crosswatch._errors import ConfigError, CrosswatchWarning
from crosswatch.testing import needs_posix_permissions

NO_ARGS: dict[str, object] = {}


pytestmark = pytest.mark.usefixtures("clean_env")


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- parse_backend_spec -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("auto", None),
        (" auto ", None),
        ("inotify", ("inotify",)),
        ("inotify,polling", ("inotify", "polling")),
        (" inotify , polling ", ("inotify", "polling")),
        (["kqueue", "polling"], ("kqueue", "polling")),
        (("my_backend-2",), ("my_backend-2",)),
        ("inotify,polling,inotify", ("inotify", "polling")),
    ],
)
def test_parse_backend_spec_accepts(value: object, expected: object) -> None:
    assert parse_backend_spec(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ([], "empty list"),
        ("inotify,,polling", "empty name"),
        ("inotify,", "empty name"),
        ("auto,polling", "'auto' cannot be part of a list"),
        (["auto"], "'auto' cannot be part of a list"),
        ("Inotify", "not a valid backend name"),
        ("2fast", "not a valid backend name"),
        ("in otify", "not a valid backend name"),
        ([1, "polling"], "not a string"),
        (3, "must be a string or a list of strings"),
    ],
)
def test_parse_backend_spec_rejects(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_backend_spec(value, source="CROSSWATCH_BACKEND")  # type: ignore[arg-type]
    message = str(info.value)
    assert fragment in message
    assert "CROSSWATCH_BACKEND" in message


def test_parse_backend_spec_says_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match="argument backend=") as info:
        parse_backend_spec("")
    assert "'auto'" in str(info.value)
    assert "inotify,polling" in str(info.value)


# --- environment --------------------------------------------------------------------------


def test_from_env_reads_all_variables() -> None:
    env = {
        "CROSSWATCH_BACKEND": "inotify,polling",
        "CROSSWATCH_DENY": "fanotify, kqueue",
        "CROSSWATCH_POLL_INTERVAL": "0.25",
    }
    assert from_env(env) == {
        "backend": ("inotify", "polling"),
        "deny": frozenset({"fanotify", "kqueue"}),
        "poll_interval": 0.25,
    }


def test_from_env_empty_variables_are_unset() -> None:
    env = {"CROSSWATCH_BACKEND": "", "CROSSWATCH_DENY": " ", "CROSSWATCH_POLL_INTERVAL": ""}
    assert from_env(env) == {}


def test_from_env_auto_is_explicit_none() -> None:
    assert from_env({"CROSSWATCH_BACKEND": "auto"}) == {"backend": None}


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"CROSSWATCH_BACKEND": "inotify;polling"}, ["CROSSWATCH_BACKEND", "not a valid"]),
        ({"CROSSWATCH_DENY": "auto"}, ["CROSSWATCH_DENY", "'auto' cannot be denied"]),
        ({"CROSSWATCH_DENY": "Fanotify"}, ["CROSSWATCH_DENY", "'Fanotify'"]),
        ({"CROSSWATCH_POLL_INTERVAL": "fast"}, ["CROSSWATCH_POLL_INTERVAL", "not a number"]),
        ({"CROSSWATCH_POLL_INTERVAL": "0"}, ["CROSSWATCH_POLL_INTERVAL", "positive"]),
        ({"CROSSWATCH_POLL_INTERVAL": "-1"}, ["CROSSWATCH_POLL_INTERVAL", "positive"]),
        ({"CROSSWATCH_POLL_INTERVAL": "inf"}, ["CROSSWATCH_POLL_INTERVAL", "positive"]),
        ({"CROSSWATCH_POLL_INTERVAL": "nan"}, ["CROSSWATCH_POLL_INTERVAL", "positive"]),
    ],
)
def test_from_env_rejects(env: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        from_env(env)
    for fragment in fragments:
        assert fragment in str(info.value)


# --- files --------------------------------------------------------------------------------

FULL_FILE = """\
backend = ["inotify", "polling"]
deny = ["fanotify"]
poll_interval = 2
ignore = [".git", "*.tmp"]
debounce = 0
"""


def test_crosswatch_toml_top_level_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "crosswatch.toml", FULL_FILE)
    assert from_file(path) == {
        "backend": ("inotify", "polling"),
        "deny": frozenset({"fanotify"}),
        "poll_interval": 2.0,
        "ignore": (".git", "*.tmp"),
        "debounce": 0.0,
    }


def test_pyproject_table(tmp_path: Path) -> None:
    text = '[project]\nname = "x"\n\n[tool.crosswatch]\nbackend = "polling"\n'
    path = write(tmp_path / "pyproject.toml", text)
    assert from_file(path) == {"backend": ("polling",)}


def test_pyproject_without_table_gives_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[tool.other]\nbackend = "polling"\n')
    assert from_file(path) == {}


def test_pyproject_table_of_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool]\ncrosswatch = 3\n")
    with pytest.raises(ConfigError, match=r"tool\.crosswatch must be a table"):
        from_file(path)


def test_unknown_key_names_key_file_and_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "crosswatch.toml", "poll_intervall = 1\n")
    with pytest.raises(ConfigError) as info:
        from_file(path)
    message = str(info.value)
    assert "'poll_intervall'" in message
    assert path in message
    assert "did you mean 'poll_interval'" in message
    accepted = "accepted keys: backend, deny, poll_interval, ignore, include, gitignore, "
    assert accepted in message


def test_unknown_key_in_pyproject_names_the_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[tool.crosswatch]\nbackends = "polling"\n')
    with pytest.raises(ConfigError) as info:
        from_file(path)
    assert "[tool.crosswatch]" in str(info.value)
    assert "'backends'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("backend = 3\n", ["backend", "must be a string or a list"]),
        ('backend = ""\n', ["backend", "is empty"]),
        ('backend = ["auto", "polling"]\n', ["backend", "'auto' cannot be part"]),
        ('deny = "fanotify"\n', ["deny", "must be a list"]),
        ("deny = [1]\n", ["deny", "not a string"]),
        ("poll_interval = 0\n", ["poll_interval", "positive"]),
        ('poll_interval = "1"\n', ["poll_interval", "positive", "str"]),
        ("poll_interval = true\n", ["poll_interval", "bool"]),
        ("poll_interval = inf\n", ["poll_interval", "positive"]),
        ('ignore = ".git"\n', ["ignore", "must be a list of strings"]),
        ('ignore = [".git", 1]\n', ["ignore", "1 is not a string"]),
        ("debounce = -0.5\n", ["debounce", ">= 0"]),
        ("debounce = nan\n", ["debounce", ">= 0"]),
    ],
)
def test_file_wrong_types(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = write(tmp_path / "crosswatch.toml", text)
    with pytest.raises(ConfigError) as info:
        from_file(path)
    assert path in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "crosswatch.toml", "backend = [inotify\n")
    with pytest.raises(ConfigError) as info:
        from_file(path)
    message = str(info.value)
    assert path in message
    assert "not valid TOML" in message
    assert "line 1" in message  # the parser's own message is kept


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    for name in ("crosswatch.toml", "pyproject.toml"):
        path = tmp_path / name
        path.write_bytes(b'[tool.crosswatch]\nbackend = "polling"\nignore = ["caf\xe9"]\n')
        with pytest.raises(ConfigError) as info:
            from_file(str(path))
        message = str(info.value)
        assert message.startswith(f"{path} is not valid TOML: byte 0xe9 at line 3, column 15")
        assert "not UTF-8" in message


def test_explicit_broken_pyproject_is_an_error_even_without_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[project\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        from_file(path)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        from_file(path)


# --- discovery ----------------------------------------------------------------------------


def test_find_walks_upward(tmp_path: Path) -> None:
    config = write(tmp_path / "crosswatch.toml", "")
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config_file(str(deep)) == config


def test_find_skips_pyproject_without_table(tmp_path: Path) -> None:
    outer = write(tmp_path / "pyproject.toml", '[tool.crosswatch]\nbackend = "polling"\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n')
    start = tmp_path / "pkg" / "src"
    start.mkdir()
    assert find_config_file(str(start)) == outer


def test_find_prefers_nearest(tmp_path: Path) -> None:
    write(tmp_path / "crosswatch.toml", "")
    inner = write(tmp_path / "pkg" / "pyproject.toml", "[tool.crosswatch]\n")
    assert find_config_file(str(tmp_path / "pkg")) == inner


def test_find_prefers_crosswatch_toml_in_same_directory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.crosswatch]\n")
    config = write(tmp_path / "crosswatch.toml", "")
    assert find_config_file(str(tmp_path)) == config


def test_find_nothing(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    found = find_config_file(str(tmp_path))
    # Directories above tmp_path are outside the test's control; none of ours matched.
    assert found is None or not found.startswith(str(tmp_path))


def test_find_reports_broken_pyproject(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.crosswatch\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        find_config_file(str(tmp_path))
    assert path in str(info.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"[project\nname = 'x'\n", "not valid TOML: Expected ']'"),
        (b"[project]\nname = '\xff'\n", "not valid TOML: byte 0xff at line 2, column 9"),
        (b"[tool.crosswatchy\n", "not valid TOML"),  # another tool's table
    ],
    ids=["invalid", "not-utf8", "other-table"],
)
def test_find_skips_broken_pyproject_of_another_project(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    outer = write(tmp_path / "crosswatch.toml", "")
    broken = tmp_path / "other" / "pyproject.toml"
    broken.parent.mkdir()
    broken.write_bytes(content)
    start = tmp_path / "other" / "src"
    start.mkdir()
    told: list[str] = []
    assert find_config_file(str(start), on_warning=told.append) == outer
    (message,) = told
    assert message.startswith(f"{broken} is {reason}")
    assert "skipped it while looking for a config file" in message


def test_find_warns_by_default_of_a_skipped_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[project\n")
    with pytest.warns(CrosswatchWarning, match="skipped it while looking"):
        found = find_config_file(str(tmp_path))
    assert found is None or not found.startswith(str(tmp_path))


@pytest.mark.parametrize(
    "content",
    [
        b"[tool.crosswatch]\nbackend = [polling\n",
        b"[project]\nname = 'x'\n\n  [ tool . crosswatch ]\nbackend = '\xff'\n",
        b"[tool.crosswatch.extra]\nx = \n",
        b'[tool."crosswatch"]\nx = \n',
        b"tool.crosswatch.backend = 'polling\n",
    ],
    ids=["table", "spaced", "sub-table", "quoted", "dotted-key"],
)
def test_find_reports_broken_pyproject_meant_for_crosswatch(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        find_config_file(str(tmp_path / "sub"), on_warning=pytest.fail)
    assert str(info.value).startswith(str(path))


@needs_posix_permissions
def test_find_skips_unreadable_pyproject(tmp_path: Path) -> None:
    outer = write(tmp_path / "crosswatch.toml", "")
    locked = Path(write(tmp_path / "pkg" / "pyproject.toml", "[tool.crosswatch]\n"))
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that read any file")
        told: list[str] = []
        assert find_config_file(str(locked.parent), on_warning=told.append) == outer
        (message,) = told
        assert message.startswith(f"cannot read config file {locked}")
    finally:
        locked.chmod(0o600)


def test_find_returns_a_broken_crosswatch_toml_to_report(tmp_path: Path) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_bytes(b"backend = '\xff'\n")
    (tmp_path / "sub").mkdir()
    assert find_config_file(str(tmp_path / "sub"), on_warning=pytest.fail) == str(config)
    with pytest.raises(ConfigError, match="not valid TOML"):
        from_file(str(config))


def test_find_accepts_relative_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / "crosswatch.toml", "")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert find_config_file("sub") == config


# --- resolve ------------------------------------------------------------------------------


def test_resolve_defaults() -> None:
    assert resolve(args=NO_ARGS, environ={}) == Settings()
    assert Settings() == Settings(None, frozenset(), None, (), None)


def test_resolve_precedence_per_key(tmp_path: Path) -> None:
    config = write(tmp_path / "crosswatch.toml", FULL_FILE)
    env = {"CROSSWATCH_BACKEND": "kqueue", "CROSSWATCH_POLL_INTERVAL": "3"}
    args = {"backend": "fsevents", "deny": None, "ignore": None, "debounce": 0.5}
    settings = resolve(args=args, environ=env, config_file=config)
    assert settings == Settings(
        backend=("fsevents",),  # argument beats environment and file
        deny=frozenset({"fanotify"}),  # only the file sets it
        poll_interval=3.0,  # environment beats file
        ignore=(".git", "*.tmp"),  # argument None: not given
        debounce=0.5,  # argument beats file
    )


def test_resolve_env_beats_file(tmp_path: Path) -> None:
    config = write(tmp_path / "crosswatch.toml", 'backend = "polling"\ndeny = ["inotify"]\n')
    env = {"CROSSWATCH_BACKEND": "kqueue", "CROSSWATCH_DENY": "fanotify"}
    settings = resolve(args=NO_ARGS, environ=env, config_file=config)
    assert settings.backend == ("kqueue",)
    assert settings.deny == frozenset({"fanotify"})


def test_resolve_explicit_auto_overrides_env() -> None:
    settings = resolve(args={"backend": "auto"}, environ={"CROSSWATCH_BACKEND": "kqueue"})
    assert settings.backend is None


def test_resolve_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSWATCH_DENY", "fanotify")
    assert resolve(args=NO_ARGS).deny == frozenset({"fanotify"})


def test_resolve_without_config_file_ignores_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "crosswatch.toml", 'backend = "polling"\n')
    monkeypatch.chdir(tmp_path)
    assert resolve(args=NO_ARGS, environ={}).backend is None


def test_resolve_argument_values() -> None:
    args = {
        "backend": ["inotify", "polling"],
        "deny": "fanotify,kqueue",
        "poll_interval": 1,
        "ignore": ".git",
        "debounce": 0,
    }
    assert resolve(args=args, environ={}) == Settings(
        backend=("inotify", "polling"),
        deny=frozenset({"fanotify", "kqueue"}),
        poll_interval=1.0,
        ignore=(".git",),
        debounce=0.0,
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ({"backend": ""}, ["argument backend=", "is empty"]),
        ({"deny": ["auto"]}, ["argument deny=", "'auto' cannot be denied"]),
        ({"deny": 5}, ["argument deny=", "list of backend names"]),
        ({"poll_interval": 0}, ["argument poll_interval=", "positive"]),
        ({"poll_interval": float("inf")}, ["argument poll_interval=", "positive"]),
        ({"poll_interval": True}, ["argument poll_interval=", "bool"]),
        ({"debounce": -1}, ["argument debounce=", ">= 0"]),
        ({"debounce": float("nan")}, ["argument debounce=", ">= 0"]),
        ({"ignore": [b".git"]}, ["argument ignore=", "not a string"]),
    ],
)
def test_resolve_rejects_bad_arguments(args: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(args=args, environ={})
    for fragment in fragments:
        assert fragment in str(info.value)


def test_resolve_rejects_unknown_argument() -> None:
    with pytest.raises(TypeError, match="colour"):
        resolve(args={"colour": "red"}, environ={})


def test_resolve_reports_bad_env_even_when_argument_given() -> None:
    # A broken variable is reported rather than silently shadowed.
    with pytest.raises(ConfigError, match="CROSSWATCH_BACKEND"):
        resolve(args={"backend": "polling"}, environ={"CROSSWATCH_BACKEND": "a b"})

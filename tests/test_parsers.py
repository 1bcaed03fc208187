"""One parser per kind of value: every source gives the same message for the same mistake.

A library argument, an environment variable, a config file and a command-line flag
differ only in the label that says where the value came from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crosswatch import Change, ConfigError, PluginError, Plugins, Watcher
from crosswatch._cli import main
from crosswatch._config import from_env, from_file
from crosswatch._config_values import BACKEND_NAME_RULE
from crosswatch.testing import ScriptedBackend

ACCEPTED_KINDS = ", ".join(c.value for c in Change)


@pytest.fixture(autouse=True)
def _isolated(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.chdir(tmp_path)  # no config file found above the test's directory


def library_error(tmp_path: Path, **options: object) -> str:
    with pytest.raises(ConfigError) as info:
        Watcher(tmp_path, **options)  # type: ignore[arg-type]
    return str(info.value)


def file_error(tmp_path: Path, text: str) -> tuple[str, str]:
    """The message for a crosswatch.toml holding ``text``, and the file's path."""
    path = tmp_path / "crosswatch.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        from_file(str(path))
    return str(info.value), str(path)


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err


# --- durations ----------------------------------------------------------------------------

POSITIVE = "must be a positive number of seconds, such as 0.5"
ZERO_OK = "must be a number of seconds >= 0, such as 0.1"


def test_a_bad_poll_interval_reads_the_same_from_every_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tail = f"{POSITIVE}, got -1"
    assert library_error(tmp_path, poll_interval=-1) == f"argument poll_interval= {tail}"
    with pytest.raises(ConfigError) as info:
        from_env({"CROSSWATCH_POLL_INTERVAL": "-1"})
    assert str(info.value) == f"CROSSWATCH_POLL_INTERVAL {tail}"
    message, path = file_error(tmp_path, "poll_interval = -1\n")
    assert message == f"{path}: poll_interval {tail}"
    err = cli_error(capsys, "watch", str(tmp_path), "--poll-interval=-1")
    assert f"argument --poll-interval: {tail}\n" in err
    err = cli_error(capsys, "watch", str(tmp_path), "--timeout=-1")
    assert f"argument --timeout: {tail}\n" in err


def test_a_bad_debounce_reads_the_same_from_every_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tail = f"{ZERO_OK}, got -1"
    assert library_error(tmp_path, debounce=-1) == f"argument debounce= {tail}"
    message, path = file_error(tmp_path, "debounce = -1\n")
    assert message == f"{path}: debounce {tail}"
    err = cli_error(capsys, "watch", str(tmp_path), "--debounce=-1")
    assert f"argument --debounce: {tail}\n" in err


def test_a_duration_that_is_not_a_number_reads_the_same_from_text_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tail = f"{POSITIVE}, got 'soon', which is not a number"
    monkeypatch.setenv("CROSSWATCH_POLL_INTERVAL", "soon")
    assert library_error(tmp_path) == f"CROSSWATCH_POLL_INTERVAL {tail}"
    monkeypatch.delenv("CROSSWATCH_POLL_INTERVAL")
    err = cli_error(capsys, "watch", str(tmp_path), "--poll-interval", "soon")
    assert f"argument --poll-interval: {tail}\n" in err
    # Typed sources take numbers only: text there is a wrong type, said as such.
    assert library_error(tmp_path, poll_interval="0.5") == (
        f"argument poll_interval= {POSITIVE}, got str '0.5'"
    )


def test_text_durations_are_numbers_once_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert from_env({"CROSSWATCH_POLL_INTERVAL": " 0.25 "}) == {"poll_interval": 0.25}
    err = cli_error(capsys, "watch", str(tmp_path), "--debounce", "0", "--poll-interval", "0")
    assert f"argument --poll-interval: {POSITIVE}, got 0\n" in err


# --- event kinds --------------------------------------------------------------------------


def test_an_unknown_kind_reads_the_same_from_the_library_and_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tail = f"unknown event kind 'chnaged'; accepted kinds: {ACCEPTED_KINDS}"
    assert library_error(tmp_path, kinds=["created", "chnaged"]) == f"argument kinds=: {tail}"
    err = cli_error(capsys, "watch", str(tmp_path), "-e", "created,chnaged")
    assert f"argument -e/--event: {tail}\n" in err


@pytest.mark.parametrize("single", ["created", Change.CREATED])
def test_a_single_string_is_not_read_letter_by_letter(tmp_path: Path, single: str) -> None:
    message = library_error(tmp_path, kinds=single)
    assert message.startswith(
        "argument kinds= must be a list of event kinds such as ['created'], "
        "not a single string ('created')"
    )
    assert ACCEPTED_KINDS in message


def test_kinds_that_are_no_collection_are_refused(tmp_path: Path) -> None:
    message = library_error(tmp_path, kinds=5)
    assert message.startswith("argument kinds= must be a list of event kinds such as ['created']")
    assert "got int 5" in message


def test_kinds_take_members_and_values_alike(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path, kinds=[Change.CREATED, "deleted", "created"])
    assert watcher.kinds == {Change.CREATED, Change.DELETED}


# --- backend names ------------------------------------------------------------------------

NAME_TAIL = f"'Inotify' is not a valid backend name ({BACKEND_NAME_RULE}); expected"


def test_a_bad_backend_name_reads_the_same_from_every_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert library_error(tmp_path, backend="Inotify").startswith(f"argument backend=: {NAME_TAIL}")
    monkeypatch.setenv("CROSSWATCH_BACKEND", "Inotify")
    assert library_error(tmp_path).startswith(f"CROSSWATCH_BACKEND: {NAME_TAIL}")
    monkeypatch.delenv("CROSSWATCH_BACKEND")
    message, path = file_error(tmp_path, 'backend = "Inotify"\n')
    assert message.startswith(f"{path}: backend: {NAME_TAIL}")
    err = cli_error(capsys, "watch", str(tmp_path), "--backend", "Inotify")
    assert err.startswith(f"crosswatch: error: --backend: {NAME_TAIL}")
    ends = {m.split(NAME_TAIL, 1)[1] for m in (message, err.strip())}
    assert len(ends) == 1


def test_a_bad_denied_name_reads_the_same_from_every_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tail = f"'Fanotify' is not a valid backend name ({BACKEND_NAME_RULE}); expected backend names"
    assert library_error(tmp_path, deny=["Fanotify"]) == f"argument deny=: {tail}"
    with pytest.raises(ConfigError) as info:
        from_env({"CROSSWATCH_DENY": "Fanotify"})
    assert str(info.value) == f"CROSSWATCH_DENY: {tail}"
    err = cli_error(capsys, "backends", str(tmp_path), "--deny", "polling", "--deny", "Fanotify")
    assert err == f"crosswatch: error: --deny: {tail}\n"


class _Named(ScriptedBackend):
    name = "placeholder"


@pytest.mark.parametrize("name", ["Inotify", "2fast", "in otify", "polling\n", "-x"])
def test_registration_refuses_the_names_settings_refuse(tmp_path: Path, name: str) -> None:
    backend = type("Bad", (_Named,), {"name": name})
    with pytest.raises(PluginError) as info:
        Plugins(autoload=False, extra=[backend])
    assert BACKEND_NAME_RULE in str(info.value)
    with pytest.raises(ConfigError, match="not a valid backend name"):
        Watcher(tmp_path, backend=[name])


def test_registration_takes_the_names_settings_take(tmp_path: Path) -> None:
    backend = type("Good", (_Named,), {"name": "my_backend-2"})
    plugins = Plugins(autoload=False, extra=[backend])
    with Watcher(tmp_path, backend="my_backend-2", plugins=plugins) as w:
        assert w.backends == {str(tmp_path): "my_backend-2"}

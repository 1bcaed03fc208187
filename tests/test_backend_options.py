"""Backend options: from each source to the backend's ``Options.extra``, and every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from crosswatch import ConfigError, Plugins, Watcher
from crosswatch._backend_options import merge, parse_cli
from crosswatch._cli import main
from crosswatch.backend import Options
from crosswatch.testing import ScriptedBackend


class Tunable(ScriptedBackend):
    """Reads two options, and refuses a speed below 1 when it opens."""

    name = "tunable"
    extra_options: ClassVar[dict[str, str]] = {
        "speed": "how fast",
        "mode": "which way",
    }

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        speed = self.options.extra.get("speed", 1)
        if not isinstance(speed, int) or speed < 1:
            raise ConfigError(f"tunable speed must be a whole number of 1 or more, not {speed!r}")


def extra_of(w: Watcher) -> dict[str, object]:
    return dict(w.backend("tunable").options.extra)


def test_options_reach_the_backend_they_name(tmp_path: Path) -> None:
    given = {"tunable": {"speed": 3, "mode": "fast"}, "other": {"x": 1}}
    with Watcher(tmp_path, backend=Tunable, backend_options=given) as w:
        assert extra_of(w) == {"speed": 3, "mode": "fast"}


def test_a_backend_without_options_gets_none(tmp_path: Path) -> None:
    with Watcher(tmp_path, backend=Tunable) as w:
        assert extra_of(w) == {}


def test_an_option_the_backend_does_not_read_is_refused_with_a_suggestion(
    tmp_path: Path,
) -> None:
    w = Watcher(tmp_path, backend=Tunable, backend_options={"tunable": {"sped": 2}})
    with pytest.raises(ConfigError, match=r"tunable\.sped is unknown \(did you mean 'speed'\?\)"):
        w.start()
    w.close()


def test_a_value_the_backend_refuses_stops_start(tmp_path: Path) -> None:
    w = Watcher(tmp_path, backend=Tunable, backend_options={"tunable": {"speed": 0}})
    with pytest.raises(ConfigError, match="speed must be a whole number"):
        w.start()
    w.close()


def test_registered_backends_check_their_options_even_when_not_chosen(tmp_path: Path) -> None:
    plugins = Plugins(autoload=False, extra=[Tunable])
    w = Watcher(tmp_path, backend="polling", plugins=plugins,
                backend_options={"tunable": {"colour": "red"}})
    with pytest.raises(ConfigError, match="tunable backend reads mode, speed"):
        w.start()
    w.close()


def test_options_of_a_backend_not_installed_are_ignored(tmp_path: Path) -> None:
    warnings: list[str] = []
    plugins = Plugins(autoload=False, extra=[Tunable])
    given = {"fsevents": {"latency": 0.1}}
    with Watcher(tmp_path, backend="polling", plugins=plugins, backend_options=given,
                 on_warning=warnings.append):
        pass
    assert warnings == []


def test_a_name_close_to_an_installed_backend_is_warned_of(tmp_path: Path) -> None:
    warnings: list[str] = []
    plugins = Plugins(autoload=False, extra=[Tunable])
    with Watcher(tmp_path, backend="polling", plugins=plugins, on_warning=warnings.append,
                 backend_options={"tunabel": {"speed": 2}}):
        pass
    assert len(warnings) == 1
    assert "'tunabel' are ignored" in warnings[0]
    assert "did you mean 'tunable'?" in warnings[0]


def test_a_config_file_sets_options_and_arguments_win_option_by_option(tmp_path: Path) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_text('[backend_options.tunable]\nspeed = 2\nmode = "slow"\n')
    watched = tmp_path / "w"
    watched.mkdir()
    with Watcher(watched, backend=Tunable, config_file=config,
                 backend_options={"tunable": {"mode": "fast"}}) as w:
        assert extra_of(w) == {"speed": 2, "mode": "fast"}


def test_a_pyproject_table_sets_options(tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text("[tool.crosswatch.backend_options.tunable]\nspeed = 5\n")
    watched = tmp_path / "w"
    watched.mkdir()
    with Watcher(watched, backend=Tunable, config_file=config) as w:
        assert extra_of(w) == {"speed": 5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backend_options = 5", "must be a table per backend name"),
        ("[backend_options]\ntunable = 5", "must be a table of option names"),
        ("[backend_options.tunable]\nspeed = [1]", "tunable.speed must be a number"),
        ('[backend_options."Tun able"]\nspeed = 1', "where a backend name goes"),
    ],
)
def test_a_config_file_with_malformed_options_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "crosswatch.toml"
    config.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        Watcher(tmp_path, backend=Tunable, config_file=config)
    assert "crosswatch.toml: backend_options" in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fsevents.latency=0.1", ("fsevents", "latency", 0.1)),
        ("windows.buffer_size=131072", ("windows", "buffer_size", 131072)),
        ("x.flag=true", ("x", "flag", True)),
        ("x.mode=fast", ("x", "mode", "fast")),  # not TOML: taken as text
        ('x.mode="a b"', ("x", "mode", "a b")),
        (" x.speed = 2 ", ("x", "speed", 2)),
    ],
)
def test_command_line_options_are_read_as_toml_values(
    text: str, expected: tuple[str, str, object]
) -> None:
    assert parse_cli(text) == expected


@pytest.mark.parametrize("text", ["latency=0.1", "fsevents.latency", ".x=1", "x.=1", "X.y=1",
                                  "x.y=[1]"])
def test_malformed_command_line_options_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_cli(text)


def test_merge_keeps_earlier_options_that_later_layers_do_not_set() -> None:
    assert merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}, "b": {"z": 4}}) == {
        "a": {"x": 1, "y": 3},
        "b": {"z": 4},
    }


def test_the_cli_refuses_an_option_no_backend_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["watch", str(tmp_path), "--backend", "polling", "--timeout", "0.1",
            "--backend-option", "polling.speed=2"]
    assert main(argv) == 2
    assert "polling.speed is unknown" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nodot=1", "polling.x"])
def test_the_cli_refuses_a_malformed_option(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", str(tmp_path), "--backend-option", value]) == 2
    assert "NAME.OPTION=VALUE" in capsys.readouterr().err

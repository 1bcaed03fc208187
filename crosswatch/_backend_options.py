"""Backend options: settings that only one backend reads (``Options.extra``).

Given as ``backend_options={"windows": {"buffer_size": 131072}}``, as a
``[backend_options.<name>]`` table of a config file, or as
``--backend-option windows.buffer_size=131072``. The shape is checked here, where
the value comes in; the names against the backends when the watcher starts, and
the values by each backend when it opens.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from ._errors import ConfigError

Value: TypeAlias = bool | int | float | str
#: Backend name -> option name -> value.
BackendOptions: TypeAlias = dict[str, dict[str, Value]]

SHAPE = (
    "a table per backend name, of option names and values, such as "
    "{'windows': {'buffer_size': 131072}}"
)
CLI_SHAPE = "NAME.OPTION=VALUE, such as windows.buffer_size=131072"


def parse(value: object, source: str) -> BackendOptions:
    """A mapping of backend names to mappings of options, checked for shape."""
    from ._config_values import BACKEND_NAME_RULE, is_backend_name

    if not isinstance(value, Mapping):
        raise ConfigError(f"{source} must be {SHAPE}; got {type(value).__name__} {value!r}")
    out: BackendOptions = {}
    for name, table in value.items():
        if not is_backend_name(name):
            raise ConfigError(
                f"{source} has {name!r} where a backend name goes ({BACKEND_NAME_RULE})"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{source} {name!r} must be a table of option names and values, such as "
                f"{{'buffer_size': 131072}}; got {type(table).__name__} {table!r}"
            )
        out[name] = {key: _value(f"{source} {name}.{key}", key, v) for key, v in table.items()}
    return out


def _value(where: str, key: object, value: object) -> Value:
    if not isinstance(key, str) or not key.isidentifier():
        raise ConfigError(f"{where}: {key!r} is not an option name (letters, digits and '_')")
    if not isinstance(value, bool | int | float | str):
        raise ConfigError(
            f"{where} must be a number, a string or a boolean; got {type(value).__name__} "
            f"{value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number; got {value!r}")
    return value


def parse_cli(text: str) -> tuple[str, str, Value]:
    """``NAME.OPTION=VALUE`` from the command line; VALUE is read as a TOML value
    (``0.1``, ``true``, ``"x"``), and as text when it is not one (``fast``)."""
    head, sep, raw = text.partition("=")
    name, dot, key = head.strip().partition(".")
    if not sep or not dot or not name or not key:
        raise ConfigError(f"expected {CLI_SHAPE}; got {text!r}")
    try:
        value: object = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    parsed = parse({name: {key: value}}, "")
    return name, key, parsed[name][key]


def merge(*layers: Mapping[str, Mapping[str, Value]]) -> BackendOptions:
    """Later layers win, option by option (a file's other options stay)."""
    out: BackendOptions = {}
    for layer in layers:
        for name, table in layer.items():
            out.setdefault(name, {}).update(table)
    return out


def check_names(options: Mapping[str, Mapping[str, Value]], backend: str,
                accepted: Mapping[str, str]) -> None:
    """Refuse an option that backend ``backend`` does not read, naming the ones it does."""
    unknown = sorted(set(options.get(backend, {})) - set(accepted))
    if not unknown:
        return
    key = unknown[0]
    close = difflib.get_close_matches(key, list(accepted), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(sorted(accepted)) or "none"
    raise ConfigError(
        f"backend option {backend}.{key} is unknown{hint}: the {backend} backend reads "
        f"{known}"
    )


def typo_of(name: str, registered: Iterable[str]) -> str | None:
    """The registered backend that ``name`` looks like a typo of, if any.

    Options for a backend that is not installed here are ignored (one config file
    serves every OS, and each OS installs its own backends); a name close to an
    installed one is more likely a slip.
    """
    names = list(registered)
    if name in names:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    return close[0] if close else None

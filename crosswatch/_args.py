"""The checks of :class:`~crosswatch.Watcher`'s arguments, all made at the call.

Each function takes what the caller passed for one argument and returns it as the
watcher uses it, or raises: :class:`ConfigTypeError` (a ``TypeError`` too) for a
value of the wrong type, :class:`ConfigError` for one out of range, and
:class:`WatchPathError` for a path that cannot be one. Every message names the
argument, shows the value and says what is accepted. Values that settings files
and the environment can also give (backend names, durations, patterns) are then
parsed by :mod:`crosswatch._config`, so they read the same from every source.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from ._backend import Backend
from ._config import parse_seconds
from ._errors import ConfigError, ConfigTypeError, WatchPathError
from ._events import Change
from ._plugins import Plugins

_PATH = "a str, bytes or os.PathLike such as 'src' or pathlib.Path('src')"
_BACKEND = (
    "None, 'auto', a backend name such as 'inotify', a list of names such as "
    "['inotify', 'polling'], or a subclass of crosswatch.backend.Backend"
)
_DENY = "a list of backend names such as ['fanotify'], or a comma-separated string"
_IGNORE = "a pattern or a list of patterns such as ['.git', '*.tmp']"
_KINDS = "a list of event kinds such as ['created', 'deleted']"
_CONFIG = "the path of a crosswatch.toml or pyproject.toml"


def _shown(value: object) -> str:
    """The type and value, as messages show what was given."""
    if isinstance(value, type):
        module = "" if value.__module__ == "builtins" else f"{value.__module__}."
        return f"the class {module}{value.__qualname__}"
    return f"{type(value).__name__} {value!r}"


def _wrong(name: str, accepted: str, value: object, hint: str = "") -> ConfigTypeError:
    return ConfigTypeError(f"argument {name}= must be {accepted}, got {_shown(value)}{hint}")


def paths(values: tuple[object, ...]) -> list[str]:
    """The paths as text; each must name something (``""`` does not)."""
    if not values:
        raise ConfigError("watch() needs at least one path")
    out: list[str] = []
    for value in values:
        hint = ""
        if isinstance(value, list | tuple | set | frozenset):
            hint = "; give several paths as separate arguments: watch('src', 'docs')"
        try:
            if not isinstance(value, str | bytes | os.PathLike):
                raise TypeError
            path = os.fsdecode(os.fspath(value))
        except TypeError:  # os.fspath also refuses a path-like that returns neither
            raise ConfigTypeError(
                f"watch(*paths): each path must be {_PATH}, got {_shown(value)}{hint}"
            ) from None
        if not path:
            raise WatchPathError(
                "cannot watch '': the path is empty; give '.' to watch the current directory"
            )
        if "\0" in path:
            raise WatchPathError(f"cannot watch {path!r}: a path cannot contain a NUL character")
        out.append(path)
    return out


def flag(name: str, value: object) -> bool:
    """A real ``bool``: ``"yes"``, ``1`` or ``None`` would say nothing certain."""
    if not isinstance(value, bool):
        raise _wrong(name, "True or False", value)
    return value


def count(name: str, value: object) -> int:
    """A whole number of at least 1 (a bound on the queue or a batch)."""
    accepted = "a whole number of at least 1"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(name, accepted, value)
    if value < 1:
        raise ConfigError(f"argument {name}= must be {accepted}, got {value!r}")
    return value


def seconds(name: str, value: object, *, zero_ok: bool) -> float:
    """A finite number of seconds, positive or (``zero_ok``) at least 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        wanted = (
            "a number of seconds >= 0, such as 0.1"
            if zero_ok
            else "a positive number of seconds, such as 0.5"
        )
        raise _wrong(name, wanted, value)
    return parse_seconds(value, f"argument {name}=", zero_ok=zero_ok)


def optional_seconds(name: str, value: object, *, zero_ok: bool) -> float | None:
    """``None`` (not given) or :func:`seconds`."""
    return None if value is None else seconds(name, value, zero_ok=zero_ok)


def _strings(name: str, value: object, accepted: str) -> str | list[str] | None:
    """``None``, one string, or the strings of a collection (read once, into a list)."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, Iterable) or isinstance(value, bytes | bytearray | Mapping):
        raise _wrong(name, accepted, value)
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise ConfigTypeError(
                f"argument {name}= must be {accepted}; {_shown(item)} in it is not a string"
            )
    return items


def deny(value: object) -> str | list[str] | None:
    """Backend names never to select; their spelling is checked by the settings."""
    return _strings("deny", value, _DENY)


def ignore(value: object) -> str | list[str] | None:
    """Patterns of entries not to report."""
    return _strings("ignore", value, _IGNORE)


def kinds(value: object) -> list[str] | None:
    """The kinds to deliver, as strings; which names exist is checked by the settings."""
    if value is None:
        return None
    accepted = ", ".join(c.value for c in Change)
    if isinstance(value, str):
        one = str(value)  # a Change member shows as its value
        raise ConfigTypeError(
            f"argument kinds= must be a list of event kinds such as [{one!r}], not a "
            f"single string ({one!r}); accepted kinds: {accepted}"
        )
    items = _strings("kinds", value, _KINDS)
    assert isinstance(items, list)
    if not items:
        raise ConfigError(
            "argument kinds= is empty, so nothing would ever be delivered; give "
            f"{_KINDS}, or None for every kind"
        )
    return items


def backend(value: object) -> str | Sequence[str] | type[Backend] | None:
    """A backend choice; names are checked against the registry at ``start()``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, type):
        if not issubclass(value, Backend):
            raise _wrong("backend", _BACKEND, value)
        if inspect.isabstract(value):
            missing = ", ".join(sorted(value.__abstractmethods__))
            raise ConfigError(
                f"argument backend= got the class {value.__qualname__}, which is abstract "
                f"(it does not implement {missing}); give a Backend subclass that does"
            )
        return value
    if isinstance(value, Backend):
        raise _wrong("backend", _BACKEND, value, "; give the class, not an instance")
    if not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        raise _wrong("backend", _BACKEND, value)
    for item in value:
        if not isinstance(item, str):
            raise ConfigTypeError(
                f"argument backend= must be {_BACKEND}; {_shown(item)} in {value!r} "
                "is not a string"
            )
    return cast(Sequence[str], value)


def function(name: str, value: object, takes: str) -> Callable[..., Any] | None:
    """``None`` or a callable that can be called with one argument, described by ``takes``."""
    if value is None:
        return None
    if not callable(value):
        raise _wrong(name, f"a function taking {takes}", value)
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):  # some built-ins have none to check
        return value
    try:
        signature.bind(None)
    except TypeError:
        raise ConfigTypeError(
            f"argument {name}= must be a function taking {takes}, but {value!r} "
            f"takes {signature}"
        ) from None
    return value


def plugins(value: object) -> Plugins | None:
    """``None`` (load the installed plugins at ``start()``) or a loaded set."""
    if value is None or isinstance(value, Plugins):
        return value
    raise _wrong("plugins", "None or a crosswatch.Plugins, such as Plugins(autoload=False)", value)


def config_file(value: object) -> str | None:
    """A config file's path, as text. Not a file descriptor: the file's name says
    how to read it (``pyproject.toml`` holds a ``[tool.crosswatch]`` table), and
    the descriptor stays the caller's, untouched."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        raise ConfigTypeError(
            f"argument config_file= must be {_CONFIG}, got int {value!r}; a file "
            "descriptor is not accepted, since the file's name says how to read it: "
            "pass the file's path"
        )
    try:
        if not isinstance(value, str | bytes | os.PathLike):
            raise TypeError
        path = os.fsdecode(os.fspath(value))
    except TypeError:
        raise _wrong("config_file", f"None or {_CONFIG}", value) from None
    if not path:
        raise ConfigError(
            f"argument config_file= is empty; give {_CONFIG}, or None to read no file"
        )
    return path

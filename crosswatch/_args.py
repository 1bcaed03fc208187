"""The checks of :class:`~crosswatch.Watcher`'s arguments, all made at the call.

Each function takes what the caller passed for one argument and returns it as the
watcher uses it, or raises: :class:`ConfigTypeError` (a ``TypeError`` too) for a
value of the wrong type, :class:`ConfigError` for one out of range, and
:class:`WatchPathError` for a path that cannot be one. Every message names the
argument, shows the value and says what is accepted. Values that config files
and the environment can also give (backend names, durations, patterns, kinds) are
checked by the parsers of :mod:`crosswatch._config`, which every source shares, so
a mistake reads the same wherever it was made.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeGuard, TypeVar, cast

from ._backend import Backend
from ._config import from_args
from ._config_values import parse_kinds, parse_seconds
from ._errors import ConfigError, ConfigTypeError, WatchPathError
from ._events import Change
from ._plugins import Plugins

_PATH = "a str, bytes or os.PathLike such as 'src' or pathlib.Path('src')"
_BACKEND = (
    "None, 'auto', a backend name such as 'inotify', a list of names such as "
    "['inotify', 'polling'], or a subclass of crosswatch.backend.Backend"
)
_CONFIG = "the path of a crosswatch.toml or pyproject.toml"

T = TypeVar("T")


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


def optional_flag(name: str, value: object) -> bool | None:
    """``None`` (not given) or :func:`flag`."""
    return None if value is None else flag(name, value)


def count(name: str, value: object) -> int:
    """A whole number of at least 1 (a bound on the queue or a batch)."""
    accepted = "a whole number of at least 1"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(name, accepted, value)
    if value < 1:
        raise ConfigError(f"argument {name}= must be {accepted}, got {value!r}")
    return value


def pids(name: str, value: object) -> frozenset[int]:
    """Process ids: ``None`` (none), or a collection of whole numbers of at least 1."""
    if value is None:
        return frozenset()
    accepted = "a list of process ids (whole numbers of at least 1)"
    if isinstance(value, int | str | bytes) or not _collection(value):
        raise _wrong(name, accepted, value)
    items = list(value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise _wrong(name, accepted, value, f"; {_shown(item)} is not a process id")
    return frozenset(items)  # type: ignore[arg-type]


def _shared(parse: Callable[[], T], shape: bool) -> T:
    """What a shared parser makes of a value; a value it refuses that is not of the
    accepted ``shape`` at all is refused as a wrong type, with the parser's message.
    """
    try:
        return parse()
    except ConfigError as exc:
        if not shape:
            raise ConfigTypeError(str(exc)) from None
        raise


def _collection(value: object) -> TypeGuard[Iterable[object]]:
    """A collection of items, not text (one name) nor a mapping."""
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray | Mapping)


def _all_text(items: object) -> bool:
    """A sequence of strings."""
    return (
        isinstance(items, Sequence)
        and not isinstance(items, str | bytes | bytearray)
        and all(isinstance(item, str) for item in items)
    )


def seconds(name: str, value: object, *, zero_ok: bool) -> float:
    """A finite number of seconds, positive or (``zero_ok``) at least 0."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    source = f"argument {name}="
    return _shared(lambda: parse_seconds(value, source, zero_ok=zero_ok), number)


def optional_seconds(name: str, value: object, *, zero_ok: bool) -> float | None:
    """``None`` (not given) or :func:`seconds`."""
    return None if value is None else seconds(name, value, zero_ok=zero_ok)


def _names(name: str, value: object) -> object:
    """``deny=``, ``ignore=`` or ``include=``: one string or a collection of strings, read once into
    a list (an iterator is used up by reading it)."""
    given = list(value) if _collection(value) else value
    shape = given is None or isinstance(given, str) or _all_text(given)
    _shared(lambda: from_args({name: given}), shape)
    return given


def deny(value: object) -> object:
    """Backend names never to select."""
    return _names("deny", value)


def ignore(value: object) -> object:
    """Patterns of entries not to report."""
    return _names("ignore", value)


def include(value: object) -> object:
    """Patterns of the files to report."""
    return _names("include", value)


def backend_options(value: object) -> object:
    """``None`` or a mapping of backend names to mappings of their options."""
    if value is None:
        return None
    shape = isinstance(value, Mapping) and all(isinstance(t, Mapping) for t in value.values())
    return _shared(lambda: from_args({"backend_options": value})["backend_options"], shape)


def kinds(value: object) -> list[Change] | None:
    """The kinds to deliver: a collection, even for one kind, never a single string."""
    if value is None:
        return None
    given = list(value) if _collection(value) else value
    chosen = _shared(lambda: parse_kinds(given, "argument kinds="), _all_text(given))
    if not chosen:
        raise ConfigError(
            "argument kinds= is empty, so nothing would ever be delivered; give a list "
            "of event kinds such as ['created', 'deleted'], or None for every kind"
        )
    return list(chosen)


def backend(value: object) -> str | Sequence[str] | type[Backend] | None:
    """A backend choice; names are checked against the registry at ``start()``."""
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
    shape = value is None or isinstance(value, str) or _all_text(value)
    _shared(lambda: from_args({"backend": value}), shape)
    return cast(str | Sequence[str] | None, value)


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

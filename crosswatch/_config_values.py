"""The values settings take, one parser per kind, shared by every source: keyword
arguments, environment variables, config files and the command line.

``source`` names where a value came from, for the error message; the command line
passes ``""`` to its argparse types, since argparse names the option itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeGuard

from ._errors import ConfigError
from ._events import Change

#: What a backend name is made of; registration and settings both check it here.
BACKEND_NAME_RULE = "lower-case letters, digits, '_' and '-', starting with a letter"
_BACKEND_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_BACKEND_ACCEPTED = (
    "'auto', a backend name such as 'inotify', or a preference list such as "
    "'inotify,polling' or ['inotify', 'polling']"
)


def _say(source: str, rest: str) -> str:
    """``"<source> must be ..."``, or just the rest when the source goes without saying."""
    return f"{source} {rest}" if source else rest


def _at(source: str, rest: str) -> str:
    """``"<source>: 'x' is ..."``, or just the rest when the source goes without saying."""
    return f"{source}: {rest}" if source else rest


def is_backend_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a valid backend name (see :data:`BACKEND_NAME_RULE`)."""
    return isinstance(name, str) and _BACKEND_NAME.fullmatch(name) is not None



def parse_backend_spec(
    value: str | Sequence[str] | None, *, source: str = "argument backend="
) -> tuple[str, ...] | None:
    """Turn a backend choice into a preference tuple, or ``None`` for automatic selection.

    ``source`` names where the value came from, for the error message.
    """
    return parse_backend(value, source)


def parse_backend(value: object, source: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "auto":
            return None
        if not text:
            raise ConfigError(_say(source, f"is empty; expected {_BACKEND_ACCEPTED}"))
        return _names([part.strip() for part in text.split(",")], value, source, "backend")
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        if not value:
            raise ConfigError(_say(source, f"is an empty list; expected {_BACKEND_ACCEPTED}"))
        return _names(list(value), value, source, "backend")
    raise ConfigError(
        _say(
            source,
            f"must be a string or a list of strings, got {type(value).__name__} "
            f"{value!r}; expected {_BACKEND_ACCEPTED}",
        )
    )


def parse_deny(value: object, *, source: str = "argument deny=") -> frozenset[str]:
    """Backend names never to select: a comma-separated string or a collection of names."""
    return deny_value(value, source)


def deny_value(value: object, source: str) -> frozenset[str]:
    if isinstance(value, str):
        if not value.strip():
            return frozenset()
        return frozenset(_names([p.strip() for p in value.split(",")], value, source, "deny"))
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | Mapping):
        return frozenset(_names(list(value), value, source, "deny"))
    raise ConfigError(
        _say(
            source,
            "must be a list of backend names such as ['fanotify'] or a "
            f"comma-separated string, got {type(value).__name__} {value!r}",
        )
    )


def _names(items: list[object], whole: object, source: str, what: str) -> tuple[str, ...]:
    """Check each backend name; drop repeats, keep the order."""
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(
                _at(source, f"{item!r} in {whole!r} is not a string; give backend names as strings")
            )
        if not item:
            raise ConfigError(
                _at(
                    source,
                    f"{whole!r} has an empty name (a stray comma?); "
                    "separate backend names with single commas, e.g. 'inotify,polling'",
                )
            )
        if item == "auto":
            if what == "deny":
                raise ConfigError(_at(source, "'auto' cannot be denied; list backend names"))
            raise ConfigError(
                _at(
                    source,
                    f"'auto' cannot be part of a list ({whole!r}); "
                    "give 'auto' alone, or list backend names only",
                )
            )
        if not is_backend_name(item):
            raise ConfigError(
                _at(
                    source,
                    f"{item!r} is not a valid backend name ({BACKEND_NAME_RULE}); "
                    f"expected {_BACKEND_ACCEPTED if what == 'backend' else 'backend names'}",
                )
            )
        seen[item] = None
    return tuple(seen)


def parse_seconds(value: object, source: str, *, zero_ok: bool, text_ok: bool = False) -> float:
    """A finite duration in seconds: positive, or ``>= 0`` with ``zero_ok``.

    ``value`` is a number, or, with ``text_ok`` (environment variables, the command
    line), text such as ``"0.5"``. The same bad duration gives the same message from
    every source, apart from the ``source`` label.
    """
    if zero_ok:
        wanted = "a number of seconds >= 0, such as 0.1"
    else:
        wanted = "a positive number of seconds, such as 0.5"
    if text_ok and isinstance(value, str):
        shown = value.strip()
        try:
            number = float(shown)
        except ValueError:
            raise ConfigError(
                _say(source, f"must be {wanted}, got {value!r}, which is not a number")
            ) from None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            _say(source, f"must be {wanted}, got {type(value).__name__} {value!r}")
        )
    else:
        number, shown = float(value), repr(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        raise ConfigError(_say(source, f"must be {wanted}, got {shown}"))
    return number


def parse_kinds(value: object, source: str) -> tuple[Change, ...]:
    """Event kinds to deliver: a collection of :class:`Change` members or their values.

    A single string is refused rather than read letter by letter (``Change`` members
    are strings too): the caller is told to give a list.
    """
    accepted = ", ".join(c.value for c in Change)
    if isinstance(value, str):
        raise ConfigError(
            _say(
                source,
                f"must be a list of event kinds such as [{str(value)!r}], not a single "
                f"string ({str(value)!r}); accepted kinds: {accepted}",
            )
        )
    if not isinstance(value, Iterable) or isinstance(value, bytes | bytearray | Mapping):
        raise ConfigError(
            _say(
                source,
                "must be a list of event kinds such as ['created'], got "
                f"{type(value).__name__} {value!r}; accepted kinds: {accepted}",
            )
        )
    chosen: dict[Change, None] = {}
    for item in value:
        try:
            kind = Change(item)
        except ValueError:
            raise ConfigError(
                _at(source, f"unknown event kind {item!r}; accepted kinds: {accepted}")
            ) from None
        chosen[kind] = None
    return tuple(chosen)


def parse_flag(value: object, source: str) -> bool:
    """``True`` or ``False``, and nothing that merely looks like one."""
    if not isinstance(value, bool):
        got = f"{type(value).__name__} {value!r}"
        raise ConfigError(_say(source, f"must be true or false, got {got}"))
    return value


def patterns(value: object, source: str) -> tuple[str, ...]:
    """Ignore or include patterns: a string (one pattern) or a collection of strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | Mapping):
        items = list(value)
        bad = [item for item in items if not isinstance(item, str)]
        if not bad:
            return tuple(items)
        detail = f"{bad[0]!r} is not a string"
    else:
        detail = f"got {type(value).__name__} {value!r}"
    raise ConfigError(f"{source} must be a list of strings such as ['.git', '*.tmp']; {detail}")

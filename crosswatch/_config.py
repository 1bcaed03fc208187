"""Settings from keyword arguments, environment variables and config files.

Each key is taken from the first place that gives it: argument, then environment,
then config file. Every value is checked as it is read (by ``_config_values``), so a
mistake is reported once, with where it came from and what is accepted, before
anything is watched.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from . import _backend_options
from ._backend_options import BackendOptions
from ._config_values import (
    deny_value,
    parse_backend,
    parse_flag,
    parse_seconds,
    patterns,
)
from ._errors import ConfigError, CrosswatchWarning

ENV_BACKEND = "CROSSWATCH_BACKEND"
ENV_DENY = "CROSSWATCH_DENY"
ENV_POLL_INTERVAL = "CROSSWATCH_POLL_INTERVAL"

CONFIG_FILE = "crosswatch.toml"
PYPROJECT_FILE = "pyproject.toml"

#: The keys a config file (or ``resolve(args=...)``) may set.
KEYS = (
    "backend", "deny", "poll_interval", "ignore", "include", "gitignore", "default_ignore",
    "hidden", "debounce",
    "settle", "coalesce", "backend_options",
)

#: Left out unless ``default_ignore`` is off: the directories of version control,
#: caches and environments that tools keep inside a project, with their churn.
DEFAULT_IGNORE = (
    ".git", ".hg", ".svn", ".bzr", "_darcs", "CVS",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
    ".tox", ".nox", ".venv", ".direnv",
    "node_modules", ".parcel-cache", ".next", ".turbo",
    ".idea", ".DS_Store",
)

@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings; ``None`` means "not set anywhere, use the default"."""

    backend: tuple[str, ...] | None = None
    """Backend preference list, best first; ``None`` selects automatically."""
    deny: frozenset[str] = frozenset()
    """Backends never to select."""
    poll_interval: float | None = None
    """Seconds between scans for backends that poll."""
    ignore: tuple[str, ...] = ()
    """Patterns of paths not to report."""
    default_ignore: bool | None = None
    """Whether :data:`DEFAULT_IGNORE` is left out too (``None``: yes)."""
    hidden: bool | None = None
    """Whether entries whose names start with ``.`` are watched (``None``: yes)."""
    include: tuple[str, ...] = ()
    """Patterns of the files to report, if any: the others are left out."""
    gitignore: bool | None = None
    """Whether ``.gitignore`` files are obeyed (``None``: no)."""
    debounce: float | None = None
    """Seconds to gather events into one batch."""
    settle: float | None = None
    """Seconds without any event before a batch is delivered."""
    coalesce: bool | None = None
    """Whether the events of a batch are merged per entry (``None``: no)."""
    backend_options: BackendOptions = field(default_factory=dict)
    """Options of single backends, by backend name (``Options.extra``)."""


class PartialSettings(TypedDict, total=False):
    """The keys one source (arguments, environment or file) sets."""

    backend: tuple[str, ...] | None
    deny: frozenset[str]
    poll_interval: float
    ignore: tuple[str, ...]
    include: tuple[str, ...]
    gitignore: bool
    default_ignore: bool
    hidden: bool
    debounce: float
    settle: float
    coalesce: bool
    backend_options: BackendOptions


# --- sources ------------------------------------------------------------------------------


def from_args(args: Mapping[str, object]) -> PartialSettings:
    """Settings given as keyword arguments; a value of ``None`` means "not given".

    An explicit ``backend="auto"`` counts as given: it overrides the environment.
    """
    unknown = sorted(set(args) - set(KEYS))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    given = {key: value for key, value in args.items() if value is not None}
    out: PartialSettings = {}
    for key, value in given.items():
        source = f"argument {key}="
        if key == "backend":
            out["backend"] = parse_backend(value, source)
        elif key == "deny":
            out["deny"] = deny_value(value, source)
        elif key == "poll_interval":
            out["poll_interval"] = parse_seconds(value, source, zero_ok=False)
        elif key in ("ignore", "include"):
            out[key] = patterns(value, source)  # type: ignore[literal-required]
        elif key == "backend_options":
            out["backend_options"] = _backend_options.parse(value, source)
        elif key == "settle":
            out["settle"] = parse_seconds(value, source, zero_ok=True)
        elif key in ("default_ignore", "hidden", "gitignore", "coalesce"):
            out[key] = parse_flag(value, source)  # type: ignore[literal-required]
        else:
            out["debounce"] = parse_seconds(value, source, zero_ok=True)
    return out


def from_env(environ: Mapping[str, str]) -> PartialSettings:
    """Settings from ``CROSSWATCH_*`` variables; an empty variable counts as unset."""
    out: PartialSettings = {}
    backend = environ.get(ENV_BACKEND, "").strip()
    if backend:
        out["backend"] = parse_backend(backend, ENV_BACKEND)
    deny = environ.get(ENV_DENY, "").strip()
    if deny:
        out["deny"] = deny_value(deny, ENV_DENY)
    interval = environ.get(ENV_POLL_INTERVAL, "").strip()
    if interval:
        out["poll_interval"] = parse_seconds(
            interval, ENV_POLL_INTERVAL, zero_ok=False, text_ok=True
        )
    return out


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _parsed(raw: bytes) -> dict[str, Any] | str:
    """The TOML document in ``raw``, or why it is not one (``"not valid TOML: ..."``)."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        return (
            f"not valid TOML: byte 0x{raw[exc.start]:02x} at line {line}, column {column} "
            "is not UTF-8 (TOML files are UTF-8 text)"
        )
    except tomllib.TOMLDecodeError as exc:
        return f"not valid TOML: {exc}"


def _load_toml(path: str) -> dict[str, Any]:
    data = _parsed(_read(path))
    if isinstance(data, str):
        raise ConfigError(f"{path} is {data}; fix the file")
    return data


def _is_pyproject(path: str) -> bool:
    return os.path.basename(path) == PYPROJECT_FILE


def _crosswatch_table(data: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The settings table of a loaded file; ``None`` for a pyproject.toml without one."""
    if not _is_pyproject(path):
        return data
    tool = data.get("tool")
    table = tool.get("crosswatch") if isinstance(tool, dict) else None
    if table is None or isinstance(table, dict):
        return table
    raise ConfigError(
        f"{path}: tool.crosswatch must be a table ([tool.crosswatch]), "
        f"got {type(table).__name__} {table!r}"
    )


# A line that opens a [tool.crosswatch] table (or a sub-table) or sets a tool.crosswatch
# dotted key: what shows, without parsing, that a pyproject.toml is meant for crosswatch.
_MENTIONS_TABLE = re.compile(
    rb"""^[ \t]*\[{0,2}[ \t]*tool[ \t]*\.[ \t]*(?:crosswatch|"crosswatch"|'crosswatch')"""
    rb"(?![A-Za-z0-9_-])",
    re.MULTILINE,
)


def _has_table(pyproject: str, on_warning: Callable[[str], None]) -> bool:
    """Whether a pyproject.toml met by the search has a ``[tool.crosswatch]`` table.

    A file that cannot be read, or parsed, and shows no such table is someone
    else's problem: it is skipped with a warning instead of stopping crosswatch.
    """
    try:
        raw = _read(pyproject)
    except ConfigError as exc:
        on_warning(f"{exc}; skipped it while looking for a config file")
        return False
    data = _parsed(raw)
    if isinstance(data, str):
        if _MENTIONS_TABLE.search(raw):
            raise ConfigError(f"{pyproject} is {data}; fix the file")
        on_warning(
            f"{pyproject} is {data}; skipped it while looking for a config file "
            "(no [tool.crosswatch] table appears in it)"
        )
        return False
    return _crosswatch_table(data, pyproject) is not None


def _warn(message: str) -> None:
    warnings.warn(message, CrosswatchWarning, stacklevel=4)


def find_config_file(start: str, *, on_warning: Callable[[str], None] | None = None) -> str | None:
    """The nearest config file from directory ``start`` upward, or ``None``.

    In each directory ``crosswatch.toml`` wins, then a ``pyproject.toml`` that has a
    ``[tool.crosswatch]`` table; a pyproject.toml without one does not stop the search.
    Nor does one that cannot be read or parsed, unless a line of it opens a
    ``[tool.crosswatch]`` table: it is passed to ``on_warning`` (default: a
    :class:`CrosswatchWarning`) and skipped. A broken ``crosswatch.toml`` is found
    like any other, for :func:`from_file` to report.
    """
    warn = _warn if on_warning is None else on_warning
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, CONFIG_FILE)
        if os.path.isfile(candidate):
            return candidate
        candidate = os.path.join(directory, PYPROJECT_FILE)
        if os.path.isfile(candidate) and _has_table(candidate, warn):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def from_file(path: str) -> PartialSettings:
    """Settings from ``crosswatch.toml`` (top-level keys) or ``[tool.crosswatch]``."""
    table = _crosswatch_table(_load_toml(path), path)
    if table is None:
        return {}
    where = f"{path}: [tool.crosswatch]" if _is_pyproject(path) else f"{path}:"
    _reject_unknown_keys(table, where)
    out: PartialSettings = {}
    if "backend" in table:
        out["backend"] = parse_backend(table["backend"], f"{where} backend")
    if "deny" in table:
        out["deny"] = _file_deny(table["deny"], f"{where} deny")
    if "poll_interval" in table:
        out["poll_interval"] = parse_seconds(
            table["poll_interval"], f"{where} poll_interval", zero_ok=False
        )
    for key in ("ignore", "include"):
        if key in table:
            value = table[key]
            if not isinstance(value, list):
                raise ConfigError(
                    f"{where} {key} must be a list of strings such as ['.git', '*.tmp'], "
                    f"got {type(value).__name__} {value!r}"
                )
            out[key] = patterns(value, f"{where} {key}")
    for flag in ("default_ignore", "hidden", "gitignore", "coalesce"):
        if flag in table:
            out[flag] = parse_flag(table[flag], f"{where} {flag}")
    if "debounce" in table:
        out["debounce"] = parse_seconds(table["debounce"], f"{where} debounce", zero_ok=True)
    if "settle" in table:
        out["settle"] = parse_seconds(table["settle"], f"{where} settle", zero_ok=True)
    if "backend_options" in table:
        out["backend_options"] = _backend_options.parse(
            table["backend_options"], f"{where} backend_options"
        )
    return out


def _reject_unknown_keys(table: Mapping[str, object], where: str) -> None:
    unknown = sorted(set(table) - set(KEYS))
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(
        f"{where} unknown key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
        f"accepted keys: {', '.join(KEYS)}"
    )


def _file_deny(value: object, source: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise ConfigError(
            f"{source} must be a list of backend names such as ['fanotify'], "
            f"got {type(value).__name__} {value!r}"
        )
    return deny_value(value, source)


# --- merging ------------------------------------------------------------------------------


def resolve(
    *,
    args: Mapping[str, object],
    environ: Mapping[str, str] = os.environ,
    config_file: str | None = None,
) -> Settings:
    """Merge the sources, per key: argument, then environment, then config file.

    ``args`` maps setting names to the caller's values, ``None`` meaning not given.
    The library passes no config file; the CLI passes ``find_config_file(os.getcwd())``.
    """
    layers = [from_file(config_file)] if config_file is not None else []
    layers += [from_env(environ), from_args(args)]
    merged: PartialSettings = {}
    for layer in layers:
        merged.update(layer)
    # Per option, not per key: a file's options for one backend stay when an
    # argument sets another's.
    merged["backend_options"] = _backend_options.merge(
        *(layer.get("backend_options", {}) for layer in layers)
    )
    return Settings(**merged)

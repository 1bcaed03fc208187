"""Probing every backend for a path and choosing the one that will watch it.

Probes are hints from plugins, so a probe that raises or answers nonsense is recorded
as unavailable rather than allowed to break selection. Each backend is probed at most
once per selection, and only when its answer is needed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ._backend import Backend, Probe
from ._config import resolve
from ._errors import BackendUnavailableError, ConfigError, UnknownBackendError, WatchPathError
from ._plugins import BackendRegistry, Plugins


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What every backend says about ``path``, and which one selection would pick."""

    path: str
    results: tuple[Probe, ...]
    """One probe per registered backend, sorted by backend name."""
    choice: str | None
    """The backend selection would use, or ``None`` if none can."""
    reason: str
    """Why ``choice`` was picked, or why nothing can be."""


def _run_probe(name: str, backend: type[Backend], path: str) -> Probe:
    """Ask one backend; never raise."""
    try:
        result: object = backend.probe(path)
    except Exception as exc:  # a broken plugin must not stop selection
        return Probe.unavailable(name, f"probe failed: {exc!r}")
    if not isinstance(result, Probe):
        return Probe.unavailable(name, f"probe failed: returned {result!r} instead of a Probe")
    if result.backend != name:
        result = replace(result, backend=name)
    return result


class _Probes:
    """Probe results for one path, computed on first use."""

    def __init__(self, path: str, registry: BackendRegistry) -> None:
        self.path = path
        self.registry = registry
        self._done: dict[str, Probe] = {}

    def __getitem__(self, name: str) -> Probe:
        if name not in self._done:
            self._done[name] = _run_probe(name, self.registry[name], self.path)
        return self._done[name]

    def all(self) -> list[Probe]:
        return [self[name] for name in self.registry]  # the registry iterates sorted

    def usable(self, deny: frozenset[str]) -> list[str]:
        """Names of the backends that are available and not denied."""
        return [p.backend for p in self.all() if p.available and p.backend not in deny]


def probe_all(path: str, plugins: Plugins) -> list[Probe]:
    """Probe every registered backend for ``path``, sorted by backend name."""
    return _Probes(path, plugins.backends).all()


def select_backend(
    path: str,
    preference: tuple[str, ...] | None,
    deny: frozenset[str],
    plugins: Plugins,
) -> tuple[type[Backend], Probe]:
    """Choose the backend for ``path`` and return its class and its probe.

    ``preference`` ``None`` picks the available backend with the highest score; one
    name forces that backend; several names take the first available one.
    """
    probes = _Probes(path, plugins.backends)
    name, _ = _choose(probes, preference, deny)
    return plugins.backends[name], probes[name]


def _choose(
    probes: _Probes, preference: tuple[str, ...] | None, deny: frozenset[str]
) -> tuple[str, str]:
    """The chosen backend's name and why it was chosen."""
    if preference is None:
        return _choose_auto(probes, deny)
    _check_known(preference, probes.registry)
    if len(preference) == 1:
        return _choose_forced(probes, preference[0], deny)
    return _choose_listed(probes, preference, deny)


def _choose_auto(probes: _Probes, deny: frozenset[str]) -> tuple[str, str]:
    candidates = [p for p in probes.all() if p.available and p.backend not in deny]
    if not candidates:
        raise BackendUnavailableError(_nothing_usable(probes, deny))
    best = min(candidates, key=lambda p: (-p.score, p.backend))
    return best.backend, f"highest score ({best.score}) among the available backends"


def _choose_forced(probes: _Probes, name: str, deny: frozenset[str]) -> tuple[str, str]:
    if name in deny:
        raise ConfigError(
            f"backend {name!r} is both requested and denied; remove it from the deny "
            "list (deny=, CROSSWATCH_DENY or the config file) or request another backend"
        )
    result = probes[name]
    if result.available:
        return name, "requested"
    others = [n for n in probes.usable(deny) if n != name]
    if others:
        advice = (
            f"backends available for this path: {', '.join(others)}; "
            "request one of them or use 'auto'"
        )
    else:
        advice = "no other backend is available for this path either"
    raise BackendUnavailableError(
        f"backend {name!r} cannot watch {probes.path!r}: "
        f"{result.reason or 'its probe gave no reason'}; {advice}"
    )


def _choose_listed(
    probes: _Probes, preference: tuple[str, ...], deny: frozenset[str]
) -> tuple[str, str]:
    for name in preference:
        if name not in deny and probes[name].available:
            return name, "first available backend in the preference list"
    lines = [_status_line(probes[name], deny) for name in preference]
    unlisted = [n for n in probes.usable(deny) if n not in preference]
    if unlisted:
        advice = f"available but not listed: {', '.join(unlisted)}; add one or use 'auto'"
    else:
        advice = "no other backend is available for this path either"
    raise BackendUnavailableError(
        f"none of the preferred backends ({', '.join(preference)}) can watch "
        f"{probes.path!r}:\n" + "\n".join(lines) + f"\n{advice}"
    )


def _nothing_usable(probes: _Probes, deny: frozenset[str]) -> str:
    results = probes.all()
    if not results:
        return (
            "no backends are registered; check CROSSWATCH_DISABLE_PLUGINS and that "
            "the crosswatch plugins are installed"
        )
    lines = [_status_line(p, deny) for p in results]
    return (
        f"no backend can watch {probes.path!r}:\n"
        + "\n".join(lines)
        + "\nallow a denied backend, or install a plugin that supports this system"
    )


def _status_line(result: Probe, deny: frozenset[str]) -> str:
    if result.backend in deny:
        status = "denied"
    elif result.available:
        status = "available"
    else:
        status = f"unavailable: {result.reason or 'no reason given'}"
    return f"  {result.backend}: {status}"


def _check_known(names: Iterable[str], registry: BackendRegistry) -> None:
    unknown = [name for name in names if name not in registry]
    if not unknown:
        return
    known = list(registry)
    parts = []
    typo = False
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        typo = typo or bool(close)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    hint = (
        "check the spelling"
        if typo
        else f"install its plugin (pip install crosswatch-{unknown[0]})"
    )
    raise UnknownBackendError(
        f"unknown backend {', '.join(parts)}; registered backends: "
        f"{', '.join(known) or 'none'}; {hint}"
    )


def probe(
    path: str,
    *,
    backend: str | Sequence[str] | None = None,
    deny: Iterable[str] | None = None,
    plugins: Plugins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeReport:
    """Probe every backend for ``path`` and say which one watching it would use.

    ``backend`` and ``deny`` are merged with ``CROSSWATCH_BACKEND`` and
    ``CROSSWATCH_DENY`` as the watcher does (``environ`` defaults to ``os.environ``).
    """
    if not os.path.exists(path):
        raise WatchPathError(
            f"cannot probe {path!r}: it does not exist; check the path or create it first"
        )
    path = os.path.abspath(path)
    settings = resolve(
        args={"backend": backend, "deny": deny},
        environ=os.environ if environ is None else environ,
    )
    if plugins is None:
        plugins = Plugins()
    probes = _Probes(path, plugins.backends)
    results = tuple(probes.all())
    try:
        choice: str | None
        choice, reason = _choose(probes, settings.backend, settings.deny)
    except BackendUnavailableError as exc:
        choice, reason = None, str(exc)
    return ProbeReport(path, results, choice, reason)

"""Probing every backend for a path and choosing the one that will watch it.

Probes are hints from plugins, so a probe that raises or answers nonsense is recorded
as unavailable rather than allowed to break selection. Each backend is probed at most
once per selection, and only when its answer is needed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from . import _mounts
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
    access: bool = False
    """Whether selection was asked for a backend that reports access events."""


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

    def __init__(
        self, path: str, registry: BackendRegistry, refused: Mapping[str, str] | None = None
    ) -> None:
        self.path = path
        self.registry = registry
        # A backend that said yes, then could not open (a limit used up meanwhile):
        # unavailable, its limit exhausted.
        self._done: dict[str, Probe] = {
            name: Probe(name, False, reason, limit=0) for name, reason in (refused or {}).items()
        }
        self.virtual = _mounts.virtual(path)
        """The virtual file system ``path`` is on, if it is on one."""

    def __getitem__(self, name: str) -> Probe:
        if name not in self._done:
            self._done[name] = _run_probe(name, self.registry[name], self.path)
        return self._done[name]

    def all(self) -> list[Probe]:
        return [self[name] for name in self.registry]  # the registry iterates sorted

    def hears_access(self, name: str) -> bool:
        """Whether backend ``name`` can report access events."""
        return self.registry[name].capabilities.access_events

    def usable(self, deny: frozenset[str], access: bool) -> list[str]:
        """Names of the backends that are available, not denied, and report access
        events if ``access``."""
        return [p.backend for p in self.all() if self.fits(p, deny, access)]

    def fits(self, result: Probe, deny: frozenset[str], access: bool) -> bool:
        if not result.available or result.backend in deny:
            return False
        return not access or self.hears_access(result.backend)

    def exhausted(self, names: Iterable[str], deny: frozenset[str], access: bool) -> list[Probe]:
        """Those of ``names`` that would serve but for a limit used up (``limit == 0``)."""
        found = [self[name] for name in names]
        return [
            p
            for p in found
            if not p.available
            and p.limit == 0
            and p.backend not in deny
            and (not access or self.hears_access(p.backend))
        ]


#: How messages name what ``access=True`` asks for.
_ACCESS_EVENTS = "access events (opened, accessed, closed_write, closed_nowrite)"


def no_access_events(backend: type[Backend]) -> str:
    """Why ``backend``, given as a class, cannot serve a watcher asked for access events."""
    return (
        f"backend {backend.name!r} cannot report {_ACCESS_EVENTS}, which were asked "
        "for (access=True / --access); use a backend whose capabilities include access_events, "
        "or watch without access=True"
    )


def probe_all(path: str, plugins: Plugins) -> list[Probe]:
    """Probe every registered backend for ``path``, sorted by backend name."""
    return _Probes(path, plugins.backends).all()


def select_backend(
    path: str,
    preference: tuple[str, ...] | None,
    deny: frozenset[str],
    plugins: Plugins,
    *,
    access: bool = False,
    refused: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[type[Backend], Probe]:
    """Choose the backend for ``path`` and return its class and its probe.

    ``preference`` ``None`` picks the available backend with the highest score; one
    name forces that backend; several names take the first available one. With
    ``access``, only backends whose capabilities include ``access_events`` qualify.
    ``refused`` maps backends that could not open to why: they are unavailable.
    ``warn`` is told when the choice passes over a backend whose limit is used up.
    """
    probes = _Probes(path, plugins.backends, refused)
    name, _ = _choose(probes, preference, deny, access)
    passed = _passed_over(probes, preference, name, deny, access)
    if warn is not None and passed:
        warn(f"{path!r} is watched with {name} {passed}")
    return plugins.backends[name], probes[name]


def _passed_over(
    probes: _Probes,
    preference: tuple[str, ...] | None,
    name: str,
    deny: frozenset[str],
    access: bool,
) -> str:
    """Which backends the choice of ``name`` passed over only because a limit is used up."""
    if preference is None:
        before: Iterable[str] = probes.registry
    else:
        before = preference[: preference.index(name)] if name in preference else ()
    return "; ".join(
        f"instead of {p.backend}: {p.reason}" for p in probes.exhausted(before, deny, access)
    )


def _choose(
    probes: _Probes, preference: tuple[str, ...] | None, deny: frozenset[str], access: bool
) -> tuple[str, str]:
    """The chosen backend's name and why it was chosen.

    On a virtual file system, where the kernel's own changes reach no backend, only
    one backend requested alone is chosen: selection does not claim to see them.
    """
    if preference is not None:
        _check_known(preference, probes.registry)
    if probes.virtual is not None:
        if preference is None or len(preference) > 1:
            raise BackendUnavailableError(_unseen(probes.path, probes.virtual))
        name, reason = _choose_forced(probes, preference[0], deny, access)
        return name, f"{reason}; but {unseen_warning(probes.path, probes.virtual)}"
    if preference is None:
        return _choose_auto(probes, deny, access)
    if len(preference) == 1:
        return _choose_forced(probes, preference[0], deny, access)
    return _choose_listed(probes, preference, deny, access)


def _unseen(path: str, kind: str) -> str:
    return (
        f"changes on {kind} are not reported by the kernel: {path!r} is on a virtual "
        "file system, where no backend sees what the kernel changes itself (processes "
        "coming and going, values changing), and at most the writes and directories "
        "made through file calls (see each backend's probe); to watch it anyway, "
        "request one backend by name (backend='<name>' or --backend <name>)"
    )


def unseen_warning(path: str, kind: str) -> str:
    """What a watcher forced onto a virtual file system warns of."""
    return (
        f"{path!r} is on {kind}, a virtual file system: the changes the kernel makes "
        "there itself are not reported, at most writes and directories made through "
        "file calls"
    )


def _choose_auto(probes: _Probes, deny: frozenset[str], access: bool) -> tuple[str, str]:
    candidates = [probes[name] for name in probes.usable(deny, access)]
    if not candidates:
        raise BackendUnavailableError(_nothing_usable(probes, deny, access))
    best = min(candidates, key=lambda p: (-p.score, p.backend))
    among = " that report access events" if access else ""
    return best.backend, f"highest score ({best.score}) among the available backends{among}"


def _choose_forced(
    probes: _Probes, name: str, deny: frozenset[str], access: bool
) -> tuple[str, str]:
    if name in deny:
        raise ConfigError(
            f"backend {name!r} is both requested and denied; remove it from the deny "
            "list (deny=, CROSSWATCH_DENY or the config file) or request another backend"
        )
    result = probes[name]
    if result.available and access and not probes.hears_access(name):
        able = [n for n in probes.usable(deny, access) if n != name]
        if able:
            advice = f"backends available for this path that can: {', '.join(able)}"
        else:
            advice = "no available backend can for this path; watch without access=True"
        raise BackendUnavailableError(
            f"backend {name!r} cannot report {_ACCESS_EVENTS}, which were asked for "
            f"(access=True / --access); {advice}"
        )
    if result.available:
        return name, "requested"
    others = [n for n in probes.usable(deny, access) if n != name]
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
    probes: _Probes, preference: tuple[str, ...], deny: frozenset[str], access: bool
) -> tuple[str, str]:
    for name in preference:
        if probes.fits(probes[name], deny, access):
            if access:
                return name, "first backend in the preference list that reports access events"
            return name, "first available backend in the preference list"
    lines = [_status_line(probes, probes[name], deny, access) for name in preference]
    unlisted = [n for n in probes.usable(deny, access) if n not in preference]
    if unlisted:
        advice = f"available but not listed: {', '.join(unlisted)}; add one or use 'auto'"
    else:
        advice = "no other backend is available for this path either"
    raise BackendUnavailableError(
        f"none of the preferred backends ({', '.join(preference)}) can watch "
        f"{probes.path!r}:\n" + "\n".join(lines) + f"\n{advice}"
    )


def _nothing_usable(probes: _Probes, deny: frozenset[str], access: bool) -> str:
    results = probes.all()
    if not results:
        return (
            "no backends are registered; check CROSSWATCH_DISABLE_PLUGINS and that "
            "the crosswatch plugins are installed"
        )
    lines = [_status_line(probes, p, deny, access) for p in results]
    if access:
        return (
            f"no backend can watch {probes.path!r} and report {_ACCESS_EVENTS}, which "
            "were asked for (access=True / --access):\n"
            + "\n".join(lines)
            + "\nwatch without access=True, allow a denied backend, or install a plugin "
            "whose backend reports access events on this system"
        )
    return (
        f"no backend can watch {probes.path!r}:\n"
        + "\n".join(lines)
        + "\nallow a denied backend, or install a plugin that supports this system"
    )


def _status_line(probes: _Probes, result: Probe, deny: frozenset[str], access: bool) -> str:
    if result.backend in deny:
        status = "denied"
    elif result.available and access and not probes.hears_access(result.backend):
        status = "available, but cannot report access events"
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
    access: bool = False,
    plugins: Plugins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeReport:
    """Probe every backend for ``path`` and say which one watching it would use.

    ``backend`` and ``deny`` are merged with ``CROSSWATCH_BACKEND`` and
    ``CROSSWATCH_DENY`` as the watcher does (``environ`` defaults to ``os.environ``).
    ``access`` selects as a watcher asked for access events (``access=True``) does.
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
        choice, reason = _choose(probes, settings.backend, settings.deny, access)
        passed = _passed_over(probes, settings.backend, choice, settings.deny, access)
        if passed:
            reason += f"; {passed}"
    except BackendUnavailableError as exc:
        choice, reason = None, str(exc)
    return ProbeReport(path, results, choice, reason, access)

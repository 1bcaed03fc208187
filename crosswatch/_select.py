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
    pids: bool = False
    """Whether selection was asked for a backend that reports the pid of each change."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What a watcher asks of a backend beyond watching: capabilities it must have."""

    access: bool = False
    """Access events (``access=True``)."""
    pids: bool = False
    """The pid of each change (``pids=True``, ``ignore_pids=``, ``ignore_own=True``)."""

    def __bool__(self) -> bool:
        return self.access or self.pids

    def wanted(self) -> list[_Need]:
        """Each need asked for, in the order messages name them."""
        return [need for field, need in _NEEDS.items() if getattr(self, field)]

    def lacking(self, backend: type[Backend]) -> list[_Need]:
        """What of these ``backend`` cannot give."""
        caps = backend.capabilities
        return [need for need in self.wanted() if not getattr(caps, need.capability)]

    def asked(self) -> str:
        """How the user asked for them, for messages."""
        return "; ".join(need.asked for need in self.wanted())

    def without(self) -> str:
        """How to do without them."""
        return "watch without " + " and ".join(need.without for need in self.wanted())

    def among(self) -> str:
        """A phrase for the backends that meet them ("" when there are no needs)."""
        cans = [need.can for need in self.wanted()]
        return " that " + " and ".join(cans) if cans else ""


@dataclass(frozen=True, slots=True)
class _Need:
    """How one need is checked and named: the capability that meets it, and the
    words of messages about it."""

    capability: str
    """The :class:`~crosswatch.backend.Capabilities` field that meets it."""
    what: str
    short: str
    asked: str
    without: str
    can: str
    plural: bool


_NEEDS = {
    "access": _Need(
        capability="access_events",
        what="access events (opened, accessed, closed_write, closed_nowrite)",
        short="access events",
        asked="access=True / --access",
        without="access=True",
        can="report access events",
        plural=True,
    ),
    "pids": _Need(
        capability="pids",
        what="the pid of each change",
        short="pids",
        asked="pids=True, ignore_pids= or ignore_own=True / --pids, --ignore-pid",
        without="pids, ignore_pids and ignore_own",
        can="report pids",
        plural=False,
    ),
}


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

    def meets(self, name: str, needs: Needs) -> bool:
        """Whether backend ``name`` has every capability ``needs`` asks for."""
        return not needs.lacking(self.registry[name])

    def usable(self, deny: frozenset[str], needs: Needs) -> list[str]:
        """Names of the backends that are available, not denied, and meet ``needs``."""
        return [p.backend for p in self.all() if self.fits(p, deny, needs)]

    def fits(self, result: Probe, deny: frozenset[str], needs: Needs) -> bool:
        if not result.available or result.backend in deny:
            return False
        return self.meets(result.backend, needs)

    def exhausted(self, names: Iterable[str], deny: frozenset[str], needs: Needs) -> list[Probe]:
        """Those of ``names`` that would serve but for a limit used up (``limit == 0``)."""
        found = [self[name] for name in names]
        return [
            p
            for p in found
            if not p.available
            and p.limit == 0
            and p.backend not in deny
            and self.meets(p.backend, needs)
        ]


def _asked(wanted: list[_Need]) -> str:
    """"which was asked for" or "which were", as ``wanted`` reads."""
    return "which was" if len(wanted) == 1 and not wanted[0].plural else "which were"


def unmet(backend: type[Backend], needs: Needs) -> str | None:
    """Why ``backend``, given as a class, cannot serve a watcher with ``needs``, if it cannot."""
    lacking = needs.lacking(backend)
    if not lacking:
        return None
    return (
        f"backend {backend.name!r} cannot report {' or '.join(n.what for n in lacking)}, "
        f"{_asked(lacking)} asked for ({needs.asked()}); use a backend whose capabilities include "
        f"{' and '.join(n.capability for n in lacking)}, or {needs.without()}"
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
    needs: Needs = Needs(),
    refused: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[type[Backend], Probe]:
    """Choose the backend for ``path`` and return its class and its probe.

    ``preference`` ``None`` picks the available backend with the highest score; one
    name forces that backend; several names take the first available one. Only
    backends with the capabilities ``needs`` asks for qualify.
    ``refused`` maps backends that could not open to why: they are unavailable.
    ``warn`` is told when the choice passes over a backend whose limit is used up.
    """
    probes = _Probes(path, plugins.backends, refused)
    name, _ = _choose(probes, preference, deny, needs)
    passed = _passed_over(probes, preference, name, deny, needs)
    if warn is not None and passed:
        warn(f"{path!r} is watched with {name} {passed}")
    return plugins.backends[name], probes[name]


def _passed_over(
    probes: _Probes,
    preference: tuple[str, ...] | None,
    name: str,
    deny: frozenset[str],
    needs: Needs,
) -> str:
    """Which backends the choice of ``name`` passed over only because a limit is used up."""
    if preference is None:
        before: Iterable[str] = probes.registry
    else:
        before = preference[: preference.index(name)] if name in preference else ()
    return "; ".join(
        f"instead of {p.backend}: {p.reason}" for p in probes.exhausted(before, deny, needs)
    )


def _choose(
    probes: _Probes, preference: tuple[str, ...] | None, deny: frozenset[str], needs: Needs
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
        name, reason = _choose_forced(probes, preference[0], deny, needs)
        return name, f"{reason}; but {unseen_warning(probes.path, probes.virtual)}"
    if preference is None:
        return _choose_auto(probes, deny, needs)
    if len(preference) == 1:
        return _choose_forced(probes, preference[0], deny, needs)
    return _choose_listed(probes, preference, deny, needs)


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


def _choose_auto(probes: _Probes, deny: frozenset[str], needs: Needs) -> tuple[str, str]:
    candidates = [probes[name] for name in probes.usable(deny, needs)]
    if not candidates:
        raise BackendUnavailableError(_nothing_usable(probes, deny, needs))
    best = min(candidates, key=lambda p: (-p.score, p.backend))
    return best.backend, (
        f"highest score ({best.score}) among the available backends{needs.among()}"
    )


def _choose_forced(
    probes: _Probes, name: str, deny: frozenset[str], needs: Needs
) -> tuple[str, str]:
    if name in deny:
        raise ConfigError(
            f"backend {name!r} is both requested and denied; remove it from the deny "
            "list (deny=, CROSSWATCH_DENY or the config file) or request another backend"
        )
    result = probes[name]
    lacking = needs.lacking(probes.registry[name])
    if result.available and lacking:
        able = [n for n in probes.usable(deny, needs) if n != name]
        if able:
            advice = f"backends available for this path that can: {', '.join(able)}"
        else:
            advice = f"no available backend can for this path; {needs.without()}"
        raise BackendUnavailableError(
            f"backend {name!r} cannot report {' or '.join(n.what for n in lacking)}, "
            f"{_asked(lacking)} asked for ({needs.asked()}); {advice}"
        )
    if result.available:
        return name, "requested"
    others = [n for n in probes.usable(deny, needs) if n != name]
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
    probes: _Probes, preference: tuple[str, ...], deny: frozenset[str], needs: Needs
) -> tuple[str, str]:
    for name in preference:
        if probes.fits(probes[name], deny, needs):
            if needs:
                return name, f"first backend in the preference list{needs.among()}"
            return name, "first available backend in the preference list"
    lines = [_status_line(probes, probes[name], deny, needs) for name in preference]
    unlisted = [n for n in probes.usable(deny, needs) if n not in preference]
    if unlisted:
        advice = f"available but not listed: {', '.join(unlisted)}; add one or use 'auto'"
    else:
        advice = "no other backend is available for this path either"
    raise BackendUnavailableError(
        f"none of the preferred backends ({', '.join(preference)}) can watch "
        f"{probes.path!r}:\n" + "\n".join(lines) + f"\n{advice}"
    )


def _nothing_usable(probes: _Probes, deny: frozenset[str], needs: Needs) -> str:
    results = probes.all()
    if not results:
        return (
            "no backends are registered; check CROSSWATCH_DISABLE_PLUGINS and that "
            "the crosswatch plugins are installed"
        )
    lines = [_status_line(probes, p, deny, needs) for p in results]
    if needs:
        wanted = needs.wanted()
        return (
            f"no backend can watch {probes.path!r} and report "
            f"{' and '.join(n.what for n in wanted)}, "
            f"{_asked(wanted)} asked for ({needs.asked()}):\n"
            + "\n".join(lines)
            + f"\n{needs.without()}, allow a denied backend, or install a plugin "
            f"whose backend can{needs.among().replace(' that', '', 1)} on this system"
        )
    return (
        f"no backend can watch {probes.path!r}:\n"
        + "\n".join(lines)
        + "\nallow a denied backend, or install a plugin that supports this system"
    )


def _status_line(probes: _Probes, result: Probe, deny: frozenset[str], needs: Needs) -> str:
    lacking = needs.lacking(probes.registry[result.backend])
    if result.backend in deny:
        status = "denied"
    elif result.available and lacking:
        status = "available, but cannot report " + " or ".join(n.short for n in lacking)
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
    pids: bool = False,
    plugins: Plugins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeReport:
    """Probe every backend for ``path`` and say which one watching it would use.

    ``backend`` and ``deny`` are merged with ``CROSSWATCH_BACKEND`` and
    ``CROSSWATCH_DENY`` as the watcher does (``environ`` defaults to ``os.environ``).
    ``access`` and ``pids`` select as a watcher asked for access events
    (``access=True``) or for the pid of each change (``pids=True``) does.
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
        needs = Needs(access=access, pids=pids)
        choice, reason = _choose(probes, settings.backend, settings.deny, needs)
        passed = _passed_over(probes, settings.backend, choice, settings.deny, needs)
        if passed:
            reason += f"; {passed}"
    except BackendUnavailableError as exc:
        choice, reason = None, str(exc)
    return ProbeReport(path, results, choice, reason, access, pids)

"""The shape of the public API: what consumers import, and what plugin authors import."""

from __future__ import annotations

import inspect

import pytest

import crosswatch
import crosswatch.backend

PLUGIN_NAMES = {
    "Action",
    "Backend",
    "BackendRegistry",
    "Capabilities",
    "DirDirty",
    "EntryChange",
    "Gone",
    "Handle",
    "Observation",
    "Options",
    "Probe",
    "Renamed",
    "SubtreeLost",
    "hookimpl",
    "hookspec",
    # the mount table, for probes and for backends that must notice mounts
    "Mount",
    "MountWatch",
    "MountsChanged",
    "REMOTE_FS",
    "VIRTUAL_FS",
    "fs_type",
    "parse_mounts",
    "read_mounts",
    "open_dir",
    # for a backend whose OS API delivers on a thread of its own
    "Waker",
}
CONSUMER_NAMES = {
    "watch", "Watcher", "awatch", "AsyncWatcher", "Event", "Change", "probe", "ProbeReport",
    "Progress",
    "__version__",
}
BACKEND_ERRORS = {"WatchError", "WatchGoneError", "WatchLimitError"}


def test_the_top_level_holds_what_a_consumer_uses() -> None:
    exported = set(crosswatch.__all__)
    assert exported >= CONSUMER_NAMES
    assert not exported & PLUGIN_NAMES
    for name in PLUGIN_NAMES:
        assert not hasattr(crosswatch, name), name
    for name in exported:
        assert hasattr(crosswatch, name), name


def test_the_top_level_exports_every_error_and_warning() -> None:
    classes = {
        name
        for name in crosswatch.__all__
        if isinstance(getattr(crosswatch, name), type)
        and issubclass(getattr(crosswatch, name), Warning | Exception)
    }
    assert classes >= {
        "CrosswatchError",
        "CrosswatchWarning",
        "ConfigError",
        "ConfigTypeError",
        "NotStartedError",
        "UnknownBackendError",
        "BackendUnavailableError",
        "PluginError",
        "WatchPathError",
        *BACKEND_ERRORS,
    }


def test_the_backend_module_holds_what_a_plugin_author_uses() -> None:
    exported = set(crosswatch.backend.__all__)
    assert exported == PLUGIN_NAMES | BACKEND_ERRORS
    for name in exported:
        assert hasattr(crosswatch.backend, name), name
    assert crosswatch.backend.WatchGoneError is crosswatch.WatchGoneError


def _keywords(func: object) -> list[inspect.Parameter]:
    """The parameters after the paths."""
    params = list(inspect.signature(func).parameters.values())  # type: ignore[arg-type]
    return [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def test_awatch_takes_the_keywords_of_watcher_but_callback() -> None:
    params = inspect.signature(crosswatch.Watcher.__init__).parameters
    keywords = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert "callback" in [p.name for p in keywords]
    for p in keywords:  # each reaches Watcher through **keywords, and is checked there
        if p.name == "callback":
            continue
        value = {"recursive": "no", "access": "no"}.get(p.name)
        if value is None:
            continue
        with pytest.raises(crosswatch.ConfigTypeError, match=p.name):
            crosswatch.awatch(".", **{p.name: value})


def test_watch_takes_the_keywords_of_watcher() -> None:
    watch_params = inspect.signature(crosswatch.watch).parameters.values()
    assert not [p for p in watch_params if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert _keywords(crosswatch.watch) == _keywords(crosswatch.Watcher.__init__)
    assert _keywords(crosswatch.watch)  # not vacuous


def test_every_capability_is_read_by_selection_or_the_engine() -> None:
    import dataclasses
    import pathlib

    from crosswatch.backend import Capabilities, EntryChange

    package = pathlib.Path(crosswatch.__file__).parent
    # The contract declares the flags and the CLI lists them: neither is a use.
    skip = {package / "_backend.py", package / "_cli.py", package / "backend.py"}
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(package.rglob("*.py"))
        if path not in skip and "testing" not in path.parts
    )
    for flag in dataclasses.fields(Capabilities):
        assert f"capabilities.{flag.name}" in sources, flag.name
    assert "file_id" not in {f.name for f in dataclasses.fields(EntryChange)}


def test_importing_the_package_loads_neither_the_engine_nor_plugins_nor_asyncio() -> None:
    """What a program pays for ``import crosswatch``; the rest loads on first use."""
    import subprocess
    import sys

    probe = (
        "import sys, crosswatch\n"
        "heavy = ['crosswatch._engine', 'crosswatch._watch', 'pluggy', 'asyncio']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "crosswatch.Watcher\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "print('Watcher' in dir(crosswatch))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert "crosswatch._engine" in out[1]
    assert "asyncio" not in out[1]
    assert out[2] == "True"

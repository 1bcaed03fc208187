"""Plugin loading through entry points, disabling, and registration errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import crosswatch
from crosswatch import CrosswatchWarning, PluginError, Plugins

TOY = '''
from crosswatch.backend import Backend, Probe, hookimpl


class Toy(Backend):
    name = "{name}"

    @classmethod
    def probe(cls, path):
        return Probe(cls.name, False, "toy: never available")

    def watch(self, path, *, recursive):
        return path

    def unwatch(self, handle):
        pass

    def read(self):
        return []


@hookimpl
def crosswatch_register_backends(register):
    register(Toy)
'''


def install_plugin(site: Path, module: str, *, name: str, source: str | None = None) -> None:
    """A distribution with a ``crosswatch`` entry point, found through ``sys.path``."""
    (site / f"{module}.py").write_text(source if source is not None else TOY.format(name=name))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[crosswatch]\n{name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("CROSSWATCH_DISABLE_PLUGINS", "CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("cw_plugin")]:
        del sys.modules[mod]


def test_polling_is_built_in_and_registered_through_the_hook() -> None:
    plugins = Plugins(autoload=False)
    assert "polling" in plugins.backends
    assert plugins.backends.origin("polling") == "polling"
    assert "polling" in plugins.plugin_names()


def available_toy(name: str, score: int) -> str:
    return TOY.format(name=name).replace(
        'False, "toy: never available"', f'True, "toy: always", score={score}'
    )


def test_entry_point_plugins_are_loaded(site: Path) -> None:
    install_plugin(site, "cw_plugin_toy", name="toy")
    # Two plugins outscore every installed backend and tie: the name first in
    # alphabetical order wins, whichever entry point loads first.
    install_plugin(site, "cw_plugin_zeta", name="zeta", source=available_toy("zeta", 10**6))
    install_plugin(site, "cw_plugin_beta", name="beta", source=available_toy("beta", 10**6))
    plugins = Plugins()
    assert plugins.backends["toy"].__name__ == "Toy"
    assert plugins.backends.origin("toy") == "toy"
    report = crosswatch.probe(str(site), plugins=plugins)
    toy = next(p for p in report.results if p.backend == "toy")
    assert (toy.available, toy.reason) == (False, "toy: never available")
    assert report.choice == "beta"
    assert crosswatch.probe(str(site), deny=["beta"], plugins=plugins).choice == "zeta"


def test_plugins_can_be_disabled(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(site, "cw_plugin_toy", name="toy")
    assert "toy" not in Plugins(autoload=False).backends
    assert "toy" not in Plugins(disable=["toy"]).backends
    assert "polling" not in Plugins(disable=["polling"]).backends
    monkeypatch.setenv("CROSSWATCH_DISABLE_PLUGINS", "toy")
    assert "toy" not in Plugins().backends
    monkeypatch.delenv("CROSSWATCH_DISABLE_PLUGINS")
    monkeypatch.setenv("CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "toy" not in Plugins().backends


def test_duplicate_backend_names_are_rejected_loudly(site: Path) -> None:
    install_plugin(site, "cw_plugin_impostor", name="polling")
    with pytest.raises(PluginError, match="two plugins are named 'polling'"):
        Plugins()


def test_two_plugins_registering_one_backend_name_are_rejected(site: Path) -> None:
    install_plugin(site, "cw_plugin_one", name="toy")
    source = TOY.format(name="toy")
    info_name = "cw_plugin_two"
    (site / f"{info_name}.py").write_text(source)
    info = site / f"{info_name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {info_name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[crosswatch]\nother = {info_name}\n")
    with pytest.raises(PluginError, match="two plugins provide a backend named 'toy'"):
        Plugins()


def test_a_broken_plugin_warns_and_the_rest_still_loads(site: Path) -> None:
    install_plugin(site, "cw_plugin_broken", name="broken", source="raise ImportError('nope')\n")
    with pytest.warns(CrosswatchWarning, match="CROSSWATCH_DISABLE_PLUGINS=broken"):
        plugins = Plugins()
    assert "polling" in plugins.backends


def test_registering_something_that_is_not_a_backend_fails() -> None:
    class NotABackend:
        name = "nope"

    with pytest.raises(PluginError, match=r"not a subclass of crosswatch\.backend\.Backend"):
        Plugins(autoload=False, extra=[NotABackend])


def test_a_backend_needs_a_proper_name() -> None:
    from crosswatch.testing import ScriptedBackend

    class Bad(ScriptedBackend):
        name = "Has Spaces"

    with pytest.raises(PluginError, match="lower-case name"):
        Plugins(autoload=False, extra=[Bad])


def test_a_plugin_backend_is_chosen_by_name(site: Path, tmp_path: Path) -> None:
    source = available_toy("always", 0).replace(
        "        return path\n", "        WATCHED.append(path)\n        return path\n"
    )
    install_plugin(site, "cw_plugin_always", name="always", source=f"WATCHED = []\n{source}")
    root = tmp_path / "w"
    root.mkdir()
    with crosswatch.Watcher(str(root), backend="always") as w:
        assert w.backends == {str(root): "always"}
        assert type(w.backend("always")).__module__ == "cw_plugin_always"
    # The plugin's own class watched the root, though polling scores higher.
    watched = sys.modules["cw_plugin_always"].WATCHED
    assert watched == [str(root)]


def test_forcing_an_unavailable_backend_names_what_is_available(site: Path) -> None:
    install_plugin(site, "cw_plugin_toy", name="toy")
    with pytest.raises(crosswatch.BackendUnavailableError) as err:
        crosswatch.Watcher(str(site), backend="toy").start()
    assert "toy: never available" in str(err.value)
    assert "polling" in str(err.value)

"""Plugin loading: built-in plugins, entry points, and the backend and sink registries."""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy

from . import _hookspecs
from ._backend import Backend
from ._config_values import BACKEND_NAME_RULE, is_backend_name
from ._errors import CrosswatchWarning, PluginError
from ._sinks import SinkRegistry

ENTRY_POINT_GROUP = "crosswatch"

#: Built-in plugins, registered like any third-party one.
BUILTIN_PLUGINS = ("crosswatch._polling", "crosswatch._nats")


class BackendRegistry:
    """The object plugins call: ``register(BackendClass)``. Rejects duplicates."""

    def __init__(self) -> None:
        self._backends: dict[str, type[Backend]] = {}
        self._origin: dict[str, str] = {}
        self._current = "<direct>"

    def __call__(self, backend: type) -> type[Backend]:
        if not (isinstance(backend, type) and issubclass(backend, Backend)):
            raise PluginError(
                f"plugin {self._current!r} registered {backend!r}, which is not a "
                "subclass of crosswatch.backend.Backend"
            )
        name = getattr(backend, "name", None)
        if not is_backend_name(name):
            raise PluginError(
                f"plugin {self._current!r}: backend {backend.__qualname__} needs a "
                f"lower-case name such as 'inotify' ({BACKEND_NAME_RULE}), got {name!r}"
            )
        if name in self._backends and self._backends[name] is not backend:
            raise PluginError(
                f"two plugins provide a backend named {name!r}: {self._origin[name]!r} "
                f"and {self._current!r}; uninstall one or disable it with "
                "CROSSWATCH_DISABLE_PLUGINS"
            )
        self._backends[name] = backend
        self._origin[name] = self._current
        return backend

    def origin(self, name: str) -> str:
        """The plugin that registered backend ``name``."""
        return self._origin[name]

    def __getitem__(self, name: str) -> type[Backend]:
        return self._backends[name]

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._backends))

    def __len__(self) -> int:
        return len(self._backends)


def _env_list(name: str) -> list[str]:
    return [p.strip() for p in os.environ.get(name, "").split(",") if p.strip()]


class Plugins:
    """A loaded set of plugins and the backends they registered.

    ``autoload=False`` (or ``CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD=1``) skips entry
    points; ``disable`` (or ``CROSSWATCH_DISABLE_PLUGINS=a,b``) names plugins to
    leave out, built-in ``polling`` included; ``extra`` adds plugin objects or
    :class:`Backend` classes directly.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        disable: Iterable[str] = (),
        extra: Iterable[object] = (),
    ) -> None:
        if autoload is None:
            autoload = os.environ.get("CROSSWATCH_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
        self.disabled = frozenset(disable) | frozenset(_env_list("CROSSWATCH_DISABLE_PLUGINS"))
        self.manager = pluggy.PluginManager("crosswatch")
        self.manager.add_hookspecs(_hookspecs)
        for name in self.disabled:
            self.manager.set_blocked(name)
        for module in BUILTIN_PLUGINS:
            self._register_module(module.rsplit(".", 1)[1].lstrip("_"), module)
        if autoload:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._register_entry_point(ep)
        direct: list[type] = []
        for obj in extra:
            if isinstance(obj, type):  # a class is a backend; the registry checks it
                direct.append(obj)
            else:
                self.manager.register(obj)
        self.backends = BackendRegistry()
        self._collect(self.manager.hook.crosswatch_register_backends, self.backends)
        for backend in direct:
            self.backends(backend)
        self.sinks = SinkRegistry()
        self._collect(self.manager.hook.crosswatch_register_sinks, self.sinks)

    def _collect(self, hook: Any, registry: BackendRegistry | SinkRegistry) -> None:
        """Call every plugin's ``hook`` with ``registry``, which names the plugin in
        what it rejects."""
        for impl in hook.get_hookimpls():
            registry._current = self.manager.get_name(impl.plugin) or repr(impl.plugin)
            impl.function(register=registry)
        registry._current = "<direct>"

    def _register_module(self, name: str, module: str) -> None:
        if self.manager.is_blocked(name):
            return
        self.manager.register(importlib.import_module(module), name=name)

    def _register_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        if self.manager.is_blocked(ep.name):
            return
        known = self.manager.get_plugin(ep.name)
        if known is not None:
            if getattr(known, "__name__", None) == ep.value:
                return  # the same module reached twice
            raise PluginError(
                f"two plugins are named {ep.name!r}: {getattr(known, '__name__', known)!r} "
                f"and {ep.value!r}; uninstall one or disable it with CROSSWATCH_DISABLE_PLUGINS"
            )
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not stop watching
            warnings.warn(
                f"crosswatch plugin {ep.name!r} ({ep.value}) failed to import: {exc!r}; "
                f"fix or uninstall it, or set CROSSWATCH_DISABLE_PLUGINS={ep.name}",
                CrosswatchWarning,
                stacklevel=2,
            )
            return
        self.manager.register(plugin, name=ep.name)

    def plugin_names(self) -> list[str]:
        """Names of the plugins that are registered."""
        return sorted(n for n, _ in self.manager.list_name_plugin())

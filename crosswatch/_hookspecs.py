"""Hook specifications: the contract between crosswatch and its plugins.

A plugin is a module (or object) with functions marked ``@crosswatch.backend.hookimpl``
and named like the specs below. Third-party plugins are found through the
``crosswatch`` entry-point group; the built-in polling backend registers through
the very same hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._plugins import BackendRegistry
    from ._sinks import SinkRegistry

hookspec = pluggy.HookspecMarker("crosswatch")
hookimpl = pluggy.HookimplMarker("crosswatch")


@hookspec
def crosswatch_register_backends(register: BackendRegistry) -> None:
    """Register the backends this plugin provides by calling ``register(BackendClass)``.

    Called once when a plugin set is loaded. The class must subclass
    :class:`crosswatch.backend.Backend` and carry a ``name`` no other plugin uses; a
    duplicate is rejected with :class:`crosswatch.PluginError`. Do not import
    OS-specific modules here: registration must work on every OS, so that users
    can see a backend listed as unavailable and why.
    """


@hookspec
def crosswatch_register_sinks(register: SinkRegistry) -> None:
    """Register the message sinks this plugin provides: ``register(scheme, factory)``.

    A publisher given ``--to SCHEME://…`` calls ``factory(url, stream, options)``
    and gets a :class:`crosswatch.sinks.Sink`. A scheme no other plugin takes
    (``nats``, ``redis``, …); a duplicate is rejected with
    :class:`crosswatch.PluginError`. Import the transport's client library in the
    factory, not here, so that registering costs nothing where it is not used.
    """

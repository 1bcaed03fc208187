"""Feeding a backend's observations to the engine: the one place that reads a backend.

Data flows one way. The engine never calls a backend; when its work waits for the
backend's queue to be read dry (see ``crosswatch._engine._work``), it says so,
and :func:`feed` reads and hands it what came.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._backend import Backend, Observation
from ._engine import Engine, Full

#: Reads of a backend per batch made for the engine's work. Each new level of new
#: directories costs one; under a storm of new directories the queue never runs
#: dry, and past this bound the engine does that work without waiting for another
#: read (an entry renamed into a new directory at that moment may then be reported
#: as created and its old name as deleted, not as one move), so that events are
#: still delivered.
READS_PER_BATCH = 20


def feed(
    engine: Engine,
    backend: Backend,
    observations: Sequence[Observation] | None = None,
    *,
    reads: int = READS_PER_BATCH,
    full: Full | None = None,
) -> None:
    """Apply ``observations`` (default: a read of ``backend``) and the work they leave.

    ``full``: asked between two pieces of work; once it says the consumer has all
    it can take, the rest waits in the engine (``Engine.busy``) for a later call of
    ``feed`` or ``Engine.expire``.
    """
    if full is not None and full():
        return  # the kernel keeps what it has until the consumer catches up
    engine.apply(backend, backend.read() if observations is None else observations, full)
    readable = backend.fileno() is not None
    while full is None or not full():
        if readable and reads > 0 and engine.wants_input():
            reads -= 1
            engine.apply(backend, backend.read(), full)
        elif not engine.advance(full):
            return

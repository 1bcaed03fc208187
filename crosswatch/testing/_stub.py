"""A backend that watches nothing and answers a probe it is given: for selection tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from .._backend import Backend, Handle, Observation, Probe


class StubBackend(Backend):
    """Answers ``answer`` to every probe and counts them (``calls``); watches nothing.

    Subclasses set ``name`` and ``answer`` (and may override ``probe`` or
    ``__init__`` to misbehave on purpose).
    """

    answer: ClassVar[Probe | None] = None
    calls: ClassVar[int] = 0

    @classmethod
    def probe(cls, path: str) -> Probe:
        cls.calls += 1
        assert cls.answer is not None, f"{cls.__name__} sets no answer"
        return cls.answer

    def watch(self, path: str, *, recursive: bool) -> Handle:
        return path

    def unwatch(self, handle: Handle) -> None:
        pass

    def read(self) -> Sequence[Observation]:
        return []

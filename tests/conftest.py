"""Fixtures of the core's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from crosswatch.testing import NatsServer, open_fds, own_threads


@pytest.fixture
def clean() -> Iterator[None]:
    """No crosswatch thread and no new descriptor is left once the test is done."""
    fds = open_fds()
    yield
    assert own_threads() == []
    assert open_fds() == fds


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CROSSWATCH_*`` variable of the caller's environment reaches the test."""
    for name in list(os.environ):
        if name.startswith("CROSSWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    """A NATS server with JetStream on a loopback port, shared by a module's tests."""
    with NatsServer() as server:
        yield server

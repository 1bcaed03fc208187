"""Fixtures of the core's tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CROSSWATCH_*`` variable of the caller's environment reaches the test."""
    for name in list(os.environ):
        if name.startswith("CROSSWATCH_"):
            monkeypatch.delenv(name)

"""The conformance suite, with watchdog's native (inotify) and polling observers."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from crosswatch_watchdog import WatchdogBackend
from watchdog.observers.polling import PollingObserver

from crosswatch.backend import WatchLimitError
from crosswatch.testing import BackendConformance


class PollingWatchdogBackend(WatchdogBackend):
    """The adapter running watchdog's polling observer."""

    observer_class = PollingObserver


#: watchdog's inotify observer holds a rename's first half up to 0.5 s for its
#: second; late events must be waited for past that.
SETTLE = 1.0


#: watchdog's observers walk a tree by recursion and by whole paths: a chain of
#: directories deeper than Python's recursion limit is beyond them. The adapter says
#: so when the root is watched (a ``WatchLimitError`` naming the backends that can).
TOO_DEEP = pytest.mark.xfail(
    reason="watchdog walks trees by recursion: deeper than the recursion limit fails",
    raises=WatchLimitError,
    strict=True,
)


class TooDeep(BackendConformance):
    """The depth tests, expected to fail with the adapter's error at ``start()``."""

    @TOO_DEEP
    def test_a_tree_deeper_than_path_max_is_watched_at_every_level(
        self, deep_base: str, open_watcher: Any
    ) -> None:
        super().test_a_tree_deeper_than_path_max_is_watched_at_every_level(
            deep_base, open_watcher
        )

    @TOO_DEEP
    def test_where_long_paths_cannot_be_walked_the_depth_is_told_once(
        self, deep_base: str, open_watcher: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        super().test_where_long_paths_cannot_be_walked_the_depth_is_told_once(
            deep_base, open_watcher, monkeypatch
        )


class TestWatchdog(TooDeep):
    backend = WatchdogBackend
    settle = SETTLE


class TestWatchdogPolling(TooDeep):
    backend: ClassVar[Any] = PollingWatchdogBackend
    settle = SETTLE

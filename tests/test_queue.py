"""The queue between the watcher's thread and its consumer: bounds, pause, and wake-ups."""

from __future__ import annotations

import threading

from crosswatch import Change, Event
from crosswatch._events import event_bytes
from crosswatch._queue import EventQueue


def batch(n: int, start: int = 0) -> tuple[list[Event], int]:
    events = [Event(Change.CREATED, f"/r/f{i}") for i in range(start, start + n)]
    return events, event_bytes(events)


class Woken:
    def __init__(self) -> None:
        self.times = 0

    def __call__(self) -> None:
        self.times += 1


def queue(woken: Woken, max_queue: int = 4) -> EventQueue:
    return EventQueue(max_queue=max_queue, max_queue_bytes=2**20, max_batch=100, on_room=woken)


def test_reading_pauses_at_a_bound_and_resumes_at_half() -> None:
    woken = Woken()
    q = queue(woken, max_queue=4)
    q.put(*batch(3))
    assert not q.decide_pause(0, 0)
    assert q.decide_pause(1, 0), "what is held counts toward the bound"
    q.put(*batch(2, 3))
    assert q.decide_pause(0, 0)
    assert q.backlog().paused
    assert len(q.get(0) or []) == 5
    assert woken.times == 1, "a get that makes room wakes the thread"
    assert not q.decide_pause(0, 0)
    assert q.get(0) == []
    assert woken.times == 1


class Racing(EventQueue):
    """The consumer's get() starts while the pause is being decided, and is given
    half a second to end before the answer is kept."""

    racer: threading.Thread | None = None

    def must_pause(self, held: int, held_bytes: int) -> bool:
        answer = super().must_pause(held, held_bytes)
        if self.racer is None:
            self.racer = threading.Thread(target=self.get, args=(0,))
            self.racer.start()
            self.racer.join(0.5)
        return answer


def test_a_drain_during_the_pause_decision_still_wakes_the_thread() -> None:
    """Either the decision counts the drain, or the drain sees the pause: the thread
    never sleeps paused beside an empty queue with nobody to wake it."""
    woken = Woken()
    q = Racing(max_queue=4, max_queue_bytes=2**20, max_batch=100, on_room=woken)
    q.put(*batch(4))
    paused = q.decide_pause(0, 0)
    assert q.racer is not None
    q.racer.join(10)
    assert not q.racer.is_alive()
    assert q.backlog().events == 0
    assert not paused or woken.times == 1, "paused, and nobody will wake the thread"


def test_take_all_wakes_a_paused_thread() -> None:
    woken = Woken()
    q = queue(woken, max_queue=2)
    q.put(*batch(2))
    assert q.decide_pause(0, 0)
    assert len(q.take_all()) == 2
    assert woken.times == 1

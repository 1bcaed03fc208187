"""Scripted changes, watched at once by watchdog's observer and the compat one.

Each scenario prepares a tree, then changes it while both observers watch it;
:func:`record` returns what each one's handler saw, for the tests to compare.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer as WatchdogObserver

from crosswatch.compat.watchdog import Observer

WAIT = 30  # seconds: generous, never a measure
END = "zz-end"  # a directory made after each scenario, to know all came before it
Seen = tuple[str, str | bytes, str | bytes]


class Recorder(FileSystemEventHandler):
    """Keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[FileSystemEvent] = []
        self._cond = threading.Condition()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, test: Callable[[], bool]) -> bool:
        with self._cond:
            return self._cond.wait_for(test, WAIT)

    def seen(self) -> list[Seen]:
        """What came, as (class name, src_path, dest_path), without the END mark:
        its creation and the DirModifiedEvent of the root right after it."""
        with self._cond:
            out: list[Seen] = []
            for e in self.events:
                if out and out[-1][0] == "DirCreatedEvent" and named(END)(out[-1][1]):
                    out.pop()
                    if e.event_type == "modified" and e.is_directory:
                        continue
                out.append((type(e).__name__, e.src_path, e.dest_path))
            if out and named(END)(out[-1][1]):
                out.pop()
            return out


def named(name: str) -> Callable[[str | bytes], bool]:
    return lambda path: os.path.basename(os.fsdecode(path)) == name


def out(root: str) -> str:
    return os.path.join(os.path.dirname(root), "out")


def touch(*parts: str) -> None:
    with open(os.path.join(*parts), "w"):
        pass


def tree(top: str) -> None:
    """``top`` holding ``a.txt`` and ``sub/b.txt``."""
    os.makedirs(os.path.join(top, "sub"))
    touch(top, "a.txt")
    touch(top, "sub", "b.txt")


def append(*parts: str) -> None:
    with open(os.path.join(*parts), "a") as f:
        f.write("x")


def read(*parts: str) -> None:
    with open(os.path.join(*parts)) as f:
        f.read()


def nothing(root: str) -> None:
    pass


@dataclass
class Scenario:
    """Changes made to a tree (``prepare`` before watching, ``act`` while watching)."""

    act: Callable[[str], object]
    prepare: Callable[[str], object] = nothing
    ends_root: bool = False  # the root is gone: no END mark can be made
    #: Applied to both sequences: where watchdog's own order is not fixed.
    normalise: Callable[[list[Seen]], object] = field(default=list)


def unordered(events: list[Seen]) -> object:
    """The events, and the directories said modified, without their order: the
    entries of a removed tree come in the order the kernel's events let each see."""
    others = sorted(e for e in events if e[0] != "DirModifiedEvent")
    return others, sorted({e[1] for e in events if e[0] == "DirModifiedEvent"})


def new_tree(top: str) -> Callable[[list[Seen]], object]:
    """A tree made while watched: how much of it each observer sees as it is made
    and how much it finds when it lists the new directories is a race in watchdog
    itself (it may report an entry twice, or miss its opens and closes), so only
    what was made counts."""
    access = {"FileOpenedEvent", "FileClosedEvent", "FileClosedNoWriteEvent"}

    def normalise(events: list[Seen]) -> object:
        below = os.sep + top + os.sep
        kept = {e for e in events if not (e[0] in access and below in str(e[1]))}
        return unordered(sorted(kept))

    return normalise


def p(root: str, *names: str) -> str:
    return os.path.join(root, *names)


SCENARIOS: dict[str, Scenario] = {
    "create": Scenario(lambda r: touch(r, "f")),
    "write": Scenario(lambda r: append(r, "f"), lambda r: touch(r, "f")),
    "read": Scenario(lambda r: read(r, "f"), lambda r: append(r, "f")),
    "chmod": Scenario(lambda r: os.chmod(p(r, "f"), 0o600), lambda r: touch(r, "f")),
    "delete": Scenario(lambda r: os.unlink(p(r, "f")), lambda r: touch(r, "f")),
    "mkdir": Scenario(lambda r: os.mkdir(p(r, "d"))),
    "rmdir": Scenario(lambda r: os.rmdir(p(r, "d")), lambda r: os.mkdir(p(r, "d"))),
    "rename_file": Scenario(lambda r: os.rename(p(r, "f"), p(r, "g")), lambda r: touch(r, "f")),
    "rename_dir": Scenario(lambda r: os.rename(p(r, "d"), p(r, "e")), lambda r: tree(p(r, "d"))),
    "rename_into_sub": Scenario(
        lambda r: os.rename(p(r, "f"), p(r, "d", "f")),
        lambda r: (os.mkdir(p(r, "d")), touch(r, "f")),
    ),
    "replace_file": Scenario(
        lambda r: os.replace(p(r, "new"), p(r, "f")),
        lambda r: (touch(r, "f"), touch(r, "new")),
    ),
    "move_in_file": Scenario(
        lambda r: os.rename(p(out(r), "f"), p(r, "f")), lambda r: touch(out(r), "f")
    ),
    "move_out_file": Scenario(
        lambda r: os.rename(p(r, "f"), p(out(r), "f")), lambda r: touch(r, "f")
    ),
    "rmtree": Scenario(
        lambda r: shutil.rmtree(p(r, "d")), lambda r: tree(p(r, "d")), normalise=unordered
    ),
    "new_tree": Scenario(lambda r: tree(p(r, "x")), normalise=new_tree("x")),
    "delete_root": Scenario(shutil.rmtree, tree, ends_root=True, normalise=unordered),
}


def deleted(path: str | bytes) -> Callable[[Seen], bool]:
    return lambda e: e[0].endswith("DeletedEvent") and os.fsdecode(e[1]) == os.fsdecode(path)


Check = Callable[[list[Seen], list[Seen]], bool]


def record(
    scenario: Scenario,
    root: str,
    path: str | bytes | None = None,
    *,
    last: Callable[[Seen], bool] | None = None,
    check: Check | None = None,
    **schedule: object,
) -> tuple[list[Seen], list[Seen]]:
    """What watchdog's observer and the compat one saw of ``scenario``, watching at
    once. ``path`` (default ``root``) is what both are given to watch; both are
    waited for until each has seen ``last`` (by default: the root's deletion, or
    the END mark made after the scenario), and until ``check`` (by default: the
    two sequences are the same, normalised) holds: events may come after the
    mark in crosswatch, which holds a move's first half for its second."""
    path = root if path is None else path
    scenario.prepare(root)
    handlers = Recorder(), Recorder()
    observers = WatchdogObserver(), Observer()
    for observer, handler in zip(observers, handlers, strict=True):
        observer.schedule(handler, path, **{"recursive": True, **schedule})  # type: ignore[arg-type]
        observer.start()
    if check is None:
        check = lambda theirs, ours: scenario.normalise(ours) == scenario.normalise(theirs)  # noqa: E731
    try:
        scenario.act(root)
        if last is None and scenario.ends_root:
            last = deleted(path)
        elif last is None:
            os.mkdir(p(root, END))
            last = lambda e: e[0] == "DirCreatedEvent" and named(END)(e[1])  # noqa: E731
        for handler in handlers:
            assert handler.wait(lambda h=handler: any(map(last, raw(h)))), raw(handler)
        handlers[1].wait(lambda: check(handlers[0].seen(), handlers[1].seen()))
        return handlers[0].seen(), handlers[1].seen()
    finally:
        for observer in observers:
            observer.stop()
            observer.join()


def raw(handler: Recorder) -> list[Seen]:
    return [(type(e).__name__, e.src_path, e.dest_path) for e in handler.events]

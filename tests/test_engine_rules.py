"""Engine rules as data: an initial tree, then steps of (file operations, observations,
expected events). The engine is driven directly and deterministically: observations
are pushed by the test, the files are real.

Every case also checks that a strict mirror of the initial tree, fed every event,
equals the disk at the end, and that a final rescan finds nothing left to report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crosswatch._engine import Engine, Ignore
from crosswatch._feed import feed
from crosswatch.backend import (
    Action,
    Capabilities,
    DirDirty,
    EntryChange,
    Gone,
    Observation,
    Renamed,
    SubtreeLost,
)
from crosswatch.testing import Mirror, ScriptedBackend, snapshot

#: How many times a step's end may expire: once, then again while a deadline is left.
EXPIRE_ROUNDS = 5
#: A handle no watched directory has: the other end of a rename out of or into the tree.
UNWATCHED = "unwatched"


@dataclass
class Step:
    ops: list[str] = field(default_factory=list)
    obs: list[str] = field(default_factory=list)
    events: list[str] | None = field(default_factory=list)  # None: only the end state counts
    #: The backend has nothing more queued after ``obs``: the engine expires what
    #: waits, as the watcher does once its backends are drained.
    expire: bool = True
    #: (operations, observations): done right after the engine watches a new
    #: directory, one race per watch in order, and what the backend then queues: a
    #: writer racing the engine between watching a directory and listing it.
    races: list[tuple[list[str], list[str]]] = field(default_factory=list)
    #: observations already queued behind ``obs``: read by the engine itself.
    queued: list[str] = field(default_factory=list)


@dataclass
class Case:
    name: str
    tree: list[str]
    steps: list[Step]
    root: str = ""
    ignore: list[str] = field(default_factory=list)
    #: The id of the rule this case pins, as docs/architecture.md names it.
    rule: str = ""
    #: The backend watches each root's whole subtree, naming entries by their path
    #: below it (``created . a/b``), as ReadDirectoryChangesW and FSEvents do.
    recursive: bool = False
    #: The backend folds later changes into earlier events of the same name
    #: (``Capabilities.merges_later``, as fanotify does).
    merges: bool = False


# d is moved to t and deleted there while a move out of it waits for its pair, with a
# rename to t held behind that move; a file is then written at t.
REPLACED_OPS = ["mv d/s ../out", "write d/s", "mv d/s t", "mv t ../gone", "mv d t", "rmtree t",
                "write t"]
REPLACED_OBS = [
    "moved_from d s #1 /",  # out of the tree: never paired
    "created d s",  # held behind that move, and so is this rename
    "moved_from d s #2",
    "moved_to . t #2",
    "moved_from . t #3",
    "moved_from . d #4 /",
    "moved_to . t #4 /",
]

CASES = [
    Case(
        "created is reported once, even when the observation comes twice",
        ["a/"],
        [
            Step(["write b"], ["created . b"], ["created b"]),
            Step([], ["created . b"], []),
        ],
        rule="idempotent",
    ),
    Case(
        "deleted of an unknown entry does nothing",
        [],
        [Step([], ["deleted . ghost"], [])],
        rule="idempotent",
    ),
    Case(
        "a new directory is listed after it is watched: its contents are created, parents first",
        [],
        [
            Step(
                ["mkdir a", "mkdir a/b", "mkdir a/b/c", "write a/b/c/f"],
                ["created . a /"],
                ["created a/", "created a/b/", "created a/b/c/", "created a/b/c/f"],
            ),
            # the kernel's late reports of what the listing already found change nothing
            Step([], ["created a b /", "created a/b c /", "created a/b/c f"], []),
        ],
        rule="watch-then-list",
    ),
    Case(
        "a rename into a directory not watched yet is one move, not deleted + created",
        ["src", "sub/"],
        [
            Step(
                ["mkdir d", "mv src d/x", "mv sub d/y"],
                ["created . d /", "moved_from . src #1", "moved_from . sub #2 /"],
                ["created d/", "moved src -> d/x", "moved sub -> d/y/"],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "a directory renamed onto a name whose removal is read first is one move",
        ["d/", "d/f", "t/"],
        [
            Step(
                ["rmtree t", "mv d t"],
                ["deleted . t /", "moved_from . d #1 /", "moved_to . t #1 /"],
                ["deleted t/", "moved d -> t/"],
            )
        ],
        rule="watch-owner",
    ),
    Case(
        "a directory found by its watch before its renames are read goes through every name",
        ["a/", "a/f", "n"],
        [
            Step(
                ["rm n", "mv a b", "mv b c", "write b", "mv c n"],
                ["deleted . n", "moved_from . a #1 /", "moved_to . b #1 /",
                 "moved_from . b #2 /", "moved_to . c #2 /", "created . b",
                 "moved_from . c #3 /", "moved_to . n #3 /"],
                ["deleted n", "moved a -> b/", "moved b -> c/", "created b", "moved c -> n/"],
            )
        ],
        rule="watch-owner",
    ),
    Case(
        "a directory renamed over a new empty one, the creation read first, is one move",
        ["d/", "d/f"],
        [
            Step(
                ["mkdir t", "mv d t"],
                ["created . t /", "moved_from . d #1 /", "moved_to . t #1 /"],
                ["moved d -> t/"],
            )
        ],
        rule="watch-owner",
    ),
    Case(
        "a directory moved to another directory's name that came and went is one move",
        ["a/", "a/d/", "a/d/f", "b/"],
        [
            Step(
                ["mkdir b/t", "rmtree b/t", "mv a/d b/t"],
                ["created b t /", "deleted b t /", "moved_from a d #1 /", "moved_to b t #1 /"],
                ["moved a/d -> b/t/"],
            )
        ],
        rule="watch-owner",
    ),
    Case(
        "an entry renamed into a new directory and removed before it is placed: moved, deleted",
        ["src"],
        [
            Step(
                ["mkdir d", "mv src d/x", "mkdir e"],
                ["created . d /", "created . e /", "moved_from . src #1"],
                ["created d/", "created e/", "moved src -> d/x", "deleted d/x"],
                # d is listed as soon as it is watched; x goes while e is watched
                races=[([], []), (["rm d/x"], ["deleted d x"])],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "a listed name whose newer entry's move out waits is not taken by an older move in",
        ["src"],
        [
            Step(
                ["mkdir d", "mv src d/x", "mkdir e"],
                ["created . d /", "created . e /", "moved_from . src #2"],
                ["created d/", "created e/", "created d/x", "created f/", "deleted src",
                 "deleted d/x"],
                races=[
                    ([], []),  # d is watched and listed: x is src
                    # e is watched: src leaves x, a file c takes the name, f is made
                    (
                        ["mv d/x ../out1", "write d/x", "mkdir f"],
                        ["moved_from d x #3", "created d x", "created . f /"],
                    ),
                    # f is watched: c leaves too; its move waits when d is placed
                    (["mv d/x ../out2"], ["moved_from d x #4"]),
                ],
            )
        ],
        rule="wait-for-old",
    ),
    Case(
        "an entry renamed into a new directory as it is listed is a move (watched first)",
        ["src"],
        [
            Step(
                ["mkdir d"],
                ["created . d /"],
                ["created d/", "moved src -> d/x"],
                races=[(["mv src d/x"], ["moved_from . src #4", "moved_to d x #4"])],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "an entry renamed into a new directory as it is listed is a move (watched after)",
        ["src", "sub/", "sub/f"],
        [
            Step(
                ["mkdir d"],
                ["created . d /"],
                ["created d/", "moved src -> d/x", "moved sub -> d/y/"],
                # the kernel reports these renames before the watch: no moved_to
                races=[
                    (["mv src d/x", "mv sub d/y"], ["moved_from . src #4", "moved_from . sub #5 /"])
                ],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "what happens to a listed entry before the listing is placed, the disk decides",
        ["src"],
        [
            Step(
                ["mkdir d", "write d/a", "write d/b"],
                ["created . d /"],
                ["created d/", "created d/c"],
                races=[
                    (
                        ["rm d/a", "mv d/b ../away", "write d/c"],
                        ["deleted d a", "moved_from d b #6", "created d c"],
                    )
                ],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "a directory found where a file was created, renamed there unread, keeps its watch",
        ["d/", "d/old"],
        [
            Step(
                ["write n", "mv n d/f", "mv d n", "write n/g"],
                [
                    "created . n",  # what is at n when this is read is directory d
                    "moved_from . n #1",
                    "moved_to d f #1",
                    "moved_from . d #2 /",
                    "moved_to . n #2 /",
                    "created d g",  # through d's own watch, which must still lead to it
                ],
                None,  # any events that bring the mirror to the disk
            )
        ],
        rule="watch-owner",
    ),
    Case(
        "a moved_from of another kind than the cached entry: that one is gone",
        ["n3"],
        [
            Step(
                ["rm n3", "mkdir n3", "mv n3 n24"],
                ["deleted . n3", "created . n3 /", "moved_from . n3 #1 /", "moved_to . n24 #1 /"],
                ["deleted n3", "created n24/"],
            )
        ],
        rule="verify",
    ),
    Case(
        "a file moved, then replaced at its new name before it is read: moved, modified",
        ["x"],
        [
            Step(
                ["mv x y", "write t", "mv t y"],
                [
                    "moved_from . x #1",
                    "moved_to . y #1",
                    "created . t",
                    "moved_from . t #2",
                    "moved_to . y #2",
                ],
                ["moved x -> y", "modified y (replaced)"],
            )
        ],
        rule="verify",
    ),
    Case(
        "a directory moved where another directory stands by the time it is read",
        ["d/", "d/f"],
        [
            Step(
                ["mv d e", "mv e ../away", "mkdir e", "write e/g"],  # no inode reused
                ["moved_from . d #1 /", "moved_to . e #1 /"],
                ["moved d -> e/", "deleted e/", "created e/", "created e/g"],
            )
        ],
        rule="own-watch",
    ),
    Case(
        "a directory moved, moved on and its name taken, all before the first move is read",
        ["d/", "d/f"],
        [
            Step(
                ["mv d e", "mv e g", "write e"],
                ["moved_from . d #1 /", "moved_to . e #1 /"],
                ["moved d -> e/", "moved e -> g/", "created e"],
                queued=["moved_from . e #2 /", "moved_to . g #2 /", "created . e"],
            )
        ],
        rule="kernel-pairing",
    ),
    Case(
        "a new entry read early, renamed before its created is read, is reported moved",
        ["n1"],
        [
            Step(
                ["rm n1", "mkdir n1"],
                ["deleted . n1", "created . n1 /"],
                ["deleted n1", "created n1/", "moved n1 -> n12/"],
                # as the new n1 is watched (for the deleted n1, which found it)
                races=[(["mv n1 n12"], ["moved_from . n1 #1 /", "moved_to . n12 #1 /"])],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "a rename held behind an unpaired moved_from of its name keeps its two halves together",
        ["a", "b", "c"],
        [
            Step(
                ["mv a ../away", "mv b a", "mv a c"],
                [
                    "moved_from . a #1",
                    "moved_from . b #2",
                    "moved_to . a #2",
                    "moved_from . a #3",
                    "moved_to . c #3",
                ],
                ["deleted a", "moved b -> a", "moved a -> c"],
            )
        ],
        rule="pending-move",
    ),
    Case(
        "an entry renamed out of a directory onto that directory's old name",
        ["d/", "d/f"],
        [
            Step(
                ["mv d ../away", "mv ../away/f d"],
                ["moved_from . d #1 /", "moved_from d f #2", "moved_to . d #2", "dirty ."],
                ["deleted d/f", "deleted d/", "created d"],
            )
        ],
        rule="rename-onto-parent",
    ),
    Case(
        "a file moved, moved on and a directory made at its name before the move is read",
        ["x"],
        [
            Step(
                ["mv x y", "mv y z", "mkdir y"],
                ["moved_from . x #1", "moved_to . y #1"],
                ["moved x -> y", "moved y -> z", "created y/"],
                queued=["moved_from . y #2", "moved_to . z #2", "created . y /"],
            )
        ],
        rule="kernel-pairing",
    ),
    Case(
        "a diff of one directory leaves moves out of its subdirectories pending",
        ["d/", "d/s/", "d/s/f"],
        [
            Step(
                ["mv d/s/f ../away", "write d/x", "mv d e"],
                # d's path is stale when "created d x" is read: d is diffed (alone)
                # once the batch is applied; f's move out must still end as deleted
                ["moved_from d/s f #1", "created d x", "moved_from . d #2 /", "moved_to . e #2 /"],
                ["moved d -> e/", "created e/x", "deleted e/s/f"],
            )
        ],
        rule="pending-move",
    ),
    Case(
        "what a listing finds where an entry moved away waits for that move to settle",
        [],
        [
            Step(
                ["mkdir n10"],
                ["created . n10 /"],
                ["created n10/", "created n10/n28/", "deleted n10/n28/", "created n10/n28/"],
                races=[
                    (["mkdir n10/n28"], ["created n10 n28 /"]),  # as n10 is watched
                    (  # as the first n28 is watched
                        ["mv n10/n28 ../away", "mkdir n10/n28"],
                        ["moved_from n10 n28 #5 /", "created n10 n28 /"],
                    ),
                ],
            )
        ],
        rule="wait-for-old",
    ),
    Case(
        "a file renamed onto a name already read for an earlier observation is a move",
        ["x"],
        [
            Step(
                ["write n", "mv x n"],
                ["created . n", "moved_from . x #3", "moved_to . n #3"],
                ["created n", "moved x -> n"],
            )
        ],
        rule="newer-reading",
    ),
    Case(
        "an entry created and deleted before its observation is read is not reported",
        [],
        [Step(["write t", "rm t"], ["created . t", "deleted . t"], [])],
        rule="idempotent",
    ),
    Case(
        "a burst of writes is one modified",
        ["f"],
        [Step(["append f", "append f"], ["modified . f", "modified . f"], ["modified f"])],
        rule="verify",
    ),
    Case(
        "a rename pairs by cookie; unrelated events are not held back",
        ["x"],
        [
            Step(
                ["mv x z", "write y"],
                ["moved_from . x #7", "created . y", "moved_to . z #7"],
                ["created y", "moved x -> z"],
            )
        ],
        rule="cookie-pairing",
    ),
    Case(
        "a rename split across two reads still pairs",
        ["x"],
        [
            Step(["mv x z"], ["moved_from . x #3"], [], expire=False),
            Step([], ["moved_to . z #3"], ["moved x -> z"]),
        ],
        rule="cookie-pairing",
    ),
    Case(
        "an unpaired moved_from becomes deleted",
        ["d/", "d/f"],
        [Step(["mv d ../outside"], ["moved_from . d #1 /"], ["deleted d/"])],
        rule="unpaired",
    ),
    Case(
        "an unpaired moved_from back at its name is diffed: it may be another entry",
        ["d/", "d/f"],
        [
            Step(
                ["mv d ../outside", "write ../outside/g", "mv ../outside d"],
                ["moved_from . d #1 /"],  # its return, and g, were never observed
                ["created d/g"],
            )
        ],
        rule="unpaired",
    ),
    Case(
        "an unpaired moved_to becomes created with its contents",
        [],
        [
            Step(
                ["mkdir ../in", "mkdir ../in/sub", "write ../in/sub/f", "mv ../in new"],
                ["moved_to . new #9 /"],
                ["created new/", "created new/sub/", "created new/sub/f"],
            )
        ],
        rule="unpaired",
    ),
    Case(
        "without a cookie, a moved_to pairs with the moved_from just before it",
        ["x", "y"],
        [
            Step(
                ["mv x a", "mv y b"],
                ["moved_from . x", "moved_to . a", "moved_from . y", "moved_to . b"],
                ["moved x -> a", "moved y -> b"],
            )
        ],
        rule="cookie-pairing",
    ),
    Case(
        "without a cookie, a moved_from followed by another is unpaired",
        ["x", "y"],
        [
            Step(
                ["mv x ../out", "mv y b"],
                ["moved_from . x", "moved_from . y", "moved_to . b"],
                ["deleted x", "moved y -> b"],
            )
        ],
        rule="cookie-pairing",
    ),
    Case(
        "a moved directory carries its subtree and its watches",
        ["d/", "d/sub/", "d/sub/f"],
        [
            Step(["mv d e"], ["moved_from . d #1 /", "moved_to . e #1 /"], ["moved d -> e/"]),
            Step(["append e/sub/f"], ["modified e/sub f"], ["modified e/sub/f"]),
        ],
        rule="cookie-pairing",
    ),
    Case(
        "events about a pending moved_from's old name wait for it",
        ["a"],
        [
            Step(
                ["mv a b", "write a"],
                ["moved_from . a #1", "created . a", "moved_to . b #1"],
                ["moved a -> b", "created a"],
            )
        ],
        rule="pending-move",
    ),
    Case(
        "a move onto an existing file replaces it",
        ["x", "y"],
        [Step(["mv x y"], ["moved_from . x #1", "moved_to . y #1"], ["moved x -> y"])],
        rule="cookie-pairing",
    ),
    Case(
        "a rename undone before it is read is reported, and so is its undoing",
        ["a"],
        [
            Step(
                ["mv a b", "mv b a"],
                ["moved_from . a #1", "moved_to . b #1", "moved_from . b #2", "moved_to . a #2"],
                ["moved a -> b", "moved b -> a"],
            )
        ],
        rule="cookie-pairing",
    ),
    Case(
        "a rename the disk contradicts, with nothing queued to explain it, is reconciled",
        ["a", "d/"],
        [
            Step(
                ["mv a b", "mv b a", "mv d e", "mv e d"],
                [
                    "moved_from . a #1",
                    "moved_to . b #1",
                    "moved_from . d #2 /",
                    "moved_to . e #2 /",
                ],
                [
                    "moved a -> b",
                    "moved d -> e/",
                    "deleted b",
                    "created a",
                    "deleted e/",
                    "created d/",
                ],
            )
        ],
        rule="kernel-pairing",
    ),
    Case(
        "a listing that finds a moved entry at a name whose old entry's move waits holds it",
        ["d/", "x"],
        [
            Step(
                ["mkdir d/e"],
                ["created d e /"],
                ["created d/e/", "created d/e/a", "created d/f/", "deleted d/e/a",
                 "moved x -> d/e/a"],
                races=[
                    # e is watched: a file is made in it, and another directory
                    (["write d/e/a", "mkdir d/f"], ["created d/e a", "created d f /"]),
                    # f is watched: the file leaves, and x takes its name; e's listing
                    # (not placed yet) finds x there while a's move waits for its pair
                    (
                        ["mv d/e/a ../out", "mv x d/e/a"],
                        ["moved_from d/e a #1", "moved_from . x #2", "moved_to d/e a #2"],
                    ),
                ],
            )
        ],
        rule="wait-for-old",
    ),
    Case(
        "a directory made by what a late diff replays is listed before the batch ends",
        ["d/", "d/x"],
        [
            # d's path is stale when this is read: d is looked at after the rename
            Step(["mv d e"], ["created d y"], [], expire=False),  # the rename is queued
            Step(
                ["mv e/x ../out", "mkdir e/x", "write e/x/f"],
                # (handles are named by where their directory is before the step)
                ["moved_from . d #1 /", "moved_to . e #1 /", "moved_from e x #2",
                 "created e x /"],
                ["moved d -> e/", "deleted e/x", "created e/x/", "created e/x/f"],
                expire=False,  # nothing else is due: no deadline would list it later
            ),
        ],
        rule="watch-then-list",
    ),
    Case(
        "a rename held behind a move out of a directory since deleted is still applied",
        ["d/", "d/sub/", "d/sub/a", "x/"],
        [
            Step(
                ["mv d/sub ../out", "mv ../out/a x/b", "rmtree d"],
                [
                    "moved_from d sub #1 /",  # out of the tree: never paired
                    "moved_from d/sub a #2",  # held behind it, and its pair with it
                    "moved_to x b #2",
                    "deleted . d /",
                ],
                ["deleted d/sub/", "deleted d/", "created x/b"],
            )
        ],
        rule="subtree-with-moves",
    ),
    Case(
        "a directory renamed over one whose removal replays a rename to its old name: moved first",
        ["t/", "t/x/"],
        [
            Step(
                ["mv t/x ../out", "mkdir t/x", "mkdir s", "rmtree s", "mv t/x s"],
                [
                    "moved_from t x #1 /",  # out of the tree: never paired
                    "created t x /",  # held behind that move, and so is this rename
                    "created . s /",  # read ahead: s is the new x already
                    "deleted . s /",
                    "moved_from t x #2 /",
                    "moved_to . s #2 /",
                ],
                ["created s/"],
                expire=False,
            ),
            Step(
                # Removing t (replaced) replays the rename to s, which finds the new s:
                # it is reported only after the move that freed the name.
                ["mv s t", "mkdir s"],
                ["moved_from . s #3 /", "moved_to . t #3 /", "created . s /"],
                ["deleted t/x/", "moved s -> t/", "created s/"],
            ),
        ],
        rule="subtree-with-moves",
    ),
    Case(
        "a directory that says it is deleted is, even where its cached path is stale",
        ["a/", "a/d/", "a/d/f"],
        [
            Step(
                ["mv a b", "rmtree b/d"],
                ["deleted a/d f", "deleted a/d", "deleted a d /"],
                ["deleted a/d/"],
                expire=False,  # the rename is still queued
            ),
            Step([], ["moved_from . a #1 /", "moved_to . b #1 /"], ["moved a -> b/"]),
        ],
        rule="self-deleted",
    ),
    Case(
        "a stale path that nothing queued explains is settled by the disk once drained",
        ["a/", "a/f"],
        [
            Step(
                ["mv a b", "write b/g"],
                # The rename's observations never come: once the queue is empty, a's
                # parent is diffed, which finds a at b by identity.
                ["created a g"],
                ["moved a -> b/", "created b/g"],
            ),
        ],
        rule="stale-path",
    ),
    Case(
        "a stale path met while a move settles unpaired is looked at, though no batch follows",
        ["a/", "a/x"],
        [
            Step(
                ["mv a/x ../out", "write a/x", "mv a b"],
                # The rename's observations never come. The creation waits behind the
                # move out until it settles, and then finds a's path stale.
                ["moved_from a x #1", "created a x"],
                ["deleted a/x", "moved a -> b/", "created b/x"],
            ),
        ],
        rule="stale-path",
    ),
    Case(
        "a new directory whose watch is a stale cached one's waits for the disk, not for ever",
        ["a/", "a/f"],
        [
            Step(
                ["mv a b"],
                # Its moved_from never comes: b's watch is a's, and a's path is stale.
                ["moved_to . b #1 /"],
                ["created b/", "deleted a/", "created b/f"],
            ),
        ],
        rule="watch-owner",
    ),
    Case(
        "a listed directory whose watch is a stale cached one's waits for the disk, not for ever",
        ["a/", "a/f"],
        [
            Step(
                ["mkdir p", "mv a p/x"],
                # a's moved_from never comes; p's listing finds x, whose watch is a's.
                ["created . p /"],
                ["created p/", "created p/x/", "deleted a/", "created p/x/f"],
            ),
        ],
        rule="own-watch",
    ),
    Case(
        "a rename paired with a newer entry of the name: the disk decides its destination",
        [],
        [
            Step(
                ["mkdir p"],
                ["created . p /"],
                ["created p/", "created p/a/", "moved p/a -> c/", "deleted c/", "created c/"],
                races=[
                    # p is watched: one directory a goes to c, another takes its
                    # name; the first observation is read after both, so the cache
                    # gets the newer one, and the rename moves it
                    (
                        ["mkdir p/a", "mv p/a c", "mkdir p/a"],
                        ["created p a /", "moved_from p a #1 /", "moved_to . c #1 /",
                         "created p a /"],
                    ),
                    # the newer one is watched: it is deleted, and says so itself
                    (["rmtree p/a"], ["deleted p/a", "deleted p a /"]),
                ],
            )
        ],
        rule="kernel-pairing",
    ),
    Case(
        "a diff puts back what moved out of a directory it follows to its new name",
        ["a/", "a/p/", "a/p/s/", "a/p/t/"],
        [
            Step(
                ["mv a/p/s ../s", "write a/p/s", "mv a/p/t ../t", "mv a/p a/q"],
                [
                    "moved_from a/p s #1 /",  # out of the tree: never paired
                    "created a/p s",  # held behind that move
                    "moved_from a/p t #2 /",
                    # a is diffed before its rename is read: it finds p at q by
                    # identity and lists it there, with a file where s was
                    "dirty a",
                    "moved_from a p #3 /",
                    "moved_to a q #3 /",
                ],
                ["moved a/p -> a/q/", "deleted a/q/s/", "created a/q/s", "deleted a/q/t/"],
            )
        ],
        rule="pending-move",
    ),
    Case(
        "an entry replaced while a removal replays a rename to its name is created once",
        ["d/", "d/s/"],
        [
            Step(
                REPLACED_OPS,
                [
                    *REPLACED_OBS,
                    # d, now t, is deleted; the file written there since is found
                    # when it is removed, and again by the rename its removal replays
                    "deleted . t /",
                    "created . t",
                ],
                ["moved d -> t/", "deleted t/s/", "deleted t/", "created t"],
            )
        ],
        rule="subtree-with-moves",
    ),
    Case(
        "an entry a diff replaces while a removal replays a rename to its name is created once",
        ["d/", "d/s/"],
        [
            Step(
                REPLACED_OPS,
                [*REPLACED_OBS, "dirty ."],  # the diff finds a file where d, now t, was
                ["moved d -> t/", "deleted t/s/", "deleted t/", "created t"],
            )
        ],
        rule="subtree-with-moves",
    ),
    Case(
        "a new directory's listing stops where a move in it replays the directory's removal",
        ["a"],
        [
            Step(
                [
                    "mkdir ../w", *(f"write ../w/y{i}" for i in range(10)),
                    "mv a ../w/x", "mkdir a", "mv a e", "write a", "mv a d", "rm d",
                    "mv ../w d",
                ],
                [
                    "moved_from . a #1",  # to w, renamed into the tree as d later
                    # held behind that move: a directory made at a and renamed to e,
                    # and a file made at a and renamed to d
                    "created . a /",
                    "moved_from . a #2 /",
                    "moved_to . e #2 /",
                    "created . a",
                    "moved_from . a #3",
                    "moved_to . d #3",
                    "deleted . d",
                    "moved_to . d #4 /",  # w, from outside the tree
                ],
                # Listed, d holds x (a, its move completed) and the y files. That
                # move's replay watches e, and d is deleted meanwhile: the rename to d
                # replayed after it finds d gone. No y may be reported after that,
                # whichever order the listing has.
                None,
                races=[([], []), (["rmtree d"], ["deleted . d /"])],
            )
        ],
        rule="new-dir-listing",
    ),
    Case(
        "a lost queue is repaired by a rescan: moves by identity, catch-up modified, notice",
        ["a/", "a/f", "c", "d"],
        [
            Step(
                ["mv a b", "append d", "write e", "rm c"],
                ["lost"],
                ["modified d", "moved a -> b/", "created e", "deleted c", "rescan ."],
            )
        ],
        rule="rescan",
    ),
    Case(
        "a rescan untangles a swap",
        ["a/", "a/fa", "b/", "b/fb"],
        [Step(["mv a t", "mv b a", "mv t b"], ["lost"], None)],  # type: ignore[arg-type],
        rule="rescan",
    ),
    Case(
        "directories dirty together pair a move between them",
        ["d1/", "d1/x", "d2/"],
        [Step(["mv d1/x d2/x"], ["dirty d1", "dirty d2"], ["moved d1/x -> d2/x"])],
        rule="rescan",
    ),
    Case(
        "a renamed directory dirty together with its parent is one move",
        ["a/", "a/f"],
        [Step(["mv a b"], ["dirty .", "dirty a"], ["moved a -> b/"])],
        rule="rescan",
    ),
    Case(
        "a directory replaced by a file is deleted then created",
        ["p/", "p/q"],
        [Step(["rmtree p", "write p"], ["created . p"], ["deleted p/", "created p"])],
        rule="verify",
    ),
    Case(
        "a file replaced by another file is modified (an atomic save)",
        ["f"],
        [Step(["write tmp", "mv tmp f"], ["moved_to . f #5"], ["modified f (replaced)"])],
        rule="verify",
    ),
    Case(
        "observations through a renamed parent wait until the rename is read",
        ["a/"],
        [
            Step(
                ["write a/new", "mv a b"],
                ["created a new", "moved_from . a #1 /", "moved_to . b #1 /"],
                ["moved a -> b/", "created b/new"],
            )
        ],
        rule="stale-path",
    ),
    Case(
        "a watch gone while its directory is still there leads to a rescan",
        ["m/", "m/f"],
        [Step(["write m/g"], ["gone m"], ["created m/g", "rescan m"])],
        rule="watch-ends",
    ),
    Case(
        "deleting the root ends it",
        ["f"],
        [Step(["rmtree ."], ["gone ."], ["deleted ./"])],
        rule="watch-ends",
    ),
    Case(
        "a directory above the root renamed away ends it",
        ["d/", "d/sub/", "d/sub/f"],
        [Step(["mv d e"], ["fate moved_from d"], ["deleted d/sub/"])],
        root="d/sub",
        rule="path-fate",
    ),
    Case(
        "a rename above the root undone before it is read ends nothing",
        ["d/", "d/sub/", "d/sub/f"],
        [
            Step(["mv d e", "mv e d"], ["fate moved_from d"], []),
            # its path is watched again: a later rename still ends it
            Step(["mv d e"], ["fate moved_from d"], ["deleted d/sub/"]),
        ],
        root="d/sub",
        rule="path-fate",
    ),
    Case(
        "a file root ends when its directory says it was renamed away",
        ["d/", "d/f"],
        [Step(["mv d e"], ["moved_from d"], ["deleted d/f"])],
        root="d/f",
        rule="path-fate",
    ),
    Case(
        "ignored names are never cached nor reported",
        [],
        [
            Step(
                ["mkdir .git", "write .git/x", "write keep"],
                ["lost"],
                ["created keep", "rescan ."],
            )
        ],
        ignore=[".git"],
        rule="ignore",
    ),
    Case(
        "a pattern with / matches the path below the root, not the name elsewhere",
        ["src/", "build/"],
        [
            Step(
                ["mkdir src/build", "write src/build/x", "write build/y"],
                ["lost"],
                ["created build/y", "rescan ."],
            )
        ],
        ignore=["src/build"],
        rule="ignore",
    ),
    Case(
        "names that are not UTF-8 are carried as surrogate escapes",
        [],
        [Step(["write caf\udce9"], ["created . caf\udce9"], ["created caf\udce9"])],
        rule="names",
    ),
    # ----------------------------------------------------- renames the backend paired
    Case(
        "a paired rename of a file is one move",
        ["f"],
        [Step(["mv f g"], ["renamed . f . g"], ["moved f -> g"])],
        rule="paired-renames",
    ),
    Case(
        "a paired rename of a directory carries its subtree",
        ["d/", "d/sub/", "d/sub/f"],
        [
            Step(["mv d e"], ["renamed . d . e /"], ["moved d -> e/"]),
            Step(["append e/sub/f"], ["modified e/sub f"], ["modified e/sub/f"]),
        ],
        rule="paired-renames",
    ),
    Case(
        "a paired rename across directories is one move",
        ["a/", "a/f", "b/"],
        [Step(["mv a/f b/g"], ["renamed a f b g"], ["moved a/f -> b/g"])],
        rule="paired-renames",
    ),
    Case(
        "a paired rename onto an existing file replaces it",
        ["f", "g"],
        [Step(["mv f g"], ["renamed . f . g"], ["moved f -> g"])],
        rule="paired-renames",
    ),
    Case(
        "a paired rename onto an empty directory replaces it",
        ["d/", "d/x", "e/"],
        [Step(["mv d e"], ["renamed . d . e /"], ["moved d -> e/"])],
        rule="paired-renames",
    ),
    Case(
        "a paired rename out of the tree is a deletion",
        ["d/", "d/f"],
        [Step(["mv d ../out"], ["renamed . d - out /"], ["deleted d/"])],
        rule="paired-renames",
    ),
    Case(
        "a paired rename into the tree is a creation with its contents",
        [],
        [
            Step(
                ["mkdir ../in", "write ../in/f", "mv ../in d"],
                ["renamed - in . d /"],
                ["created d/", "created d/f"],
            )
        ],
        rule="paired-renames",
    ),
    Case(
        "a paired rename from an ignored name is a creation",
        [],
        [Step(["write f.tmp", "mv f.tmp f"], ["renamed . f.tmp . f"], ["created f"])],
        ignore=["*.tmp"],
        rule="paired-renames",
    ),
    Case(
        "a paired rename to an ignored name is a deletion",
        ["f"],
        [Step(["mv f f.tmp"], ["renamed . f . f.tmp"], ["deleted f"])],
        ignore=["*.tmp"],
        rule="paired-renames",
    ),
    Case(
        "a paired rename into a new directory as it is listed is one move",
        ["src"],
        [
            Step(
                ["mkdir d"],
                ["created . d /"],
                ["created d/", "moved src -> d/x"],
                races=[(["mv src d/x"], ["renamed . src d x"])],
            )
        ],
        rule="paired-renames",
    ),
    Case(
        "a paired rename read after an overflow's rescan changes nothing more",
        ["d/", "d/f"],
        [
            Step(
                ["mv d/f g", "mv d e"],
                ["lost", "renamed d f . g", "renamed . d . e /"],
                ["moved d/f -> g", "moved d -> e/", "rescan ."],
            )
        ],
        rule="paired-renames",
    ),
    Case(
        "paired renames read after the disk moved on are reported as the kernel paired them",
        ["f", "d/"],
        [
            Step(
                ["mv f g", "mv g d/h"],
                ["renamed . f . g", "renamed . g d h"],
                ["moved f -> g", "moved g -> d/h"],
            )
        ],
        rule="paired-renames",
    ),
    # ------------------------------ a backend that folds later changes into earlier events
    Case(
        "a name taken again after its rename, told only by an earlier event, is looked at",
        [],
        [
            Step(
                # The second write's creation is folded into the first one's event.
                ["write f", "mv f g", "write f"],
                ["created . f", "renamed . f . g"],
                ["created f", "moved f -> g", "created f", "modified g (replaced)"],
            )
        ],
        merges=True,
        rule="merged-events",
    ),
    Case(
        "a write after a rename onto a name, folded into an earlier event of it, is reported",
        ["f", "g"],
        [
            Step(
                ["append g", "mv f g", "append g"],
                ["modified . g", "renamed . f . g"],
                ["modified g", "moved f -> g", "modified g"],
            )
        ],
        merges=True,
        rule="merged-events",
    ),
    Case(
        "a directory made again after its rename, told only by an earlier event, is looked at",
        [],
        [
            Step(
                ["mkdir d", "mv d e", "mkdir d", "write d/f"],
                ["created . d /", "renamed . d . e /"],
                # The first look found the second directory, the rename then took
                # it to e: the look again at e corrects that.
                ["created d/", "moved d -> e/", "deleted e/", "created e/", "created d/",
                 "created d/f"],
            )
        ],
        merges=True,
        rule="merged-events",
    ),
    Case(
        "a single-file root sees its atomic save, not its siblings",
        ["conf", "other"],
        [
            Step(
                ["write tmp", "mv tmp conf", "append other"],
                ["created . tmp", "moved_from . tmp #1", "moved_to . conf #1", "modified . other"],
                ["modified conf (replaced)"],
            ),
            Step(["rm conf"], ["deleted . conf"], ["deleted conf"]),
            Step(["write conf"], ["created . conf"], ["created conf"]),
        ],
        root="conf",
        rule="file-root",
    ),
    Case(
        "an entry made at the old name of a rename held behind a move waits for the rename",
        ["n8/", "n32/", "n32/n21/"],
        [
            # A removal read last in its buffer may be half a move (ReadDirectoryChangesW).
            Step(["mkdir n19", "rmtree n8"], ["created . n19 /", "moved_from . n8 #36 /"],
                 ["created n19/"], expire=False),
            Step(
                ["mkdir n8", "mv n19 n8/n11", "mv n8 n32/n21/n26", "mkdir n19"],
                # Both renames name n8, so they wait behind its move; the new n19 must
                # too, or the rename replayed later carries it away.
                ["created . n8 /", "renamed . n19 . n8/n11 /",
                 "renamed . n8 . n32/n21/n26 /", "created . n19 /"],
                None,
            ),
        ],
        recursive=True,
        rule="pending-move",
    ),
    Case(
        "a paired rename into a directory the cache lacks is a deletion and that directory",
        ["f", "a/"],
        # a/b's creation was never told (lost, or folded into the rename).
        [Step(["mkdir a/b", "mv f a/b/g"], ["renamed . f . a/b/g"],
              ["deleted f", "created a/b/", "created a/b/g"])],
        recursive=True,
        rule="paired-renames",
    ),
    Case(
        "a paired rename out of a directory the cache has as a file is looked at, not moved",
        ["a/", "a/b"],
        [Step(["rm a/b", "mkdir a/b", "write a/b/g", "mv a/b/g h"], ["renamed . a/b/g . h"],
              ["deleted a/b", "created a/b/", "created h"])],
        recursive=True,
        rule="paired-renames",
    ),
]


class Harness:
    def __init__(self, base: str, case: Case) -> None:
        self.top = os.path.join(base, "root")
        os.mkdir(self.top)
        for entry in case.tree:
            path = os.path.join(self.top, entry.rstrip("/"))
            if entry.endswith("/"):
                os.mkdir(path)
            else:
                with open(path, "w") as f:
                    f.write("0")
                # Pre-existing: written well before watching began. (A file written
                # within a timestamp tick of the first scan may be reported modified
                # by a later rescan, which errs on the side of reporting.)
                os.utime(path, (0, 1_000_000))
        self.root = os.path.join(self.top, case.root) if case.root else self.top
        kind = RecursiveRacingBackend if case.recursive else RacingBackend
        self.backend = MergingRacingBackend() if case.merges else kind()
        self.engine = Engine(ignore=Ignore(case.ignore), pair_wait=0.0)
        self.engine.add_root(self.root, self.backend)
        self.mirror = Mirror.of(self.root)
        if case.root and not os.path.isdir(self.root):
            self.mirror = Mirror([self.root], {self.root: False})

    def path(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.top, rel))

    def op(self, text: str) -> None:
        verb, *args = text.split(" ")
        paths = [self.path(a) for a in args]
        if verb == "write":
            with open(paths[0], "w") as f:
                f.write("new")
        elif verb == "append":
            with open(paths[0], "a") as f:
                f.write("more")
        elif verb == "mkdir":
            os.mkdir(paths[0])
        elif verb == "rm":
            os.unlink(paths[0])
        elif verb == "rmtree":
            shutil.rmtree(paths[0])
        elif verb == "mv":
            os.rename(paths[0], paths[1])
        else:
            raise ValueError(text)

    def observation(self, text: str) -> Observation:
        words = text.split(" ")
        verb = words[0]
        if verb == "lost":
            return SubtreeLost(None)
        if verb == "renamed":  # renamed OLD_DIR OLD_NAME NEW_DIR NEW_NAME [/]; "-": unwatched
            old, new = (self._handle_or_unwatched(words[i]) for i in (1, 3))
            return Renamed(old, words[2], new, words[4], "/" in words[5:])
        if verb == "fate":  # fate ACTION PATH: a watch_self of an entry above the root
            fate = self.backend.fate_of(self.path(words[2]))
            assert fate is not None, f"not watched for its fate: {words[2]}"
            return EntryChange(fate, "", Action(words[1]), True)
        handle = self.backend.handle_of(self.path(words[1]))
        assert handle is not None, f"not watched: {words[1]}"
        if verb == "dirty":
            return DirDirty(handle)
        if verb == "gone":
            return Gone(handle)
        cookie = next((int(w[1:]) for w in words if w.startswith("#")), None)
        name = words[2] if len(words) > 2 else ""  # none: the watched directory itself
        return EntryChange(handle, name, Action(verb), "/" in words[3:], cookie)

    def _handle_or_unwatched(self, word: str) -> Hashable:
        if word == "-":
            return UNWATCHED  # a directory outside every watched tree
        handle = self.backend.handle_of(self.path(word))
        assert handle is not None, f"not watched: {word}"
        return handle

    def describe(self, events: list) -> list[str]:  # type: ignore[type-arg]
        def rel(p: str) -> str:
            return os.path.relpath(p, self.top)

        out = []
        for e in events:
            tail = "/" if e.is_dir else ""
            if e.src_path is not None:
                out.append(f"{e.kind.value} {rel(e.src_path)} -> {rel(e.path)}{tail}")
            elif e.kind.value == "rescan":
                out.append(f"rescan {rel(e.path)}")
            else:
                replaced = " (replaced)" if e.replaced else ""
                out.append(f"{e.kind.value} {rel(e.path)}{tail}{replaced}")
        return out


class RacingBackend(ScriptedBackend):
    """Runs the next of ``races`` right after each directory is watched."""

    def __init__(self) -> None:
        super().__init__()
        self.races: list[Callable[[], None]] = []

    def watch(self, path: str, *, recursive: bool) -> Hashable:
        handle = super().watch(path, recursive=recursive)
        if self.races:
            self.races.pop(0)()
        return handle


class RecursiveRacingBackend(RacingBackend):
    capabilities = Capabilities(recursive=True)


class MergingRacingBackend(RacingBackend):
    capabilities = Capabilities(merges_later=True)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rule}: {c.name}" for c in CASES])
def test_engine_rule(case: Case, tmp_path: object) -> None:
    h = Harness(str(tmp_path), case)
    try:
        for step in case.steps:
            observations = [h.observation(o) for o in step.obs]  # handles as before the ops
            h.backend.push(*[h.observation(o) for o in step.queued])
            for op in step.ops:
                h.op(op)
            for race_ops, race_obs in step.races:

                def race(ops: list[str] = race_ops, obs: list[str] = race_obs) -> None:
                    queued = [h.observation(o) for o in obs]
                    for op in ops:
                        h.op(op)
                    h.backend.push(*queued)

                h.backend.races.append(race)
            feed(h.engine, h.backend, observations)
            assert not h.backend.races, "a race never ran"
            if step.expire:
                # As the watcher does: expire once drained, then at each deadline left.
                for _ in range(EXPIRE_ROUNDS):
                    h.engine.expire(float("inf"))
                    if h.engine.next_deadline() is None:
                        break
                else:
                    raise AssertionError("the engine never goes idle: a deadline is always left")
            events = h.engine.take()
            h.mirror.apply(events)
            if step.events is not None:
                assert h.describe(events) == step.events, h.describe(events)
        if os.path.exists(h.root):
            ignored = Ignore(case.ignore)

            def hidden(path: str) -> bool:  # it, or a directory above it, is ignored
                parts = os.path.relpath(path, h.root).split(os.sep)
                return any(
                    ignored.match(name, lambda n=n: "/".join(parts[: n + 1]))
                    for n, name in enumerate(parts)
                )

            disk = {p: d for p, d in snapshot(h.root).items() if p == h.root or not hidden(p)}
            assert h.mirror.entries == disk, h.mirror.diff(disk)
            # The cache agrees with the disk: a rescan finds no structural change. (It may
            # repeat ``modified`` for a file written within a timestamp tick of a reported
            # write: rescans err on the side of reporting.)
            feed(h.engine, h.backend, [SubtreeLost(None)])
            kinds = [e.kind.value for e in h.engine.take()]
            assert [k for k in kinds if k not in ("modified", "attrib")] == ["rescan"]
        else:
            assert h.engine.watched == []
    finally:
        h.backend.close()


def test_ignored_directories_are_never_watched(tmp_path: object) -> None:
    root = os.path.join(str(tmp_path), "root")
    for d in ("", ".git", ".git/objects", "src", "src/.git"):
        os.mkdir(os.path.join(root, d))
    backend = ScriptedBackend()
    try:
        Engine(ignore=Ignore([".git"])).add_root(root, backend)
        assert backend.watched() == 2  # root and src
    finally:
        backend.close()


ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def _documented_rules() -> dict[str, list[str]]:
    """Rule id -> the cases its section lists, from the engine's rules in the docs."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## The engine's rules", 1)[1].split("\n## ", 1)[0]
    rules: dict[str, list[str]] = {}
    for block in section.split("\n### ")[1:]:
        rule = block.split("\n", 1)[0].strip().strip("`")
        listed = block.split("Cases:\n", 1)[1] if "Cases:\n" in block else ""
        rules[rule] = [line[2:].strip() for line in listed.splitlines() if line.startswith("- ")]
    return rules


def test_every_rule_names_its_cases_and_every_case_its_rule() -> None:
    documented = _documented_rules()
    assert documented, "no rules found in docs/architecture.md"
    by_rule: dict[str, list[str]] = {}
    for case in CASES:
        assert case.rule in documented, f"case {case.name!r} names no documented rule"
        by_rule.setdefault(case.rule, []).append(case.name)
    for rule, cases in documented.items():
        assert cases, f"rule {rule!r} lists no case"
        assert sorted(cases) == sorted(by_rule.get(rule, [])), f"rule {rule!r}"

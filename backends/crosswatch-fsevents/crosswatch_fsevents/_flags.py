"""FSEvents' constants (the values of ``FSEvents.h`` in CoreServices) and the flag
sets the decoder and the stream use. Pure values: importable on every OS."""

from __future__ import annotations

__all__ = [
    "kFSEventStreamCreateFlagNone",
    "kFSEventStreamCreateFlagUseCFTypes",
    "kFSEventStreamCreateFlagNoDefer",
    "kFSEventStreamCreateFlagWatchRoot",
    "kFSEventStreamCreateFlagIgnoreSelf",
    "kFSEventStreamCreateFlagFileEvents",
    "kFSEventStreamCreateFlagMarkSelf",
    "kFSEventStreamCreateFlagUseExtendedData",
    "kFSEventStreamEventFlagNone",
    "kFSEventStreamEventFlagMustScanSubDirs",
    "kFSEventStreamEventFlagUserDropped",
    "kFSEventStreamEventFlagKernelDropped",
    "kFSEventStreamEventFlagEventIdsWrapped",
    "kFSEventStreamEventFlagHistoryDone",
    "kFSEventStreamEventFlagRootChanged",
    "kFSEventStreamEventFlagMount",
    "kFSEventStreamEventFlagUnmount",
    "kFSEventStreamEventFlagItemCreated",
    "kFSEventStreamEventFlagItemRemoved",
    "kFSEventStreamEventFlagItemInodeMetaMod",
    "kFSEventStreamEventFlagItemRenamed",
    "kFSEventStreamEventFlagItemModified",
    "kFSEventStreamEventFlagItemFinderInfoMod",
    "kFSEventStreamEventFlagItemChangeOwner",
    "kFSEventStreamEventFlagItemXattrMod",
    "kFSEventStreamEventFlagItemIsFile",
    "kFSEventStreamEventFlagItemIsDir",
    "kFSEventStreamEventFlagItemIsSymlink",
    "kFSEventStreamEventFlagOwnEvent",
    "kFSEventStreamEventFlagItemIsHardlink",
    "kFSEventStreamEventFlagItemIsLastHardlink",
    "kFSEventStreamEventFlagItemCloned",
    "kFSEventStreamEventIdSinceNow",
    "kFSEventStreamEventExtendedDataPathKey",
    "kFSEventStreamEventExtendedFileIDKey",
    "STREAM_FLAGS",
    "LOST",
    "DROPPED",
    "STRUCTURE",
    "METADATA",
    "ITEM",
    "KIND",
    "SPECIAL",
    "KNOWN",
]

# ---------------------------------------------------------------- FSEventStreamCreateFlags

kFSEventStreamCreateFlagNone = 0x00000000
kFSEventStreamCreateFlagUseCFTypes = 0x00000001
kFSEventStreamCreateFlagNoDefer = 0x00000002
kFSEventStreamCreateFlagWatchRoot = 0x00000004
kFSEventStreamCreateFlagIgnoreSelf = 0x00000008
kFSEventStreamCreateFlagFileEvents = 0x00000010
kFSEventStreamCreateFlagMarkSelf = 0x00000020
kFSEventStreamCreateFlagUseExtendedData = 0x00000040

# ---------------------------------------------------------------- FSEventStreamEventFlags

kFSEventStreamEventFlagNone = 0x00000000
kFSEventStreamEventFlagMustScanSubDirs = 0x00000001
kFSEventStreamEventFlagUserDropped = 0x00000002
kFSEventStreamEventFlagKernelDropped = 0x00000004
kFSEventStreamEventFlagEventIdsWrapped = 0x00000008
kFSEventStreamEventFlagHistoryDone = 0x00000010
kFSEventStreamEventFlagRootChanged = 0x00000020
kFSEventStreamEventFlagMount = 0x00000040
kFSEventStreamEventFlagUnmount = 0x00000080
kFSEventStreamEventFlagItemCreated = 0x00000100
kFSEventStreamEventFlagItemRemoved = 0x00000200
kFSEventStreamEventFlagItemInodeMetaMod = 0x00000400
kFSEventStreamEventFlagItemRenamed = 0x00000800
kFSEventStreamEventFlagItemModified = 0x00001000
kFSEventStreamEventFlagItemFinderInfoMod = 0x00002000
kFSEventStreamEventFlagItemChangeOwner = 0x00004000
kFSEventStreamEventFlagItemXattrMod = 0x00008000
kFSEventStreamEventFlagItemIsFile = 0x00010000
kFSEventStreamEventFlagItemIsDir = 0x00020000
kFSEventStreamEventFlagItemIsSymlink = 0x00040000
kFSEventStreamEventFlagOwnEvent = 0x00080000
kFSEventStreamEventFlagItemIsHardlink = 0x00100000
kFSEventStreamEventFlagItemIsLastHardlink = 0x00200000
kFSEventStreamEventFlagItemCloned = 0x00400000

#: ``sinceWhen`` for a stream that reports only what happens from now on.
kFSEventStreamEventIdSinceNow = 0xFFFFFFFFFFFFFFFF

#: The keys of one event's dictionary with ``kFSEventStreamCreateFlagUseExtendedData``.
kFSEventStreamEventExtendedDataPathKey = "path"
kFSEventStreamEventExtendedFileIDKey = "fileID"

#: What the backend's stream asks for: one event per item, with its file id (so
#: renames pair), the roots' own paths watched, and events delivered as they come
#: after a quiet spell (the latency bounds a burst, not a single change).
STREAM_FLAGS = (
    kFSEventStreamCreateFlagUseCFTypes
    | kFSEventStreamCreateFlagFileEvents
    | kFSEventStreamCreateFlagUseExtendedData
    | kFSEventStreamCreateFlagWatchRoot
    | kFSEventStreamCreateFlagNoDefer
)

LOST = (
    kFSEventStreamEventFlagMustScanSubDirs
    | kFSEventStreamEventFlagUserDropped
    | kFSEventStreamEventFlagKernelDropped
)
DROPPED = kFSEventStreamEventFlagUserDropped | kFSEventStreamEventFlagKernelDropped
#: The entry at the path may be another one now, or none.
STRUCTURE = (
    kFSEventStreamEventFlagItemCreated
    | kFSEventStreamEventFlagItemRemoved
    | kFSEventStreamEventFlagItemRenamed
    | kFSEventStreamEventFlagItemCloned
)
METADATA = (
    kFSEventStreamEventFlagItemInodeMetaMod
    | kFSEventStreamEventFlagItemFinderInfoMod
    | kFSEventStreamEventFlagItemChangeOwner
    | kFSEventStreamEventFlagItemXattrMod
)
ITEM = STRUCTURE | METADATA | kFSEventStreamEventFlagItemModified
KIND = (
    kFSEventStreamEventFlagItemIsFile
    | kFSEventStreamEventFlagItemIsDir
    | kFSEventStreamEventFlagItemIsSymlink
    | kFSEventStreamEventFlagItemIsHardlink
    | kFSEventStreamEventFlagItemIsLastHardlink
)
SPECIAL = (
    LOST
    | kFSEventStreamEventFlagEventIdsWrapped
    | kFSEventStreamEventFlagHistoryDone
    | kFSEventStreamEventFlagRootChanged
    | kFSEventStreamEventFlagMount
    | kFSEventStreamEventFlagUnmount
)
#: Every bit documented; others are kept in ``Decoder.unknown_bits``.
KNOWN = SPECIAL | ITEM | KIND | kFSEventStreamEventFlagOwnEvent

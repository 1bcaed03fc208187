"""Names as a folding file system stores them.

Where one entry answers to names that differ in case or Unicode form (NTFS, APFS,
FAT, ext4 casefold), a backend may name an entry otherwise than its directory's
listing does: ``A`` for ``a``, or the old spelling after a rename of case only.
The cache holds the listing's spelling, so such a name is looked up in a listing
before it is taken for a new entry. Listings are kept for one read of the
backend's queue, so a burst of new entries costs one listing per directory.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from .._tree import Node

#: Directories whose listing is kept at once; past this, the oldest is dropped.
KEPT = 64
#: What :meth:`Spellings.stored` says of a name its directory's listing lacks.
GONE = "\0"  # the one character no name holds


def folded(name: str) -> str:
    """The form in which two spellings of one name compare equal (caseless,
    canonically decomposed: NFD(casefold(NFD(name))))."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class Spellings:
    """The stored spelling of a name, from the listing of its directory."""

    def __init__(self, names: Callable[[Node, str], list[str] | None]) -> None:
        self._names = names  # the scanner's listing: counted as the engine's own read
        self._listings: dict[int, tuple[Node, dict[str, str]]] = {}

    def stored(self, parent: Node, base: str, name: str, *, fresh: bool = False) -> str | None:
        """How the entry that ``name`` finds in directory ``base`` is spelled:
        :data:`GONE` if the listing has no such entry, None if ``base`` cannot be
        listed as ``parent`` (its path leads elsewhere, or nowhere).

        A listing kept from earlier in the read holds every entry the read's
        observations made, so a name it lacks is gone, or new since: ``fresh``
        lists again on a miss, for a caller that has just found the entry there.
        """
        key = folded(name)
        kept = self._listings.get(id(parent))
        if kept is not None and kept[0] is parent:
            found = kept[1].get(key)
            if found is not None or not fresh:
                return GONE if found is None else found
        listed = self._names(parent, base)
        if listed is None:
            return None
        names = {folded(n): n for n in listed}
        if len(self._listings) >= KEPT:
            del self._listings[next(iter(self._listings))]
        self._listings[id(parent)] = (parent, names)
        return names.get(key, GONE)

    @staticmethod
    def cached(parent: Node, name: str) -> str | None:
        """The name under which ``parent``'s cache holds the entry ``name`` folds
        to, if any (a scan of the cached names: only for names the cache lacks)."""
        key = folded(name)
        return next((n for n in parent.children if folded(n) == key), None)

    def forget(self) -> None:
        """Drop the listings kept: the backend's queue is read again."""
        self._listings.clear()

"""A follower in a process of its own that keeps a strict mirror, for remote tests.

``python -m crosswatch.testing._follower URL STREAM ROOT STATE [DURABLE]``
follows root ROOT and, after each batch, writes to STATE (atomically) the
mirror's entries, the batch's position and the number of resyncs. Started
again with the same STATE and DURABLE, it goes on from there: a batch it holds
already (one the server hands over again, since the last was not acknowledged)
is skipped. It exits 2 if a batch breaks a guarantee of the stream (an entry
created twice, a move of an unknown entry …).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from .._events import Change
from .._follow import Follower
from ._mirror import GuaranteeError, Mirror


def load(state: str) -> dict[str, Any] | None:
    try:
        with open(state) as f:
            loaded: dict[str, Any] = json.load(f)
            return loaded
    except (FileNotFoundError, ValueError):
        return None


def _save(state: str, mirror: Mirror, position: tuple[str, int] | None, resyncs: int) -> None:
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"roots": mirror.roots, "entries": mirror.entries, "position": position,
                   "resyncs": resyncs}, f)
    os.replace(tmp, state)


async def run(url: str, stream: str, root: str, state: str, durable: str | None) -> None:
    saved = load(state)
    mirror = Mirror([], {}) if saved is None else Mirror(saved["roots"], saved["entries"])
    held = None if saved is None or saved["position"] is None else tuple(saved["position"])
    resyncs = 0 if saved is None else int(saved["resyncs"])
    async with Follower(url, stream, root=root, durable=durable, wait=0.2) as follower:
        async for batch in follower:
            position = follower.position
            if batch[0].kind is Change.RESYNC:
                resyncs += 1
                mirror.roots = [batch[0].path]
            elif (held is not None and position is not None and position[0] == held[0]
                    and position[1] <= held[1]):
                continue  # applied before this process started
            mirror.apply(batch)
            held = position
            _save(state, mirror, position, resyncs)


if __name__ == "__main__":
    # It is stopped by SIGINT, even where its parent left SIGINT ignored (a shell
    # without job control does that to a background job, and children inherit it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    url, stream, root, state = sys.argv[1:5]
    try:
        asyncio.run(run(url, stream, root, state, sys.argv[5] if len(sys.argv) > 5 else None))
    except GuaranteeError as exc:
        print(f"guarantee broken: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass

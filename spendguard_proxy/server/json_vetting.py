"""Keep a hostile JSON body from stalling the event loop for every other caller.

Parsing costs time per value, not per byte: 30 MiB of text parse in ~0.1 s, 30 MiB of ``{},``
(10 million objects) in ~0.8 s plus every walk over the result after it — and ``json.loads``
holds the GIL, so a thread would not help. A body may hold at most ``CAP_MAX_JSON_VALUES``
values (object members and array elements). Counting them exactly needs a parse, so:

* ``,``, ``{`` and ``[`` bytes bound the number of values from above (a byte count at memory
  speed); a body under the limit by that bound — nearly every real one — is parsed on the loop
  as before;
* any other body is counted in a separate process first (one per serving process, started on
  first use), which stops at the limit instead of building the whole structure; only a body
  within the limit is then parsed on the loop, in time bounded by its size.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_pool: ProcessPoolExecutor | None = None


class _TooMany(Exception):
    pass


def count_values(raw: bytes, limit: int) -> tuple[str, Any]:
    """("ok", n) | ("too_many", None) | ("invalid", message). Runs in the vetting process;
    objects are never built (the hook returns None), so memory stays small too."""
    seen = {"values": 0, "numbers": 0}  # numbers: a lower bound, to stop early

    def tally(kind: str, n: int) -> None:
        seen[kind] += n
        if seen[kind] > limit:
            raise _TooMany

    def elements(value: Any) -> None:
        """Array elements, counted once: when the object holding the array closes (objects
        inside it are None by then), or at the root."""
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                tally("values", len(node))
                stack.extend(item for item in node if isinstance(item, list))

    def members(pairs: list) -> None:
        tally("values", len(pairs))
        for _, value in pairs:
            elements(value)

    def number(text: str) -> None:
        tally("numbers", 1)

    try:
        root = json.loads(raw, object_pairs_hook=members, parse_int=number,
                          parse_float=number, parse_constant=number)
        elements(root)
    except _TooMany:
        return ("too_many", None)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return ("invalid", str(exc)[:200])
    total = seen["values"]
    return ("ok", total) if total <= limit else ("too_many", None)


def might_exceed(raw: bytes, limit: int) -> bool:
    return raw.count(b",") + raw.count(b"{") + raw.count(b"[") >= limit


async def vet(raw: bytes, limit: int) -> tuple[str, Any]:
    """("ok", None) when the body may be parsed on the loop, else what count_values found."""
    if not might_exceed(raw, limit):
        return ("ok", None)
    global _pool
    if _pool is None:
        # spawn: a fresh interpreter, never a fork of a process with an event loop and threads
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return await asyncio.get_running_loop().run_in_executor(_pool, count_values, raw, limit)


async def vetting_process(app) -> AsyncIterator[None]:
    """cleanup_ctx: stop the vetting process, if one was started, with the app."""
    yield
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None

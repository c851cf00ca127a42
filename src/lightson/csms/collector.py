"""Full garbage collections on a clock, not when CPython's heuristic fires.

A server holding thousands of station sessions has a large old generation (about 760,000
tracked objects at 5,000 stations). CPython 3.11 collects it whenever a quarter of it is new
survivors, which under steady MeterValues traffic happens every 20 s or so, and each full
collection stops the event loop for 0.3–0.4 s: every call in flight waits, and one such
pause is enough to push the p99 latency of a 30 s window from 25 ms to 450 ms
(``docs/benchmarks.md``). Young collections stay as they are; the old generation is
collected every ``every_s`` seconds instead, so cyclic garbage is still bounded while the
pause hits a handful of calls every few minutes rather than every 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

LOGGER = logging.getLogger("lightson.csms")
NEVER = 1_000_000_000  # gen-1 collections before an automatic full one: never, in practice


@contextlib.asynccontextmanager
async def scheduled_full_collections(every_s: float | None) -> AsyncIterator[None]:
    """While the block runs, the oldest generation is collected only every ``every_s``
    seconds (``None`` leaves CPython's own policy alone). The thresholds are restored after."""
    if every_s is None:
        yield
        return
    if every_s <= 0:
        raise ValueError(f"full_gc_every_s must be > 0 seconds, got {every_s}")
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], NEVER)
    task = asyncio.create_task(_collect_every(every_s), name="lightson-full-gc")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.set_threshold(*before)


async def _collect_every(every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        started = time.perf_counter()
        found = gc.collect()
        LOGGER.debug(
            "full collection: %d unreachable objects in %.0f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )

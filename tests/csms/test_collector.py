"""Full garbage collections on a clock (lightson.csms.collector)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from lightson.csms import collector
from lightson.csms.collector import NEVER, scheduled_full_collections


def test_old_generation_is_left_to_the_clock_and_thresholds_come_back() -> None:
    before = gc.get_threshold()

    async def run() -> tuple[int, int, int]:
        async with scheduled_full_collections(60.0):
            return gc.get_threshold()

    inside = asyncio.run(run())
    assert inside == (before[0], before[1], NEVER)
    assert gc.get_threshold() == before


def test_full_collections_run_at_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def collect(*_: int) -> int:
        calls.append(asyncio.get_running_loop().time())
        return 0

    monkeypatch.setattr(collector.gc, "collect", collect)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with scheduled_full_collections(0.05):
            await asyncio.sleep(0.28)
        return started

    started = asyncio.run(run())
    assert len(calls) >= 2
    # Never sooner than the interval (a busy machine can only make them later).
    gaps = [b - a for a, b in zip([started, *calls], calls, strict=False)]
    assert min(gaps) >= 0.05 - 1e-3


def test_none_keeps_cpythons_policy_and_a_bad_interval_is_refused() -> None:
    before = gc.get_threshold()

    async def run(every_s: float | None) -> tuple[int, int, int]:
        async with scheduled_full_collections(every_s):
            return gc.get_threshold()

    assert asyncio.run(run(None)) == before
    with pytest.raises(ValueError, match="full_gc_every_s"):
        asyncio.run(run(0.0))

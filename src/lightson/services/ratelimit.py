"""Rate limits by key (a token's name, a source address): token buckets, bounded in memory.

Each key may spend ``burst`` at once and earns ``per_second`` more each second, up to
``burst``. The API limits each token's writes with one (429 beyond it) and each address's
failed authentications with another, as does the charger handshake: a caller that keeps
guessing is refused before any password or token is checked, so guessing costs it time and
us nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Buckets:
    """Token buckets by key. At most ``max_keys`` are kept: the one left alone longest goes
    first (it is the fullest, so forgetting it gives nothing away but its own refill)."""

    def __init__(
        self,
        per_second: float,
        burst: int,
        now: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if per_second <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("buckets need per_second > 0, burst >= 1 and max_keys >= 1")
        self.per_second = per_second
        self.burst = burst
        self._now = now
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _bucket(self, key: str) -> _Bucket:
        now = self._now()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_second
        )
        bucket.updated = now
        self._buckets[key] = bucket  # the most recently used last
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return bucket

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` may spend one (0: now), spending nothing."""
        bucket = self._bucket(key)
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.per_second

    def take(self, key: str) -> float:
        """Spend one if there is one and return 0; else spend nothing and return the seconds
        until there is."""
        waiting = self.wait_s(key)
        if waiting == 0.0:
            self._buckets[key].tokens -= 1.0
        return waiting


__all__ = ["Buckets"]

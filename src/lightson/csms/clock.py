"""Clocks for the live edges (the core only ever sees the ``Clock`` protocol)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class AcceleratedClock:
    """Wall-clock time from ``start``, running ``speed`` times faster (1 = real time)."""

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        paused: bool = False,
        origin: float | None = None,
    ) -> None:
        """``origin``: the ``time.monotonic()`` reading at which the clock read ``start``
        (default: now). ``CLOCK_MONOTONIC`` is one clock for every process of the machine,
        so two processes given the same start, speed and origin share one clock. Before an
        origin still to come the clock reads ``start``, as a paused one (``lightson demo
        --distributed`` starts its processes so, then its fleet, then the day)."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        # Kept in UTC, as SimClock does: what is stored is UTC (ARCHITECTURE.md).
        self.start = start.astimezone(UTC) if start is not None else datetime.now(UTC)
        self.speed = speed
        self._origin: float | None = None if paused else time.monotonic()
        if origin is not None:
            self._origin = origin

    def resume(self) -> None:
        """Start a paused clock: it reads ``start`` until then (a demo waits for its fleet
        to connect before the simulated day begins)."""
        if self._origin is None:
            self._origin = time.monotonic()

    def pause(self) -> None:
        """Stop the clock where it is (a demo whose story has ended): it reads that time
        until resumed, so nothing it times (a reading's age) grows meanwhile."""
        self.start = self.now()
        self._origin = None

    @property
    def paused(self) -> bool:
        return self._origin is None

    def now(self) -> datetime:
        if self._origin is None:
            return self.start
        elapsed_s = max(time.monotonic() - self._origin, 0.0)
        return self.start + timedelta(seconds=elapsed_s * self.speed)

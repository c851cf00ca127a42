"""Customer baselines for site-level (C&I) performance: what the site would have drawn.

The exact ConnectedSolutions C&I method is not public (DOMAIN.md), so baselines are a
registry of strategies. Performance against a baseline is ``mean(baseline − actual)`` over
the event window, floored at 0.

``highest-5-of-10``: of the last 10 weekdays before the event day that were not event days,
take the 5 with the highest average load over the event window; the baseline is their
interval-by-interval mean. The same-day adjustment shifts it by the average gap between the
day's actual load and that baseline over hours the caller names before the event (commonly the
3 hours ending 1 hour before it starts), limited to ±20 % of the baseline there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from lightson.domain.registry import Registry

DayLoads = Mapping[date, NDArray[np.float64]]  # a day's interval loads (kW), the same step


@dataclass(frozen=True)
class HighestXofY:
    """The x highest of the last y eligible weekdays, with an optional same-day adjustment
    over ``adjustment`` (a slice of the day's intervals) capped at ``cap`` of the baseline."""

    x: int = 5
    y: int = 10
    adjust: bool = True
    cap: float = 0.20

    def __post_init__(self) -> None:
        if not 1 <= self.x <= self.y:
            raise ValueError("need 1 <= x <= y")

    def eligible_days(self, loads: DayLoads, event_day: date, event_days: set[date]) -> list[date]:
        """The last ``y`` weekdays before ``event_day`` with data and no event, newest first."""
        days = sorted((d for d in loads if d < event_day), reverse=True)
        chosen = [d for d in days if d.weekday() < 5 and d not in event_days]
        return chosen[: self.y]

    def baseline_kw(
        self,
        loads: DayLoads,
        event_day: date,
        event_days: set[date],
        window: slice,
        adjustment: slice | None = None,
    ) -> NDArray[np.float64]:
        """The baseline over the whole day (kW per interval), adjusted if asked."""
        eligible = self.eligible_days(loads, event_day, event_days)
        if not eligible:
            raise ValueError(f"no eligible days before {event_day} for a baseline")
        by_window_load = sorted(
            eligible, key=lambda d: (float(np.mean(loads[d][window])), d), reverse=True
        )
        highest = by_window_load[: self.x]
        baseline = np.mean([loads[d] for d in highest], axis=0)
        if self.adjust and adjustment is not None and event_day in loads:
            base = float(np.mean(baseline[adjustment]))
            gap = float(np.mean(loads[event_day][adjustment])) - base
            limit = self.cap * abs(base)
            baseline = baseline + float(np.clip(gap, -limit, limit))
        return np.asarray(baseline, dtype=float)


BaselineFactory = Callable[[], HighestXofY]
BASELINES: Registry[BaselineFactory] = Registry("baseline")
BASELINES.register("highest-5-of-10", lambda: HighestXofY(5, 10))
BASELINES.register("highest-5-of-10-unadjusted", lambda: HighestXofY(5, 10, adjust=False))


def performance_kw(
    baseline: NDArray[np.float64], actual: NDArray[np.float64], window: slice
) -> float:
    """Site-level performance in an event: mean(baseline − actual) over the window, ≥ 0."""
    return max(float(np.mean(baseline[window] - actual[window])), 0.0)

"""Retail tariffs: energy price by time of use, fixed charge, demand charge, export credit.

Defaults for Massachusetts are in ``lightson.domain.catalog``: a flat residential rate
(no default residential time-of-use before ~2028) and a commercial rate with a demand
charge on the monthly peak. Export gets no net-metering credit for V2X today (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class TouPeriod:
    """A time-of-use price that replaces the base price in ``[start_hour, end_hour)``
    local time, on ``weekdays`` (0 = Monday) of ``months`` (1–12)."""

    months: frozenset[int]
    weekdays: frozenset[int]
    start_hour: int
    end_hour: int
    energy_usd_per_kwh: float

    def applies(self, local: datetime) -> bool:
        return (
            local.month in self.months
            and local.weekday() in self.weekdays
            and self.start_hour <= local.hour < self.end_hour
        )


@dataclass(frozen=True)
class Tariff:
    tariff_id: str
    energy_usd_per_kwh: float
    fixed_usd_per_month: float = 0.0
    demand_usd_per_kw_month: float = 0.0
    export_credit_usd_per_kwh: float = 0.0
    tou_periods: tuple[TouPeriod, ...] = ()
    source: str = ""

    def import_price_usd_per_kwh(self, starts_local: list[datetime]) -> NDArray[np.float64]:
        """Energy price of each interval; the first matching TOU period wins."""
        prices = np.full(len(starts_local), self.energy_usd_per_kwh)
        for i, local in enumerate(starts_local):
            for period in self.tou_periods:
                if period.applies(local):
                    prices[i] = period.energy_usd_per_kwh
                    break
        return prices

    def export_credit_array_usd_per_kwh(self, n_steps: int) -> NDArray[np.float64]:
        return np.full(n_steps, self.export_credit_usd_per_kwh)

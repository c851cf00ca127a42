"""What the optimizer returns: a typed plan, its objective terms and the setpoints
the core hands to the edges.

Sign of power, from the vehicle's side: ``+`` charges the vehicle, ``−`` discharges
it. Site net power: ``+`` imports from the grid, ``−`` exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import numpy as np
from numpy.typing import NDArray


class SolveStatus(Enum):
    """Outcome of a solve, never a bare string."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    TIME_LIMIT = "time_limit"
    ERROR = "error"

    @property
    def has_plan(self) -> bool:
        return self is SolveStatus.OPTIMAL


@dataclass(frozen=True)
class Setpoint:
    """The one command the core gives the edges: hold ``power_kw`` at ``evse_id`` until
    ``valid_until`` (+ charges the vehicle, − discharges it)."""

    evse_id: str
    power_kw: float
    valid_until: datetime


@dataclass(frozen=True)
class ObjectiveTerms:
    """The plan's cost over the horizon, term by term, in USD (costs +, revenues as
    positive numbers subtracted in ``total_usd``). ``terminal_value_usd`` is what the
    energy left in the batteries at the end is worth (the cost of putting it back).
    ``early_charge_usd`` is the early-charging tie-breaker the plan carried: not a cost,
    and not in ``total_usd``."""

    energy_usd: float
    export_credit_usd: float
    demand_usd: float
    fixed_usd: float
    degradation_usd: float
    dr_revenue_usd: float
    shortfall_penalty_usd: float
    terminal_value_usd: float = 0.0
    early_charge_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        return (
            self.energy_usd
            - self.export_credit_usd
            + self.demand_usd
            + self.fixed_usd
            + self.degradation_usd
            - self.dr_revenue_usd
            + self.shortfall_penalty_usd
            - self.terminal_value_usd
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "energy_usd": self.energy_usd,
            "export_credit_usd": self.export_credit_usd,
            "demand_usd": self.demand_usd,
            "fixed_usd": self.fixed_usd,
            "degradation_usd": self.degradation_usd,
            "dr_revenue_usd": self.dr_revenue_usd,
            "shortfall_penalty_usd": self.shortfall_penalty_usd,
            "terminal_value_usd": self.terminal_value_usd,
            "total_usd": self.total_usd,
            "early_charge_usd": self.early_charge_usd,
        }


@dataclass(frozen=True, eq=False)
class VehiclePlan:
    """Per-interval plan of one vehicle. ``energy_kwh[t]`` is the battery energy at the
    *end* of interval ``t``. ``floor_shortfall_kwh`` is the largest amount by which the
    plan misses a floor (usable window, reserve, departure need) because the need was
    infeasible; ``unserved_trip_kwh`` is trip energy the battery could not supply."""

    vehicle_id: str
    evse_id: str
    power_kw: NDArray[np.float64]
    energy_kwh: NDArray[np.float64]
    soc: NDArray[np.float64]
    floor_shortfall_kwh: float
    departure_shortfall_kwh: float
    unserved_trip_kwh: float


@dataclass(frozen=True, eq=False)
class Plan:
    site_id: str
    start: datetime
    step: timedelta
    status: SolveStatus
    vehicles: tuple[VehiclePlan, ...]
    site_net_power_kw: NDArray[np.float64]
    pv_kw: NDArray[np.float64]
    objective: ObjectiveTerms
    solve_time_s: float = 0.0

    @property
    def n_steps(self) -> int:
        return int(self.site_net_power_kw.shape[0])

    def interval_start(self, t: int) -> datetime:
        return self.start + t * self.step

    def setpoints(self, t: int = 0) -> list[Setpoint]:
        """Setpoints for interval ``t``, valid until its end."""
        valid_until = self.interval_start(t + 1)
        return [Setpoint(v.evse_id, float(v.power_kw[t]), valid_until) for v in self.vehicles]

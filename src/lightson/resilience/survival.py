"""Outage survival: for an outage starting at a given moment, how many hours each load tier
is carried by the vehicles plugged in at that moment (and PV), as outage-survival tools for
batteries report it.

Assumptions (each a knob): the vehicles plugged in when the grid fails stay for the outage
(trips are called off in a blackout); each keeps its usable minimum plus ``keep_kwh`` (for a
bus, its next route); together they give at most the sum of their discharge limits; the
load of the tier and PV follow their profiles hour by hour. A tier is carried until the
first interval whose need (tier load − PV) exceeds the power available or the energy left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class BackupVehicle:
    """A plugged V2X vehicle at the outage's start: energy it can deliver at the EVSE
    (above its floor, after losses) and its discharge limit."""

    deliverable_kwh: float
    max_discharge_kw: float


def hours_carried(
    tier_load_kw: NDArray[np.float64],
    pv_kw: NDArray[np.float64],
    vehicles: Sequence[BackupVehicle],
    step_h: float,
) -> float:
    """Hours from the first interval until the tier can no longer be carried (the length
    of the arrays if it never fails). Arrays start at the outage's first interval."""
    energy_kwh = sum(v.deliverable_kwh for v in vehicles)
    power_kw = sum(v.max_discharge_kw for v in vehicles)
    need_kw = np.clip(tier_load_kw - pv_kw, 0.0, None)
    if np.any(need_kw > power_kw + 1e-9):
        power_short = int(np.argmax(need_kw > power_kw + 1e-9))
    else:
        power_short = len(need_kw)
    used_kwh = np.cumsum(need_kw) * step_h
    energy_short = (
        int(np.argmax(used_kwh > energy_kwh + 1e-9))
        if np.any(used_kwh > energy_kwh + 1e-9)
        else len(need_kw)
    )
    last = min(power_short, energy_short)
    if last < len(need_kw) and energy_short < power_short:  # the last interval partly carried
        before_kwh = used_kwh[last - 1] if last else 0.0
        return float((last + (energy_kwh - before_kwh) / (need_kw[last] * step_h)) * step_h)
    return last * step_h


def survival_probability(
    hours: NDArray[np.float64], durations_h: Sequence[float]
) -> dict[float, float]:
    """Share of outage starts for which the tier lasts at least each duration."""
    return {d: float(np.mean(hours >= d - 1e-9)) for d in durations_h}

"""What changes: the measured state of a site and the forecasts a plan is made with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SiteState:
    """Measured at plan time. ``energy_kwh`` by vehicle id (missing: the vehicle's
    ``initial_soc``); ``plugged_now`` overrides the trip schedule for the first interval
    (a bus back early, a car still out); ``peak_so_far_kw``: highest import this billing
    period, already paid for by the demand charge; ``peak_expected_kw``: the peak the billing
    month is expected to reach anyway by its end (``forecast.month_peak``), 0 if unknown."""

    energy_kwh: Mapping[str, float] = field(default_factory=dict)
    plugged_now: Mapping[str, bool] = field(default_factory=dict)
    peak_so_far_kw: float = 0.0
    peak_expected_kw: float = 0.0


@dataclass(frozen=True, eq=False)
class SiteForecast:
    """Per-interval forecasts over the plan's grid: building load (kW ≥ 0) and PV
    available (kW ≥ 0). ``load_peak_kw``: the load the demand-peak constraint plans for (an
    upper quantile of the load forecast; docs/formulation.md, demand charge); ``None``: the
    same as ``load_kw``."""

    load_kw: NDArray[np.float64]
    pv_kw: NDArray[np.float64]
    load_peak_kw: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if self.load_kw.shape != self.pv_kw.shape:
            raise ValueError("load_kw and pv_kw must cover the same intervals")
        if self.load_peak_kw is not None and self.load_peak_kw.shape != self.load_kw.shape:
            raise ValueError("load_peak_kw and load_kw must cover the same intervals")


class OperatingState(Enum):
    """The site's electrical state (DOMAIN.md, "Electrical rules"), explicit in control."""

    NON_PARALLEL = "non-parallel"  # islanded behind a transfer switch: backup only
    PARALLEL_NON_EXPORTING = "parallel-non-exporting"
    PARALLEL_EXPORTING = "parallel-exporting"

    @property
    def may_export(self) -> bool:
        return self is OperatingState.PARALLEL_EXPORTING


@dataclass(frozen=True)
class SiteObservation:
    """What the control loop measures at ``now``: battery energy and plug state by vehicle
    id, building load and PV (kW), whether the site is islanded, and whether an outage has
    been declared (the only time vehicles may go below their floor). ``export_check_kw``:
    the (load, PV) the no-export rule is checked against when they must be more cautious
    than ``load_kw`` and ``pv_kw`` (a live site known only from forecasts); ``None``: those."""

    now: datetime
    energy_kwh: Mapping[str, float]
    plugged: Mapping[str, bool]
    load_kw: float
    pv_kw: float
    islanded: bool = False
    outage_declared: bool = False
    peak_so_far_kw: float = 0.0
    export_check_kw: tuple[float, float] | None = None

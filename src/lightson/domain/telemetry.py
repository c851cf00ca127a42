"""What the edges learn from chargers, as domain values (no protocol names here).

Signs follow the domain rule: power is + into the vehicle (charging), − out of it
(discharging). Discharge *limits* are magnitudes (≥ 0), like a charger's rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MeterSample:
    """One meter reading at an EVSE. Fields the charger did not send are ``None``."""

    station_id: str
    evse_id: int
    at: datetime
    power_kw: float | None = None
    energy_imported_kwh: float | None = None
    energy_exported_kwh: float | None = None
    soc: float | None = None


@dataclass(frozen=True)
class ChargingNeeds:
    """What the vehicle asked for (ISO 15118 through ``NotifyEVChargingNeeds``). Power
    limits are magnitudes in kW (``None``: not said): the vehicle takes or gives at most the
    ``max_*`` and, when it takes or gives any, at least the ``min_*``."""

    station_id: str
    evse_id: int
    at: datetime
    departure: datetime | None
    energy_request_kwh: float | None
    max_charge_kw: float | None
    max_discharge_kw: float | None
    target_soc: float | None
    bidirectional: bool
    min_charge_kw: float | None = None
    min_discharge_kw: float | None = None


@dataclass(frozen=True)
class PowerLimits:
    """Limits on one vehicle's power at its EVSE, as someone stated them (the vehicle over
    ISO 15118, or what its charger showed it accepts): magnitudes in kW, ``None`` where
    nothing was said. ``max_*`` bound the power; ``min_*``: when it flows at all, at least
    this much."""

    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    min_charge_kw: float | None = None
    min_discharge_kw: float | None = None

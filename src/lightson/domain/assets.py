"""Nameplate vocabulary: vehicles, chargers, buildings, PV, sites and the program.

Objects hold what does not change (nameplate data, schedules); state of charge,
measurements and forecasts are passed to functions as arguments. Every quantity
carries its unit in its name; ``soc`` is a fraction 0–1 of ``battery_kwh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from lightson.domain.demand_response import DREvent, DRProgram
from lightson.domain.errors import UnknownNameError
from lightson.domain.failures import NO_FAILURES, ChargerDowntime, FailureModel
from lightson.domain.outages import Outage
from lightson.domain.tariffs import Tariff


class SiteKind(Enum):
    HOME = "home"
    BUSINESS = "business"
    SCHOOL = "school"


class PowerKind(Enum):
    """What crosses the connector: AC (the vehicle's onboard charger converts) or DC."""

    AC = "ac"
    DC = "dc"


class OcppVersion(Enum):
    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
    V21 = "ocpp2.1"


@dataclass(frozen=True)
class Trip:
    """A recurring trip: away from ``depart_local`` to ``return_local`` on ``weekdays``
    (0 = Monday) of ``months`` (1–12) except ``skip_dates`` (holidays, school vacations),
    using ``energy_kwh`` from the battery. Times are program-local; a return earlier than the
    departure is on the next day."""

    weekdays: frozenset[int]
    depart_local: time
    return_local: time
    energy_kwh: float
    months: frozenset[int] = frozenset(range(1, 13))
    skip_dates: frozenset[date] = frozenset()

    def runs_on(self, day: date) -> bool:
        return (
            day.weekday() in self.weekdays
            and day.month in self.months
            and day not in self.skip_dates
        )

    @property
    def duration(self) -> timedelta:
        start = timedelta(hours=self.depart_local.hour, minutes=self.depart_local.minute)
        end = timedelta(hours=self.return_local.hour, minutes=self.return_local.minute)
        return end - start if end > start else end - start + timedelta(days=1)


@dataclass(frozen=True)
class Vehicle:
    """One vehicle and the EVSE it plugs into when at the site.

    Power limits are the vehicle's own (onboard charger, BMS); the EVSE's limits
    apply on top. ``min_charge_kw``/``min_discharge_kw``: when it charges (discharges) at
    all, it takes (gives) at least this much (ISO 15118-20 minimum powers; 0: any).
    Efficiencies: ``charge_efficiency`` = battery kWh gained per kWh drawn at the EVSE;
    ``discharge_efficiency`` = kWh delivered at the EVSE per kWh taken from the battery.
    """

    vehicle_id: str
    model: str
    evse_id: str
    battery_kwh: float
    soc_min: float = 0.05
    soc_max: float = 1.0
    max_charge_kw: float = 11.5
    max_discharge_kw: float = 0.0
    v2x_capable: bool = False
    charge_efficiency: float = 0.92
    discharge_efficiency: float = 0.92
    reserve_soc: float = 0.0
    departure_floor_soc: float = 0.2
    degradation_usd_per_kwh: float = 0.03
    initial_soc: float = 0.5
    trips: tuple[Trip, ...] = ()
    min_charge_kw: float = 0.0
    min_discharge_kw: float = 0.0

    @property
    def min_energy_kwh(self) -> float:
        return self.soc_min * self.battery_kwh

    @property
    def max_energy_kwh(self) -> float:
        return self.soc_max * self.battery_kwh


@dataclass(frozen=True)
class Charger:
    """One EVSE. ``max_discharge_kw`` = 0 means charge-only equipment."""

    evse_id: str
    model: str
    power_kind: PowerKind
    max_charge_kw: float
    max_discharge_kw: float
    protocol: OcppVersion = OcppVersion.V21

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_kw > 0


@dataclass(frozen=True, eq=False)
class HourlyProfile:
    """8760 hourly values of a typical year (row 0 = 1 January 00:00–01:00 local
    standard time), with the source they came from. ``first_weekday`` (0 = Monday) is the
    weekday of 1 January in the profile's own calendar when its loads follow weekdays."""

    name: str
    values: NDArray[np.float64]
    source: str = ""
    first_weekday: int | None = None

    def __post_init__(self) -> None:
        if self.values.shape != (8760,):
            raise ValueError(f"profile '{self.name}' must have 8760 hourly values")


class LoadTier(Enum):
    """Nested load tiers, kept in this order when power or energy runs short."""

    CRITICAL = "critical"
    ESSENTIAL = "essential"
    FULL = "full"


@dataclass(frozen=True)
class LoadTiers:
    """Shares of the building load that are critical and critical+essential (the rest
    is 'full'): what the site keeps, in order, when power or energy runs short."""

    critical_share: float = 0.3
    essential_share: float = 0.6

    def share(self, tier: LoadTier) -> float:
        return {
            LoadTier.CRITICAL: self.critical_share,
            LoadTier.ESSENTIAL: self.essential_share,
            LoadTier.FULL: 1.0,
        }[tier]


@dataclass(frozen=True, eq=False)
class Building:
    """A building's load: ``load_profile`` (kW) × ``scale``."""

    load_profile: HourlyProfile
    scale: float = 1.0
    tiers: LoadTiers = field(default_factory=LoadTiers)


@dataclass(frozen=True, eq=False)
class HourlyWeather:
    """Typical-year hourly weather (TMY3): irradiance W/m², temperature °C, wind m/s."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    ghi_w_per_m2: NDArray[np.float64]
    dni_w_per_m2: NDArray[np.float64]
    dhi_w_per_m2: NDArray[np.float64]
    temp_air_c: NDArray[np.float64]
    wind_speed_m_per_s: NDArray[np.float64]
    source: str = ""


@dataclass(frozen=True)
class PVSystem:
    """Rooftop PV: DC nameplate, orientation (azimuth 180° = south), inverter AC rating."""

    kw_dc: float
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0
    inverter_kw_ac: float | None = None
    losses_percent: float = 14.0


@dataclass(frozen=True, eq=False)
class Site:
    """A home, business or school with its chargers, vehicles and enrollments.

    ``service_limit_kw`` bounds import and export at the meter. Without
    ``export_permitted`` the site never sends power to the grid (net ≥ 0).
    """

    site_id: str
    kind: SiteKind
    utility: str
    service_limit_kw: float
    export_permitted: bool
    tariff: Tariff
    building: Building
    chargers: tuple[Charger, ...]
    vehicles: tuple[Vehicle, ...]
    pv: PVSystem | None = None
    enrollments: tuple[str, ...] = ()
    failures: FailureModel | None = None  # None: the program's (``Program.failures``)

    def charger(self, evse_id: str) -> Charger:
        for charger in self.chargers:
            if charger.evse_id == evse_id:
                return charger
        raise UnknownNameError("charger", evse_id, (c.evse_id for c in self.chargers), self.site_id)


@dataclass(frozen=True, eq=False)
class Program:
    """A V2X program: its sites, the DR programs they may enroll in and the events called."""

    name: str
    timezone: ZoneInfo
    step: timedelta
    sites: tuple[Site, ...]
    dr_programs: tuple[DRProgram, ...] = ()
    events: tuple[DREvent, ...] = ()
    weather: HourlyWeather | None = None
    outages: tuple[Outage, ...] = ()
    failures: FailureModel = NO_FAILURES  # what the twin's sites live with, unless their own
    charger_downtime: tuple[ChargerDowntime, ...] = ()  # known faults and link losses

    def failures_at(self, site: Site) -> FailureModel:
        return site.failures if site.failures is not None else self.failures

    def site(self, site_id: str) -> Site:
        for site in self.sites:
            if site.site_id == site_id:
                return site
        raise UnknownNameError("site", site_id, (s.site_id for s in self.sites), "--site")

    def dr_program(self, program_id: str) -> DRProgram:
        for dr in self.dr_programs:
            if dr.program_id == program_id:
                return dr
        raise UnknownNameError(
            "demand-response program", program_id, (d.program_id for d in self.dr_programs)
        )

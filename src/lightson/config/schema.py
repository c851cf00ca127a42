"""The shape of a program file: pydantic models that refuse unknown fields.

Fields left out take the catalog defaults of the named ``model`` (vehicles, chargers);
see ``docs/program-file.md`` for every field with its unit and default.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Efficiency = Annotated[float, Field(gt=0.0, le=1.0)]
PowerKw = Annotated[float, Field(ge=0.0)]
HourOfDay = Annotated[int, Field(ge=0, le=24)]
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DaySet = Literal["weekdays", "weekends", "daily"] | list[DayName]


def _clock_from_yaml(value: object) -> object:
    """YAML 1.1 reads an unquoted ``6:30`` as the base-60 integer 390: read it back."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


def _instant_from_yaml(value: object) -> object:
    """YAML reads an unquoted ``2026-07-15 15:00:00`` as a datetime: keep it as text."""
    return value.isoformat() if isinstance(value, datetime | date) else value


ClockTime = Annotated[
    str, BeforeValidator(_clock_from_yaml), Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
]
Instant = Annotated[str, BeforeValidator(_instant_from_yaml)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TripFile(_Strict):
    days: DaySet = "weekdays"
    depart: ClockTime
    return_: ClockTime = Field(alias="return")
    energy_kwh: PowerKw | None = None
    miles: PowerKw | None = None
    months: list[Annotated[int, Field(ge=1, le=12)]] = list(range(1, 13))
    except_dates: list[date] = []


class VehicleFile(_Strict):
    id: str = Field(min_length=1)
    model: str
    charger: str | None = None
    battery_kwh: Annotated[float, Field(gt=0.0)] | None = None
    soc_min: Fraction = 0.05
    soc_max: Fraction = 1.0
    max_charge_kw: PowerKw | None = None
    max_discharge_kw: PowerKw | None = None
    v2x_capable: bool | None = None
    charge_efficiency: Efficiency | None = None
    discharge_efficiency: Efficiency | None = None
    reserve_soc: Fraction = 0.0
    departure_floor_soc: Fraction = 0.2
    degradation_usd_per_kwh: Annotated[float, Field(ge=0.0)] = 0.03
    initial_soc: Fraction = 0.5
    trips: list[TripFile] = []


class ChargerFile(_Strict):
    id: str = Field(min_length=1)
    model: str
    max_charge_kw: PowerKw | None = None
    max_discharge_kw: PowerKw | None = None
    power_kind: Literal["ac", "dc"] | None = None
    protocol: Literal["ocpp1.6", "ocpp2.0.1", "ocpp2.1"] | None = None


class BuildingFile(_Strict):
    profile: str | None = None
    file: str | None = None
    constant_kw: PowerKw | None = None
    scale: Annotated[float, Field(gt=0.0)] = 1.0
    critical_share: Fraction = 0.3
    essential_share: Fraction = 0.6


class PVFile(_Strict):
    kw_dc: Annotated[float, Field(gt=0.0)]
    tilt_deg: Annotated[float, Field(ge=0.0, le=90.0)] = 30.0
    azimuth_deg: Annotated[float, Field(ge=0.0, lt=360.0)] = 180.0
    inverter_kw_ac: Annotated[float, Field(gt=0.0)] | None = None
    losses_percent: Annotated[float, Field(ge=0.0, lt=100.0)] = 14.0


class DowntimeFile(_Strict):
    """Random spells out of service: starts per charger and year, lognormal durations."""

    per_charger_year: Annotated[float, Field(ge=0.0, le=365.0)] | None = None
    median_hours: Annotated[float, Field(gt=0.0, le=8760.0)] | None = None
    sigma: Annotated[float, Field(ge=0.0, le=3.0)] | None = None


class DelayFile(_Strict):
    probability: Fraction | None = None
    median_hours: Annotated[float, Field(gt=0.0, le=24.0)] | None = None
    sigma: Annotated[float, Field(ge=0.0, le=3.0)] | None = None
    max_hours: Annotated[float, Field(gt=0.0, le=24.0)] | None = None


class OptOutFile(_Strict):
    """Probability that a site of each kind opts out of an event."""

    home: Fraction | None = None
    business: Fraction | None = None
    school: Fraction | None = None


class SummerRouteFile(_Strict):
    probability: Fraction | None = None
    months: list[Annotated[int, Field(ge=1, le=12)]] | None = None
    days: DaySet | None = None
    depart: ClockTime | None = None
    return_: ClockTime | None = Field(default=None, alias="return")
    energy_kwh: PowerKw | None = None


class FailuresFile(_Strict):
    """The twin's failure model (docs/program-file.md): the causes named are on, each field
    left out at its field default (``FIELD_FAILURES``); causes not named are as ``base``
    (``none``: off; ``field``: the field defaults). ``failures: field`` is ``{base: field}``."""

    base: Literal["none", "field"] = "none"
    charger_faults: DowntimeFile | None = None
    communication_losses: DowntimeFile | None = None
    opt_out: OptOutFile | None = None
    late_plug_in: DelayFile | None = None
    early_departure: DelayFile | None = None
    summer_route: SummerRouteFile | None = None


def _failures_from_yaml(value: object) -> object:
    """``failures: none`` / ``failures: field`` stand for ``{base: none}`` / ``{base: field}``."""
    if isinstance(value, str):
        if value not in ("none", "field"):
            raise ValueError("must be 'none', 'field' or a mapping of causes")
        return {"base": value}
    return value


Failures = Annotated[FailuresFile, BeforeValidator(_failures_from_yaml)]


class ChargerDowntimeFile(_Strict):
    site: str = Field(min_length=1)
    charger: str = Field(min_length=1)
    cause: Literal["fault", "comms"]
    start: Instant
    end: Instant


class SiteFile(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["home", "business", "school"]
    utility: str
    service_limit_kw: Annotated[float, Field(gt=0.0)]
    export_permitted: bool = False
    tariff: str
    building: BuildingFile
    pv: PVFile | None = None
    enrollments: list[str] = []
    chargers: list[ChargerFile]
    vehicles: list[VehicleFile] = []
    failures: Failures | None = None  # None: the program's


class TouPeriodFile(_Strict):
    months: list[Annotated[int, Field(ge=1, le=12)]] = list(range(1, 13))
    days: DaySet = "daily"
    start_hour: HourOfDay
    end_hour: HourOfDay
    energy_usd_per_kwh: float


class TariffFile(_Strict):
    energy_usd_per_kwh: float
    fixed_usd_per_month: Annotated[float, Field(ge=0.0)] = 0.0
    demand_usd_per_kw_month: Annotated[float, Field(ge=0.0)] = 0.0
    export_credit_usd_per_kwh: float = 0.0
    tou: list[TouPeriodFile] = []
    source: str = ""


class DRProgramFile(_Strict):
    name: str
    rate_usd_per_kw_season: Annotated[float, Field(ge=0.0)]
    expected_events: Annotated[int, Field(gt=0)]
    expected_event_hours: Annotated[float, Field(gt=0.0)]
    source: str = ""


class EventFile(_Strict):
    id: str = Field(min_length=1)
    program: str
    start: Instant
    end: Instant
    announced: Instant | None = None


class OutageFile(_Strict):
    id: str = Field(min_length=1)
    sites: list[str] = Field(min_length=1)
    start: Instant
    end: Instant
    enter_service_delay_s: float = Field(default=300.0, ge=0, le=3600)
    release_route_reserve: list[str] = []  # vehicle ids the operator lets use their trip energy


class OpenAdrFile(_Strict):
    """The utility's OpenADR VTN the operations server's VEN registers with
    (``docs/demand-response.md``); each key may be overridden by ``lightson serve``'s
    ``--openadr-*`` option. Files are relative to the program file."""

    vtn_url: str = Field(min_length=1)
    ven_name: str | None = None
    utility: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    market_contexts: dict[str, str] = {}  # marketContext URL → DR program id


class StationCaFile(_Strict):
    """The CA that signs charging stations' certificate requests (``SignCertificate``,
    ``docs/csms.md``): PEM certificate and key, relative to the program file; each is
    overridden by ``lightson serve``'s ``--station-ca-cert``/``--station-ca-key``."""

    cert: str = Field(min_length=1)
    key: str = Field(min_length=1)


class ProgramHeader(_Strict):
    name: str
    timezone: str = "America/New_York"
    step_minutes: Literal[5, 10, 15, 20, 30, 60] = 15
    weather: str | None = "boston-logan-tmy3"


class ProgramFile(_Strict):
    program: ProgramHeader
    tariffs: dict[str, TariffFile] = {}
    dr_programs: dict[str, DRProgramFile] = {}
    events: list[EventFile] = []
    outages: list[OutageFile] = []
    failures: Failures = FailuresFile()
    charger_downtime: list[ChargerDowntimeFile] = []
    openadr: OpenAdrFile | None = None
    station_ca: StationCaFile | None = None
    sites: list[SiteFile] = Field(min_length=1)

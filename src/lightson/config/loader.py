"""Program file → validated ``Program``, with every problem reported by field path.

Two passes: pydantic checks the shape and ranges; ``_Converter`` checks what spans
fields (catalog names, references between sites, chargers, vehicles, programs) and
builds the domain objects. All issues found are reported together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from pydantic import ValidationError

from lightson.config import schema as s
from lightson.datasets import bundled_load_profile, bundled_weather, read_load_profile
from lightson.domain.assets import (
    Building,
    Charger,
    HourlyProfile,
    HourlyWeather,
    LoadTiers,
    OcppVersion,
    PowerKind,
    Program,
    PVSystem,
    Site,
    SiteKind,
    Trip,
    Vehicle,
)
from lightson.domain.catalog import CHARGER_MODELS, DR_PROGRAMS, TARIFFS, VEHICLE_MODELS
from lightson.domain.demand_response import DREvent, DRProgram
from lightson.domain.errors import ConfigError, DataError, LightsOnError, UnknownNameError
from lightson.domain.failures import (
    FIELD_FAILURES,
    NO_FAILURES,
    ChargerDowntime,
    Delay,
    Downtime,
    FailureCause,
    FailureModel,
    SummerRoute,
)
from lightson.domain.outages import Outage
from lightson.domain.tariffs import Tariff, TouPeriod

EXAMPLE_PROGRAM = "example"
BUNDLED_PROGRAMS = (EXAMPLE_PROGRAM, "beverly-2021")
MA_2026_PROGRAM = "ma-2026"
_DAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_DAY_SETS = {"weekdays": range(5), "weekends": range(5, 7), "daily": range(7)}


def load_program(path: str | Path) -> Program:
    """Read and validate a program file. Bundled names: ``example`` (a home, a business, a
    school), ``beverly-2021`` (the Beverly school-bus pilot) and ``ma-2026`` (the generated
    Massachusetts program, default seed)."""
    bundled = resources.files("lightson") / "examples" / f"{path}.yaml"
    if str(path) in BUNDLED_PROGRAMS and bundled.is_file():
        return parse_program(bundled.read_text(), base_dir=Path.cwd())
    if str(path) == MA_2026_PROGRAM:
        from lightson.config.generate import ma_2026_program

        return _converted(ma_2026_program(), Path.cwd())
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError.at(str(path), f"cannot read program file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError.at(
            str(path), f"not a UTF-8 text file (byte {error.start}): is it a program file?"
        ) from None
    return parse_program(text, base_dir=file.parent)


def openadr_section(path: str | Path) -> s.OpenAdrFile | None:
    """A program file's ``openadr`` section, its files made relative to the program file's
    folder (``None``: none, or a bundled program). Read after ``load_program`` checked it."""
    if str(path) in (*BUNDLED_PROGRAMS, MA_2026_PROGRAM):
        return None
    file = Path(path)
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("openadr") is None:
        return None
    try:
        section = s.OpenAdrFile.model_validate(raw["openadr"])
    except ValidationError as error:
        raise ConfigError([(f"openadr.{p}", r) for p, r in _pydantic_issues(error)]) from None
    files = {
        name: str(file.parent / value)
        for name in ("cert", "key", "ca")
        if (value := getattr(section, name)) is not None
    }
    return section.model_copy(update=files)


def station_ca_section(path: str | Path) -> tuple[Path, Path] | None:
    """A program file's ``station_ca`` (certificate, key), relative to the program file's
    folder (``None``: none, or a bundled program). Read after ``load_program`` checked it."""
    if str(path) in (*BUNDLED_PROGRAMS, MA_2026_PROGRAM):
        return None
    file = Path(path)
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("station_ca") is None:
        return None
    try:
        section = s.StationCaFile.model_validate(raw["station_ca"])
    except ValidationError as error:
        raise ConfigError([(f"station_ca.{p}", r) for p, r in _pydantic_issues(error)]) from None
    return file.parent / section.cert, file.parent / section.key


def parse_program(text: str, base_dir: Path | None = None) -> Program:
    """Validate the YAML ``text`` of a program file (relative ``file:`` paths from ``base_dir``)."""
    try:
        raw = yaml.safe_load(text)
    except ValueError as error:  # PyYAML builds dates itself: 2026-02-30 fails here
        raise ConfigError.at("YAML", f"not a valid value ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise ConfigError.at(
            where, f"not valid YAML ({getattr(error, 'problem', error)})"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError.at("", "a program file must be a YAML mapping with 'program' and 'sites'")
    return _converted(raw, base_dir or Path.cwd())


def _converted(raw: dict[str, Any], base_dir: Path) -> Program:
    try:
        document = s.ProgramFile.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_pydantic_issues(error)) from None
    return _Converter(base_dir).program(document)


def _pydantic_issues(error: ValidationError) -> list[tuple[str, str]]:
    issues = []
    for detail in error.errors():
        path = _path(detail["loc"])
        issues.append((path, _rule(detail)))
    return issues


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith(("literal[", "list[", "function-", "constrained-")) or part in {
            "str",
            "float",
            "int",
            "bool",
        }:
            continue  # pydantic's name for one branch of a union, not a field
        else:
            text += f".{part}" if text else part
    return text


def _rule(detail: Any) -> str:
    ctx = detail.get("ctx", {})
    kind = detail["type"]
    rules = {
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be ≥ {ge}",
        "less_than": "must be < {lt}",
        "less_than_equal": "must be ≤ {le}",
        "missing": "is required",
        "extra_forbidden": "unknown field (check the spelling against docs/program-file.md)",
        "string_pattern_mismatch": "must look like HH:MM (24-hour clock)",
        "too_short": "must not be empty",
    }
    if kind in rules:
        return rules[kind].format(**ctx)
    if kind == "value_error":
        return str(detail["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}"
    return str(detail["msg"]).lower()


class _Converter:
    """Second pass: cross-field rules and construction of the domain objects."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.issues: list[tuple[str, str]] = []

    def fail(self, path: str, rule: str) -> None:
        self.issues.append((path, rule))

    def guard(self, path: str, error: LightsOnError) -> None:
        if isinstance(error, ConfigError):
            self.issues.extend((issue_path or path, rule) for issue_path, rule in error.issues)
        else:
            self.fail(path, str(error))

    def program(self, doc: s.ProgramFile) -> Program:
        tz = self.timezone(doc.program.timezone)
        weather = self.weather(doc.program.weather)
        tariffs = self.tariffs(doc.tariffs)
        dr_programs = self.dr_programs(doc.dr_programs)
        sites = self.sites(doc.sites, tariffs, dr_programs)
        events = self.events(doc.events, dr_programs, tz)
        vehicles_by_site = {s.id: {v.id for v in s.vehicles} for s in doc.sites}
        outages = self.outages(doc.outages, vehicles_by_site, tz)
        failures = failure_model(doc.failures)
        downtime = self.charger_downtime(doc.charger_downtime, doc.sites, tz)
        if doc.program.weather is None:
            for i, site in enumerate(doc.sites):
                if site.pv is not None:
                    self.fail(f"sites[{i}].pv", "PV output needs weather: set program.weather")
        if self.issues:
            raise ConfigError(self.issues)
        return Program(
            name=doc.program.name,
            timezone=tz,
            step=timedelta(minutes=doc.program.step_minutes),
            sites=tuple(sites),
            dr_programs=tuple(dr_programs.values()),
            events=tuple(events),
            weather=weather,
            outages=tuple(outages),
            failures=failures,
            charger_downtime=tuple(downtime),
        )

    def timezone(self, name: str) -> ZoneInfo:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(
                "program.timezone", f"unknown time zone '{name}' (for example America/New_York)"
            )
            return ZoneInfo("UTC")

    def weather(self, name: str | None) -> HourlyWeather | None:
        if name is None:
            return None
        try:
            return bundled_weather(name, "program.weather")
        except LightsOnError as error:
            self.guard("program.weather", error)
            return None

    def tariffs(self, custom: dict[str, s.TariffFile]) -> dict[str, Tariff]:
        tariffs = dict(TARIFFS)
        for tariff_id, t in custom.items():
            periods = tuple(
                TouPeriod(
                    frozenset(p.months),
                    self.days(p.days, f"tariffs.{tariff_id}.tou[{i}].days"),
                    p.start_hour,
                    p.end_hour,
                    p.energy_usd_per_kwh,
                )
                for i, p in enumerate(t.tou)
            )
            for i, p in enumerate(t.tou):
                if p.end_hour <= p.start_hour:
                    self.fail(f"tariffs.{tariff_id}.tou[{i}].end_hour", "must be after start_hour")
            lowest_price = min([t.energy_usd_per_kwh, *(p.energy_usd_per_kwh for p in t.tou)])
            if t.export_credit_usd_per_kwh > lowest_price:
                self.fail(
                    f"tariffs.{tariff_id}.export_credit_usd_per_kwh",
                    f"must not exceed the lowest energy price ({lowest_price:g} $/kWh)",
                )
            tariffs[tariff_id] = Tariff(
                tariff_id,
                t.energy_usd_per_kwh,
                t.fixed_usd_per_month,
                t.demand_usd_per_kw_month,
                t.export_credit_usd_per_kwh,
                periods,
                t.source,
            )
        return tariffs

    def dr_programs(self, custom: dict[str, s.DRProgramFile]) -> dict[str, DRProgram]:
        programs = dict(DR_PROGRAMS)
        for program_id, p in custom.items():
            programs[program_id] = DRProgram(
                program_id,
                p.name,
                p.rate_usd_per_kw_season,
                p.expected_events,
                p.expected_event_hours,
                p.source,
            )
        return programs

    def days(self, days: s.DaySet, path: str) -> frozenset[int]:
        if isinstance(days, str):
            return frozenset(_DAY_SETS[days])
        if not days:
            self.fail(path, "must name at least one day")
        return frozenset(_DAY_INDEX[d] for d in days)

    def events(
        self, events: list[s.EventFile], programs: dict[str, DRProgram], tz: ZoneInfo
    ) -> list[DREvent]:
        result, seen = [], set()
        for i, e in enumerate(events):
            path = f"events[{i}]"
            if e.id in seen:
                self.fail(f"{path}.id", f"duplicate event id '{e.id}'")
            seen.add(e.id)
            if e.program not in programs:
                self.fail(
                    f"{path}.program",
                    _unknown("demand-response program", e.program, programs),
                )
            start, end = (
                self.instant(e.start, tz, f"{path}.start"),
                self.instant(e.end, tz, f"{path}.end"),
            )
            if start and end and end <= start:
                self.fail(f"{path}.end", "must be after start")
            announced = self.instant(e.announced, tz, f"{path}.announced") if e.announced else None
            if announced and start and announced > start:
                self.fail(f"{path}.announced", "must not be after start")
            if start and end:
                result.append(DREvent(e.id, e.program, start, end, announced))
        return result

    def outages(
        self, outages: list[s.OutageFile], vehicles_by_site: dict[str, set[str]], tz: ZoneInfo
    ) -> list[Outage]:
        site_ids = set(vehicles_by_site)
        result = []
        for i, o in enumerate(outages):
            path = f"outages[{i}]"
            for j, site_id in enumerate(o.sites):
                if site_id not in site_ids:
                    self.fail(f"{path}.sites[{j}]", _unknown("site", site_id, site_ids))
            start, end = (
                self.instant(o.start, tz, f"{path}.start"),
                self.instant(o.end, tz, f"{path}.end"),
            )
            if start and end and end <= start:
                self.fail(f"{path}.end", "must be after start")
            vehicle_ids = {v for site_id in o.sites for v in vehicles_by_site.get(site_id, set())}
            for j, vehicle_id in enumerate(o.release_route_reserve):
                if vehicle_id not in vehicle_ids:
                    self.fail(
                        f"{path}.release_route_reserve[{j}]",
                        _unknown("vehicle at these sites", vehicle_id, vehicle_ids),
                    )
            if start and end and end > start:
                result.append(
                    Outage(
                        o.id,
                        frozenset(o.sites),
                        start,
                        end,
                        timedelta(seconds=o.enter_service_delay_s),
                        frozenset(o.release_route_reserve),
                    )
                )
        return result

    def charger_downtime(
        self, spells: list[s.ChargerDowntimeFile], sites: list[s.SiteFile], tz: ZoneInfo
    ) -> list[ChargerDowntime]:
        chargers = {site.id: [c.id for c in site.chargers] for site in sites}
        result = []
        for i, d in enumerate(spells):
            path = f"charger_downtime[{i}]"
            if d.site not in chargers:
                self.fail(f"{path}.site", _unknown("site", d.site, chargers))
            elif d.charger not in chargers[d.site]:
                self.fail(
                    f"{path}.charger", _unknown(f"charger at {d.site}", d.charger, chargers[d.site])
                )
            start, end = (
                self.instant(d.start, tz, f"{path}.start"),
                self.instant(d.end, tz, f"{path}.end"),
            )
            if start and end and end <= start:
                self.fail(f"{path}.end", "must be after start")
            elif start and end:
                cause = FailureCause.FAULT if d.cause == "fault" else FailureCause.COMMS
                result.append(ChargerDowntime(d.site, d.charger, cause, start, end))
        return result

    def instant(self, text: str, tz: ZoneInfo, path: str) -> datetime | None:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.fail(path, "must be a date and time like 2026-07-15T15:00")
            return None
        return value if value.tzinfo else value.replace(tzinfo=tz)

    def sites(
        self, sites: list[s.SiteFile], tariffs: dict[str, Tariff], programs: dict[str, DRProgram]
    ) -> list[Site]:
        result, seen = [], set()
        for i, site in enumerate(sites):
            path = f"sites[{i}]"
            if site.id in seen:
                self.fail(f"{path}.id", f"duplicate site id '{site.id}'")
            seen.add(site.id)
            built = self.site(site, path, tariffs, programs)
            if built is not None:
                result.append(built)
        return result

    def site(
        self,
        site: s.SiteFile,
        path: str,
        tariffs: dict[str, Tariff],
        programs: dict[str, DRProgram],
    ) -> Site | None:
        tariff = tariffs.get(site.tariff)
        if tariff is None:
            self.fail(
                f"{path}.tariff",
                _unknown("tariff", site.tariff, tariffs),
            )
        for j, enrollment in enumerate(site.enrollments):
            if enrollment not in programs:
                self.fail(
                    f"{path}.enrollments[{j}]",
                    _unknown("demand-response program", enrollment, programs),
                )
        building = self.building(site.building, f"{path}.building")
        chargers = [self.charger(c, f"{path}.chargers[{j}]") for j, c in enumerate(site.chargers)]
        known = [c.id for c in site.chargers]
        self.unique([c.id for c in site.chargers], f"{path}.chargers", "charger id")
        self.unique([v.id for v in site.vehicles], f"{path}.vehicles", "vehicle id")
        vehicles = [
            self.vehicle(v, f"{path}.vehicles[{j}]", known) for j, v in enumerate(site.vehicles)
        ]
        evses = [v.evse_id for v in vehicles if v is not None]
        for j, v in enumerate(vehicles):
            if v is not None and evses.count(v.evse_id) > 1:
                self.fail(
                    f"{path}.vehicles[{j}].charger",
                    f"charger '{v.evse_id}' is already assigned to another vehicle",
                )
        if tariff is None or building is None or None in chargers or None in vehicles:
            return None
        pv = (
            PVSystem(
                site.pv.kw_dc,
                site.pv.tilt_deg,
                site.pv.azimuth_deg,
                site.pv.inverter_kw_ac,
                site.pv.losses_percent,
            )
            if site.pv
            else None
        )
        return Site(
            site_id=site.id,
            kind=SiteKind(site.kind),
            utility=site.utility,
            service_limit_kw=site.service_limit_kw,
            export_permitted=site.export_permitted,
            tariff=tariff,
            building=building,
            chargers=tuple(c for c in chargers if c is not None),
            vehicles=tuple(v for v in vehicles if v is not None),
            pv=pv,
            enrollments=tuple(site.enrollments),
            failures=failure_model(site.failures) if site.failures is not None else None,
        )

    def unique(self, ids: list[str], path: str, what: str) -> None:
        for j, item in enumerate(ids):
            if ids.index(item) != j:
                self.fail(f"{path}[{j}].id", f"duplicate {what} '{item}'")

    def building(self, b: s.BuildingFile, path: str) -> Building | None:
        sources = [x for x in (b.profile, b.file, b.constant_kw) if x is not None]
        if len(sources) != 1:
            self.fail(
                path,
                "give exactly one of 'profile' (a bundled profile name), "
                "'file' (a CSV path) or 'constant_kw'",
            )
            return None
        if b.essential_share < b.critical_share:
            self.fail(f"{path}.essential_share", "must be ≥ critical_share (tiers are nested)")
        tiers = LoadTiers(b.critical_share, b.essential_share)
        try:
            if b.profile is not None:
                profile = bundled_load_profile(b.profile, f"{path}.profile")
            elif b.file is not None:
                profile = read_load_profile((self.base_dir / b.file).resolve())
            else:
                profile = HourlyProfile(
                    f"constant {b.constant_kw} kW", np.full(8760, float(b.constant_kw or 0.0))
                )
        except (ConfigError, DataError) as error:
            self.guard(f"{path}.{'profile' if b.profile else 'file'}", error)
            return None
        return Building(profile, b.scale, tiers)

    def charger(self, c: s.ChargerFile, path: str) -> Charger | None:
        try:
            model = CHARGER_MODELS.lookup(c.model, f"{path}.model")
        except ConfigError as error:
            self.guard(f"{path}.model", error)
            return None
        return Charger(
            evse_id=c.id,
            model=c.model,
            power_kind=PowerKind(c.power_kind) if c.power_kind else model.power_kind,
            max_charge_kw=_pick(c.max_charge_kw, model.max_charge_kw),
            max_discharge_kw=_pick(c.max_discharge_kw, model.max_discharge_kw),
            protocol=OcppVersion(c.protocol) if c.protocol else model.protocol,
        )

    def vehicle(self, v: s.VehicleFile, path: str, chargers: list[str]) -> Vehicle | None:
        try:
            model = VEHICLE_MODELS.lookup(v.model, f"{path}.model")
        except ConfigError as error:
            self.guard(f"{path}.model", error)
            return None
        evse_id = (
            v.charger if v.charger is not None else (chargers[0] if len(chargers) == 1 else None)
        )
        if evse_id is None:
            self.fail(
                f"{path}.charger",
                f"name the charger this vehicle plugs into; chargers: {', '.join(chargers)}",
            )
        elif evse_id not in chargers:
            self.fail(
                f"{path}.charger",
                f"unknown charger '{evse_id}'; chargers at this site: {', '.join(chargers)}",
            )
        if v.soc_min >= v.soc_max:
            self.fail(f"{path}.soc_min", "must be < soc_max")
        trips = tuple(
            self.trip(t, f"{path}.trips[{k}]", model.kwh_per_mile) for k, t in enumerate(v.trips)
        )
        if evse_id is None or evse_id not in chargers:
            return None
        return Vehicle(
            vehicle_id=v.id,
            model=v.model,
            evse_id=evse_id,
            battery_kwh=_pick(v.battery_kwh, model.battery_kwh),
            soc_min=v.soc_min,
            soc_max=v.soc_max,
            max_charge_kw=_pick(v.max_charge_kw, model.max_charge_kw),
            max_discharge_kw=_pick(v.max_discharge_kw, model.max_discharge_kw),
            v2x_capable=v.v2x_capable if v.v2x_capable is not None else model.v2x_capable,
            charge_efficiency=_pick(v.charge_efficiency, model.charge_efficiency),
            discharge_efficiency=_pick(v.discharge_efficiency, model.discharge_efficiency),
            reserve_soc=v.reserve_soc,
            departure_floor_soc=v.departure_floor_soc,
            degradation_usd_per_kwh=v.degradation_usd_per_kwh,
            initial_soc=v.initial_soc,
            trips=trips,
        )

    def trip(self, t: s.TripFile, path: str, kwh_per_mile: float) -> Trip:
        if (t.energy_kwh is None) == (t.miles is None):
            self.fail(path, "give exactly one of 'energy_kwh' or 'miles'")
        if t.depart == t.return_:
            self.fail(f"{path}.return", "must differ from depart")
        energy = t.energy_kwh if t.energy_kwh is not None else (t.miles or 0.0) * kwh_per_mile
        return Trip(
            self.days(t.days, f"{path}.days"),
            time.fromisoformat(t.depart),
            time.fromisoformat(t.return_),
            energy,
            frozenset(t.months),
            frozenset(t.except_dates),
        )


def failure_model(f: s.FailuresFile) -> FailureModel:
    """The domain failure model of a ``failures:`` section: causes named take the field
    defaults for what they leave out; causes not named are as ``base``."""
    base = FIELD_FAILURES if f.base == "field" else NO_FAILURES
    field = FIELD_FAILURES
    assert field.charger_faults and field.communication_losses
    assert field.late_plug_in and field.early_departure and field.summer_route
    return FailureModel(
        charger_faults=_downtime(f.charger_faults, field.charger_faults, base.charger_faults),
        communication_losses=_downtime(
            f.communication_losses, field.communication_losses, base.communication_losses
        ),
        opt_out_probability=(
            tuple(
                (kind, _pick(getattr(f.opt_out, kind), field.opt_out(kind)))
                for kind in ("home", "business", "school")
            )
            if f.opt_out is not None
            else base.opt_out_probability
        ),
        late_plug_in=_delay(f.late_plug_in, field.late_plug_in, base.late_plug_in),
        early_departure=_delay(f.early_departure, field.early_departure, base.early_departure),
        summer_route=_summer_route(f.summer_route, field.summer_route, base.summer_route),
    )


def _downtime(
    given: s.DowntimeFile | None, field: Downtime, base: Downtime | None
) -> Downtime | None:
    if given is None:
        return base
    return Downtime(
        _pick(given.per_charger_year, field.per_charger_year),
        _pick(given.median_hours, field.median_hours),
        _pick(given.sigma, field.sigma),
    )


def _delay(given: s.DelayFile | None, field: Delay, base: Delay | None) -> Delay | None:
    if given is None:
        return base
    return Delay(
        _pick(given.probability, field.probability),
        _pick(given.median_hours, field.median_hours),
        _pick(given.sigma, field.sigma),
        _pick(given.max_hours, field.max_hours),
    )


def _summer_route(
    given: s.SummerRouteFile | None, field: SummerRoute, base: SummerRoute | None
) -> SummerRoute | None:
    if given is None:
        return base
    return SummerRoute(
        _pick(given.probability, field.probability),
        frozenset(given.months) if given.months is not None else field.months,
        frozenset(_DAY_SETS[given.days])
        if isinstance(given.days, str)
        else frozenset(_DAY_INDEX[d] for d in given.days)
        if given.days
        else field.weekdays,
        time.fromisoformat(given.depart) if given.depart else field.depart_local,
        time.fromisoformat(given.return_) if given.return_ else field.return_local,
        _pick(given.energy_kwh, field.energy_kwh),
    )


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    return UnknownNameError(kind, name, known).issues[0][1]


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value

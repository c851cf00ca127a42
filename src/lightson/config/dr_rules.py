"""Demand-response rule files (``data/dr-programs/*.yaml``) → ``ProgramRules``.

One file per program version, with its source. A new season's rules are a new file (or
``--rules FILE`` on the command line); no code changes.
"""

from __future__ import annotations

from datetime import date, time
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError

from lightson.config.loader import _pydantic_issues
from lightson.config.schema import _Strict
from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError, UnknownNameError
from lightson.programs.rules import ProgramRules, SeasonRules

MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class _Season(_Strict):
    name: str = Field(min_length=1)
    first_day: str = Field(pattern=MONTH_DAY)
    last_day: str = Field(pattern=MONTH_DAY)
    window: tuple[str, str]
    holidays_excluded: bool = False
    max_events: int = Field(ge=1)
    max_event_hours: float = Field(gt=0, le=24)
    rate_usd_per_kw: float = Field(ge=0)
    weekend_bonus_usd_per_kw: float = Field(default=0.0, ge=0)
    expected_events: int = Field(ge=1)
    expected_event_hours: float = Field(gt=0, le=24)


class _Rules(_Strict):
    program_id: str = Field(min_length=1)
    name: str
    sponsors: tuple[str, ...] = ()
    customer_class: Literal["residential", "commercial"]
    source: str = Field(min_length=1)
    notice_hours: float = Field(ge=0)
    performance: Literal["storage-net-discharge"] = "storage-net-discharge"
    cap_to_load_without_export: bool = True
    timezone: str = "America/New_York"
    seasons: list[_Season] = Field(min_length=1)


def parse_dr_rules(text: str, where: str = "") -> ProgramRules:
    """Read one rule file's text; problems are reported by field path."""
    try:
        raw = yaml.safe_load(text)
        document = _Rules.model_validate(raw)
    except yaml.YAMLError as error:
        raise ConfigError.at(where, f"not YAML: {error}") from None
    except ValidationError as error:
        raise ConfigError(
            [(f"{where}:{path}" if where else path, rule) for path, rule in _pydantic_issues(error)]
        ) from None
    seasons = []
    for index, season in enumerate(document.seasons):
        start, end = (_clock(value, f"seasons[{index}].window") for value in season.window)
        if end <= start:
            raise ConfigError.at(f"{where}:seasons[{index}].window", "must end after it starts")
        seasons.append(
            SeasonRules(
                name=season.name,
                first_day=_month_day(season.first_day, f"{where}:seasons[{index}].first_day"),
                last_day=_month_day(season.last_day, f"{where}:seasons[{index}].last_day"),
                window_start=start,
                window_end=end,
                holidays_excluded=season.holidays_excluded,
                max_events=season.max_events,
                max_event_hours=season.max_event_hours,
                rate_usd_per_kw=season.rate_usd_per_kw,
                expected_events=season.expected_events,
                expected_event_hours=season.expected_event_hours,
                weekend_bonus_usd_per_kw=season.weekend_bonus_usd_per_kw,
            )
        )
    return ProgramRules(
        program_id=document.program_id,
        name=document.name,
        customer_class=document.customer_class,
        sponsors=tuple(document.sponsors),
        source=" ".join(document.source.split()),
        notice_hours=document.notice_hours,
        performance=document.performance,
        cap_to_load_without_export=document.cap_to_load_without_export,
        seasons=tuple(seasons),
        timezone=_zone(document.timezone, where),
    )


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError.at(f"{where}:timezone", f"unknown time zone '{name}'") from None


def _clock(text: str, path: str) -> time:
    import re

    if not re.match(CLOCK, text):
        raise ConfigError.at(path, "must look like HH:MM (24-hour clock)")
    return time.fromisoformat(text)


def _month_day(text: str, path: str) -> tuple[int, int]:
    month, day = (int(part) for part in text.split("-"))
    try:
        date(2024, month, day)  # a leap year: 02-29 is a real day
    except ValueError:
        raise ConfigError.at(path, f"{text} is not a day of the year") from None
    return month, day


def bundled_dr_rules() -> dict[str, ProgramRules]:
    """Every rule file shipped with the package, by program id."""
    folder = resources.files("lightson") / "data" / "dr-programs"
    rules = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            parsed = parse_dr_rules(entry.read_text(), where=entry.name)
            rules[parsed.program_id] = parsed
    return rules


def load_dr_rules(name_or_path: str | Path) -> ProgramRules:
    """A bundled program id (``cs-residential-battery`` …) or the path of a rule file."""
    bundled = bundled_dr_rules()
    if str(name_or_path) in bundled:
        return bundled[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError.at(str(path), "no such rule file")
        return parse_dr_rules(path.read_text(), where=str(path))
    raise UnknownNameError("demand-response program", str(name_or_path), bundled)


NO_EVENT_LIMIT = 1_000_000  # a program file's own DR program: no season count to enforce


def program_dr_rules(program: Program) -> dict[str, ProgramRules]:
    """The bundled rules, plus rules for each DR program the program file defines that has
    no rule file of its own (a pilot, a test program): all year, any time of a local day
    (an event starts and ends on the same day), no notice, holiday or count limit; its rate
    and expected events are the program file's. A program file's entry for a program that
    has a rule file (a different rate, say) leaves its rules as they are."""
    rules = bundled_dr_rules()
    for dr in program.dr_programs:
        if dr.program_id in rules:
            continue
        season = SeasonRules(
            name="all-year",
            first_day=(1, 1),
            last_day=(12, 31),
            window_start=time.min,
            window_end=time.max,
            holidays_excluded=False,
            max_events=NO_EVENT_LIMIT,
            max_event_hours=24.0,
            rate_usd_per_kw=dr.rate_usd_per_kw_season,
            expected_events=dr.expected_events,
            expected_event_hours=dr.expected_event_hours,
        )
        rules[dr.program_id] = ProgramRules(
            program_id=dr.program_id,
            name=dr.name,
            customer_class="commercial",
            sponsors=(),
            source=dr.source or "the program file",
            notice_hours=0.0,
            performance="storage-net-discharge",
            cap_to_load_without_export=True,
            seasons=(season,),
            timezone=program.timezone,
        )
    return rules

"""A site's own meter: building load and PV readings its gateway posts
(``POST /api/sites/{id}/meter``). Where fresh readings exist, the live loop plans on them
instead of the profiles (and needs no cautious no-export view), and settlement caps a
non-exporting site's event kW with the metered building load.

Readings are checked before anything is stored (all or none): numbers must be JSON numbers
(``"1"`` is refused), finite, and plausible for the site (:mod:`lightson.domain.plausibility`:
at most 1.5× its service limit, a time within the server's window). A refused post is kept in
``quarantine`` (source ``meter-api``) with its body, so an operator sees what the gateway sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Table, select

from lightson.domain.assets import Site
from lightson.domain.errors import ConfigError
from lightson.domain.plausibility import (
    POWER_RATING_MULTIPLE,
    RULES,
    Implausible,
    check_power_kw,
    check_time,
    max_power_kw,
)
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.db import aware

FRESH = timedelta(minutes=15)  # as the chargers' readings: older says nothing about now
AHEAD = timedelta(minutes=5)  # a gateway's clock may run a little fast, not more


class MeterReading(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: AwareDatetime
    load_kw: float = Field(ge=0, allow_inf_nan=False, strict=True)
    pv_kw: float | None = Field(default=None, ge=0, allow_inf_nan=False, strict=True)


@dataclass(frozen=True)
class Metered:
    at: datetime
    load_kw: float
    pv_kw: float | None


def record_readings(
    store: Store, site: Site, readings: Sequence[Mapping[str, Any]], now: datetime
) -> int:
    """Check and store readings (all or none); a reading sent again for the same time
    replaces the first (a gateway's correction). Returns how many were given. Refused with
    the field named (``readings[2].load_kw: ...``); a refused post is quarantined first."""
    if not readings:
        raise ConfigError.at("readings", "must hold at least one reading")
    parsed, issues = _checked(site, readings, now)
    if issues:
        rows = [_quarantined(site, readings, now, issue) for issue in issues]
        store.write(rows).result(30)
        raise ConfigError((i.field, i.message) for i in issues)
    rows = [
        (
            db.site_meter,
            {
                "site_id": site.site_id,
                "at": r.at.astimezone(UTC),
                "load_kw": r.load_kw,
                "pv_kw": r.pv_kw,
                "received_at": now,
            },
        )
        for r in parsed
    ]
    store.write(rows).result(30)
    return len(rows)


@dataclass(frozen=True)
class _Issue:
    field: str
    value: str | None
    reason: str  # a plausibility rule or the kind of schema error ("float_type")
    message: str


def _checked(
    site: Site, readings: Sequence[Mapping[str, Any]], now: datetime
) -> tuple[list[MeterReading], list[_Issue]]:
    parsed: list[MeterReading] = []
    issues: list[_Issue] = []
    for index, body in enumerate(readings):
        path = f"readings[{index}]"
        try:
            reading = MeterReading.model_validate(body)
        except ValidationError as error:
            issues.extend(
                _Issue(
                    f"{path}." + ".".join(str(p) for p in e["loc"]),
                    None if e["type"] == "missing" else str(e["input"])[:200],
                    e["type"],
                    e["msg"],
                )
                for e in error.errors()
            )
            continue
        if reading.at > now + AHEAD:
            issues.append(
                _Issue(f"{path}.at", reading.at.isoformat(), "timestamp-future", "is in the future")
            )
            continue
        found: list[Implausible | None] = [
            check_time(f"{path}.at", reading.at, now),
            check_power_kw(f"{path}.load_kw", reading.load_kw, site.service_limit_kw),
        ]
        if reading.pv_kw is not None:
            found.append(check_power_kw(f"{path}.pv_kw", reading.pv_kw, site.service_limit_kw))
        issues.extend(
            _Issue(i.field, i.value, i.reason, f"{i.value} is implausible: {_rule(i.reason, site)}")
            for i in found
            if i is not None
        )
        parsed.append(reading)
    return parsed, issues


def _rule(reason: str, site: Site) -> str:
    if reason == "power-range":
        limit_kw = max_power_kw(site.service_limit_kw)
        return (
            f"must be at most {limit_kw:g} kW ({POWER_RATING_MULTIPLE:g} x the site's "
            f"{site.service_limit_kw:g} kW service limit)"
        )
    return RULES[reason]


def _quarantined(
    site: Site, readings: Sequence[Mapping[str, Any]], now: datetime, issue: _Issue
) -> tuple[Table, Mapping[str, Any]]:
    return (
        db.quarantine,
        {
            "received_at": now,
            "source": "meter-api",
            "station_id": None,
            "site_id": site.site_id,
            "action": "POST /api/sites/{site_id}/meter",
            "field": issue.field[:200],
            "value": issue.value,
            "reason": issue.reason[:200],
            "raw": json.dumps({"readings": list(readings)}, default=str),
        },
    )


def latest_reading(store: Store, site_id: str, now: datetime) -> Metered | None:
    """The newest reading no older than ``FRESH`` (``None``: none)."""
    table = db.site_meter
    query = (
        select(table.c.at, table.c.load_kw, table.c.pv_kw)
        .where(
            table.c.site_id == site_id,
            table.c.at <= (now + AHEAD).astimezone(UTC),
            table.c.at >= (now - FRESH).astimezone(UTC),
        )
        .order_by(table.c.at.desc())
        .limit(1)
    )
    with store.engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return Metered(aware(row.at), float(row.load_kw), row.pv_kw)


def metered_load_kwh(
    store: Store,
    site_id: str,
    start: datetime,
    end: datetime,
    counted: Callable[[datetime, datetime], float] | None = None,
) -> tuple[float, float, float]:
    """Building load over [start, end) from the meter: the kWh and hours of it that count,
    and the hours the readings covered in all (each holds until the next, at most
    ``FRESH``). ``counted(a, b)``: the hours of [a, b) that count (default: all of them;
    settlement leaves islanded time out)."""
    table = db.site_meter
    query = (
        select(table.c.at, table.c.load_kw)
        .where(
            table.c.site_id == site_id,
            table.c.at >= (start - FRESH).astimezone(UTC),
            table.c.at < end.astimezone(UTC),
        )
        .order_by(table.c.at)
    )
    with store.engine.connect() as connection:
        rows = [(aware(at), float(kw)) for at, kw in connection.execute(query)]
    energy = counted_h = covered = 0.0
    for i, (at, kw) in enumerate(rows):
        following = rows[i + 1][0] if i + 1 < len(rows) else end
        begin, until = max(at, start), min(following, at + FRESH, end)
        if until <= begin:
            continue
        hours = counted(begin, until) if counted else (until - begin).total_seconds() / 3600
        energy += kw * hours
        counted_h += hours
        covered += (until - begin).total_seconds() / 3600
    return energy, counted_h, covered


def covers(covered_h: float, start: datetime, end: datetime) -> bool:
    """Whether the meter covered nearly all of a window (90 %)."""
    hours = (end - start).total_seconds() / 3600
    return hours > 0 and covered_h >= 0.9 * hours - 1e-9 and not math.isnan(covered_h)

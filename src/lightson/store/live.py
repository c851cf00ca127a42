"""What the database says about each station right now, for the live control loop and the API.

Everything is read back from what the CSMS committed (meter values, transaction events,
charging needs), so a restarted server sees the same state as before its restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update

from lightson.domain.telemetry import PowerLimits
from lightson.store import schema as db
from lightson.store.db import Store, aware
from lightson.store.transactions import ended_at

MESSAGE_CHARS = 200  # setpoints_sent.message
NEEDS_SLACK = timedelta(seconds=60)  # a reading sent with the charging needs counts for them


@dataclass(frozen=True)
class StationState:
    """The latest of one station: ``soc`` (0–1) and ``power_kw`` (+ charging) with the time of
    their readings; ``transaction_id`` of the open transaction (``None``: nothing plugged) and
    ``started_at``, when it started; ``departure``, ``energy_request_kwh`` and
    ``needs_target_soc`` as the vehicle last asked (ISO 15118) at ``needs_at``, with the power
    limits it declared then (``needs_limits``), and ``soc_at_needs``, the reading its energy
    request counts from."""

    station_id: str
    soc: float | None = None
    soc_at: datetime | None = None
    power_kw: float | None = None
    power_at: datetime | None = None
    transaction_id: str | None = None
    evse_id: int | None = None
    started_at: datetime | None = None
    departure: datetime | None = None
    energy_request_kwh: float | None = None
    needs_at: datetime | None = None  # when the vehicle last said what it needs
    needs_target_soc: float | None = None
    soc_at_needs: float | None = None  # the state of charge its energy request counts from
    needs_limits: PowerLimits = field(default_factory=PowerLimits)

    @property
    def plugged(self) -> bool:
        return self.transaction_id is not None

    def declared_limits(self, slack: timedelta) -> PowerLimits:
        """The power limits the vehicle plugged in now declared in its latest charging needs.
        None when nothing is plugged or those needs came from an earlier car: sent more than
        ``slack`` before this session started (a charger's clock may stamp the needs a moment
        before the Started event)."""
        if (
            not self.plugged
            or self.needs_at is None
            or (self.started_at is not None and self.needs_at < self.started_at - slack)
        ):
            return PowerLimits()
        return self.needs_limits


def station_states(store: Store, station_ids: Iterable[str]) -> dict[str, StationState]:
    """The state of each station named (every one gets an entry, empty if nothing is known)."""
    ids = sorted(set(station_ids))
    found: dict[str, dict[str, object]] = {i: {} for i in ids}
    if not ids:
        return {}
    samples = db.meter_samples
    with store.engine.connect() as connection:
        for column, name in ((samples.c.soc, "soc"), (samples.c.power_kw, "power_kw")):
            latest = (
                select(func.max(samples.c.id).label("id"))
                .where(samples.c.station_id.in_(ids), column.is_not(None))
                .group_by(samples.c.station_id)
                .subquery()
            )
            query = select(samples.c.station_id, column, samples.c.at).join(
                latest, samples.c.id == latest.c.id
            )
            for station_id, value, at in connection.execute(query):
                found[station_id][name] = float(value)
                found[station_id][f"{name.split('_')[0]}_at"] = aware(at)
        events = db.transaction_events
        open_query = (
            select(
                events.c.station_id,
                events.c.transaction_id,
                func.max(events.c.evse_id),
                func.min(events.c.at),
                func.min(events.c.id),
            )
            .where(events.c.station_id.in_(ids))
            .group_by(events.c.station_id, events.c.transaction_id)
            .having(ended_at().is_(None))  # a CSMS closing counts, unless reopened
            .order_by(func.min(events.c.id))
        )
        for station_id, transaction_id, evse_id, started, _ in connection.execute(open_query):
            found[station_id]["transaction_id"] = transaction_id  # the newest open one wins
            found[station_id]["evse_id"] = evse_id
            found[station_id]["started_at"] = aware(started)
        needs = db.charging_needs
        latest_needs = (
            select(func.max(needs.c.id).label("id"))
            .where(needs.c.station_id.in_(ids))
            .group_by(needs.c.station_id)
            .subquery()
        )
        query_needs = select(
            needs.c.station_id,
            needs.c.departure,
            needs.c.energy_request_kwh,
            needs.c.at,
            needs.c.target_soc,
            needs.c.max_charge_kw,
            needs.c.max_discharge_kw,
            needs.c.min_charge_kw,
            needs.c.min_discharge_kw,
        ).join(latest_needs, and_(needs.c.id == latest_needs.c.id))
        for station_id, departure, energy_kwh, at, target, *limits in connection.execute(
            query_needs
        ):
            found[station_id]["needs_limits"] = PowerLimits(*limits)
            found[station_id]["departure"] = aware(departure) if departure else None
            found[station_id]["energy_request_kwh"] = energy_kwh
            found[station_id]["needs_at"] = aware(at)
            found[station_id]["needs_target_soc"] = target
            before = (
                select(samples.c.soc)
                .where(
                    samples.c.station_id == station_id,
                    samples.c.soc.is_not(None),
                    samples.c.at <= (aware(at) + NEEDS_SLACK).astimezone(UTC),
                )
                .order_by(samples.c.at.desc(), samples.c.id.desc())
                .limit(1)
            )
            found[station_id]["soc_at_needs"] = connection.execute(before).scalar()
    return {i: StationState(i, **values) for i, values in found.items()}  # type: ignore[arg-type]


def recent_samples(
    store: Store, station_ids: Iterable[str], since: datetime, limit: int = 20_000
) -> list[dict[str, Any]]:
    """Meter samples of the stations from ``since`` on, oldest first: the newest ``limit``
    of them when there are more."""
    samples = db.meter_samples
    query = (
        select(
            samples.c.station_id,
            samples.c.evse_id,
            samples.c.at,
            samples.c.power_kw,
            samples.c.soc,
            samples.c.energy_imported_kwh,
            samples.c.energy_exported_kwh,
        )
        .where(
            samples.c.station_id.in_(sorted(set(station_ids))),
            samples.c.at >= since.astimezone(UTC),
        )
        .order_by(samples.c.at.desc(), samples.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as connection:
        rows = [{**row._mapping, "at": aware(row.at)} for row in connection.execute(query)]
    return rows[::-1]


def held_setpoints(
    store: Store, station_ids: Iterable[str], now: datetime
) -> dict[str, tuple[float, datetime]]:
    """The setpoint each station still holds at ``now`` (kW, + charging) and when it was
    sent: its newest one, where the station accepted it and it has not expired. A station
    whose newest was refused, or has expired, is left out (it follows its default)."""
    ids = sorted(set(station_ids))
    if not ids:
        return {}
    sent = db.setpoints_sent
    newest = (
        select(func.max(sent.c.id).label("id"))
        .where(sent.c.station_id.in_(ids))
        .group_by(sent.c.station_id)
        .subquery()
    )
    query = select(
        sent.c.station_id, sent.c.power_kw, sent.c.valid_until, sent.c.status, sent.c.sent_at
    ).join(newest, sent.c.id == newest.c.id)
    with store.engine.connect() as connection:
        rows = connection.execute(query).all()
    return {
        station_id: (float(power_kw), aware(sent_at))
        for station_id, power_kw, valid_until, status, sent_at in rows
        if status == "Accepted" and aware(valid_until) > now
    }


def registered_ratings(store: Store, station_ids: Iterable[str]) -> dict[str, float]:
    """The charging rating (kW) each of the stations was registered with (``lightson station
    add --max-charge-kw``); stations not registered are left out."""
    stations = db.stations
    query = select(stations.c.id, stations.c.max_charge_kw).where(
        stations.c.id.in_(sorted(set(station_ids)))
    )
    with store.engine.connect() as connection:
        return {station_id: float(kw) for station_id, kw in connection.execute(query)}


def note_last_setpoint(store: Store, station_id: str, note: str) -> None:
    """Add ``note`` (what was learned from the station's answer or meter) to the message of
    the setpoint last sent to the station."""
    sent = db.setpoints_sent
    last = select(func.max(sent.c.id)).where(sent.c.station_id == station_id).scalar_subquery()
    with store.engine.begin() as connection:
        row = connection.execute(select(sent.c.id, sent.c.message).where(sent.c.id == last)).first()
        if row is None:
            return
        note = note[:MESSAGE_CHARS]
        room = MESSAGE_CHARS - len(note) - 2  # the station's own words are cut, not the note
        message = f"{row.message[:room]}; {note}" if row.message and room > 0 else note
        connection.execute(update(sent).where(sent.c.id == row.id).values(message=message))

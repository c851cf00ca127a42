"""The power each vehicle may take or give at this tick: the least of what everyone says.

A vehicle's limits come from four places, and the tightest counts (``effective_site``):

- the program file: the vehicle (its catalog model) and the charger;
- the registered station: ``lightson station add --max-charge-kw`` bounds charging;
- the vehicle itself, in the charging needs of its current session (ISO 15118 /
  ``NotifyEVChargingNeeds``): maximum and minimum charge and discharge powers;
- what the session showed the charger accepts (``SessionLimits``): a ``Rejected`` setpoint
  bounds that direction by the largest one the charger accepted in this session (for a
  discharge with none accepted, no discharge for the rest of the session); a charger whose
  metered power stays well below the setpoint it accepted, for consecutive readings while the
  setpoint held, is taken at what it delivered, for an hour.

The site the loop plans and clamps with carries these limits (``dataclasses.replace`` of its
vehicles and chargers), so the optimizer and the safety layer both see them. A minimum above
the maximum left in its direction closes that direction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from lightson.domain.assets import Charger, Site, Vehicle
from lightson.domain.telemetry import PowerLimits
from lightson.store import Store
from lightson.store.live import (
    StationState,
    note_last_setpoint,
    recent_samples,
    registered_ratings,
)

CLAMP_SHARE = 0.8  # metered below this share of the setpoint: the charger held it back
CLAMP_READINGS = 3  # ... for this many readings in a row
CLAMP_SETTLE = timedelta(seconds=30)  # readings this soon after a new setpoint don't count
CLAMP_MIN_KW = 1.0  # smaller setpoints are not checked (meter noise)
METERED_FOR = timedelta(hours=1)  # a limit read from the meter holds this long (a taper ends)
READINGS_FOR = timedelta(hours=2)  # a setpoint held longer is checked on its last 2 h
SAME_SHARE = 0.05  # a setpoint within 5 % of the held one (same sign) continues to hold it
TOLERANCE_KW = 1e-6


def limited_site(
    site: Site,
    states: Mapping[str, StationState],
    store: Store,
    sessions: SessionLimits,
    now: datetime,
    session_slack: timedelta,
    islanded: bool = False,
) -> tuple[Site, dict[str, str]]:
    """The site with this tick's limits (``effective_site``), after checking each plugged
    charger's readings against the setpoint it holds (``SessionLimits.metered``); also what
    was learned from the meters, by station id, each noted on the setpoint last sent there.
    Each charger of the program is the station with its ``evse_id``; ``session_slack``: how
    long before its session a vehicle's charging needs still count for it. ``islanded``: the
    meters are not checked (a vehicle carrying an island gives what the building draws, not
    its setpoint: that is no sign of a charger holding back)."""
    ids = [c.evse_id for c in site.chargers]
    held = {
        i: since
        for i in ids
        if not islanded and (since := sessions.held_since(i, states[i].transaction_id)) is not None
    }
    notes: dict[str, str] = {}
    if held:
        rows = recent_samples(store, held, max(min(held.values()), now - READINGS_FOR))
        for station_id in held:
            readings = [
                (row["at"], float(row["power_kw"]))
                for row in rows
                if row["station_id"] == station_id and row["power_kw"] is not None
            ]
            note = sessions.metered(station_id, states[station_id].transaction_id, readings, now)
            if note is not None:
                notes[station_id] = note
                note_last_setpoint(store, station_id, note)
    declared = {i: states[i].declared_limits(session_slack) for i in ids}
    learned = {i: sessions.limits(i, states[i].transaction_id, now) for i in ids}
    return effective_site(site, declared, registered_ratings(store, ids), learned), notes


def effective_site(
    site: Site,
    declared: Mapping[str, PowerLimits],
    ratings: Mapping[str, float],
    learned: Mapping[str, PowerLimits],
) -> Site:
    """``site`` with each vehicle's and charger's limits narrowed to the tightest said, by
    EVSE id: ``declared`` by the vehicle plugged there now, ``ratings`` the charger's
    registered charging rating (kW), ``learned`` from the charger's answers and meter. The
    same ``site`` when nothing narrows it."""
    chargers = tuple(_rated(c, ratings.get(c.evse_id)) for c in site.chargers)
    by_evse = {c.evse_id: c for c in chargers}
    vehicles = tuple(
        _narrowed(
            v,
            by_evse[v.evse_id],
            declared.get(v.evse_id, PowerLimits()),
            learned.get(v.evse_id, PowerLimits()),
        )
        for v in site.vehicles
    )
    if chargers == site.chargers and vehicles == site.vehicles:
        return site
    return replace(site, chargers=chargers, vehicles=vehicles)


def _rated(charger: Charger, rating_kw: float | None) -> Charger:
    if rating_kw is None or rating_kw >= charger.max_charge_kw:
        return charger
    return replace(charger, max_charge_kw=max(rating_kw, 0.0))


def _narrowed(
    vehicle: Vehicle, charger: Charger, declared: PowerLimits, learned: PowerLimits
) -> Vehicle:
    max_charge_kw = _least(vehicle.max_charge_kw, declared.max_charge_kw, learned.max_charge_kw)
    max_discharge_kw = _least(
        vehicle.max_discharge_kw, declared.max_discharge_kw, learned.max_discharge_kw
    )
    min_charge_kw = max(vehicle.min_charge_kw, declared.min_charge_kw or 0.0)
    min_discharge_kw = max(vehicle.min_discharge_kw, declared.min_discharge_kw or 0.0)
    # No power between 0 and the minimum, none above the maximum: if the minimum is above
    # what the vehicle and charger allow, only 0 is left.
    if min_charge_kw > min(max_charge_kw, charger.max_charge_kw) + TOLERANCE_KW:
        max_charge_kw = 0.0
    if min_discharge_kw > min(max_discharge_kw, charger.max_discharge_kw) + TOLERANCE_KW:
        max_discharge_kw = 0.0
    narrowed = replace(
        vehicle,
        max_charge_kw=max_charge_kw,
        max_discharge_kw=max_discharge_kw,
        min_charge_kw=min_charge_kw,
        min_discharge_kw=min_discharge_kw,
    )
    return vehicle if narrowed == vehicle else narrowed


def _least(kw: float, *said: float | None) -> float:
    return min([kw, *(max(s, 0.0) for s in said if s is not None)])


@dataclass
class _Session:
    """What one charging session (station, transaction) showed about its charger."""

    transaction_id: str
    accepted_kw: dict[int, float] = field(default_factory=dict)  # by sign: largest magnitude
    refused: dict[int, float] = field(default_factory=dict)  # by sign: limit for the session
    metered: dict[int, float] = field(default_factory=dict)  # by sign: limit until ...
    metered_until: datetime | None = None
    held_kw: float | None = None  # the setpoint the charger accepted last
    held_since: datetime | None = None  # ... held (within SAME_SHARE) since

    def limits(self, now: datetime) -> PowerLimits:
        bounds = [self.refused]
        if self.metered_until is not None and now < self.metered_until:
            bounds.append(self.metered)
        charge = [b[1] for b in bounds if 1 in b]
        discharge = [b[-1] for b in bounds if -1 in b]
        return PowerLimits(
            max_charge_kw=min(charge) if charge else None,
            max_discharge_kw=min(discharge) if discharge else None,
        )


class SessionLimits:
    """Per charging session, the limits its charger showed it accepts (module docstring).

    One session per station is kept: a new transaction at a station starts afresh. Kept in
    memory: a restarted server learns them again."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def _session(self, station_id: str, transaction_id: str) -> _Session:
        session = self._sessions.get(station_id)
        if session is None or session.transaction_id != transaction_id:
            session = self._sessions[station_id] = _Session(transaction_id)
        return session

    def limits(self, station_id: str, transaction_id: str | None, now: datetime) -> PowerLimits:
        """What the session learned (nothing for no transaction)."""
        if transaction_id is None:
            return PowerLimits()
        return self._session(station_id, transaction_id).limits(now)

    def answered(
        self,
        station_id: str,
        transaction_id: str | None,
        power_kw: float,
        status: str,
        now: datetime,
    ) -> str | None:
        """Learn from the station's answer to a setpoint; what was learned, or ``None``."""
        if transaction_id is None:
            return None
        session = self._session(station_id, transaction_id)
        if abs(power_kw) <= TOLERANCE_KW:
            if status == "Accepted":  # it holds 0 now: its meter says nothing of a limit
                session.held_kw = session.held_since = None
            return None
        sign = 1 if power_kw > 0 else -1
        magnitude_kw = abs(power_kw)
        if status == "Accepted":
            session.accepted_kw[sign] = max(session.accepted_kw.get(sign, 0.0), magnitude_kw)
            held = session.held_kw
            if (
                held is None
                or held * power_kw <= 0
                or abs(power_kw - held) > SAME_SHARE * abs(held)
            ):
                session.held_since = now
            session.held_kw = power_kw
            return None
        if status != "Rejected":
            return None  # no answer, or an error: nothing said about power
        smaller = [kw for s, kw in session.accepted_kw.items() if s == sign and kw < magnitude_kw]
        if smaller:
            learned_kw = max(smaller)
        elif sign < 0:
            learned_kw = 0.0  # it refuses to discharge: not again in this session
        else:
            return None  # a charge refused with nothing smaller accepted: nothing to go on
        if learned_kw >= session.refused.get(sign, math.inf):
            return None
        session.refused[sign] = learned_kw
        return f"rejected: at most {learned_kw:.1f} kW of {_direction(sign)} this session"

    def held_since(self, station_id: str, transaction_id: str | None) -> datetime | None:
        """Since when the session's charger holds its last accepted setpoint (``None``:
        none)."""
        session = self._sessions.get(station_id)
        if session is None or session.transaction_id != transaction_id:
            return None
        return session.held_since

    def metered(
        self,
        station_id: str,
        transaction_id: str | None,
        readings: Sequence[tuple[datetime, float]],
        now: datetime,
    ) -> str | None:
        """Learn from the station's meter: ``readings`` are (time, kW + charging), oldest
        first. When the last ``CLAMP_READINGS`` since the held setpoint settled all delivered
        less than ``CLAMP_SHARE`` of it, its direction is bounded by the most they delivered,
        for ``METERED_FOR``. What was learned, or ``None``."""
        session = self._sessions.get(station_id)
        if session is None or session.transaction_id != transaction_id:
            return None
        held, since = session.held_kw, session.held_since
        if held is None or since is None or abs(held) < CLAMP_MIN_KW:
            return None
        settled = [kw for at, kw in readings if at >= since + CLAMP_SETTLE]
        if len(settled) < CLAMP_READINGS:
            return None
        sign = 1 if held > 0 else -1
        delivered = [max(sign * kw, 0.0) for kw in settled[-CLAMP_READINGS:]]
        if max(delivered) >= CLAMP_SHARE * abs(held):
            return None
        learned_kw = math.floor(max(delivered) * 10) / 10  # to 0.1 kW, down
        if session.metered_until is None or now >= session.metered_until:
            session.metered = {}
        session.metered[sign] = learned_kw
        session.metered_until = now + METERED_FOR
        session.held_since = now  # these readings are spent
        return (
            f"clamped: {learned_kw:.1f} kW of {_direction(sign)} metered for "
            f"{abs(held):.1f} kW asked; at most that for {METERED_FOR.total_seconds() / 3600:g} h"
        )


def _direction(sign: int) -> str:
    return "charge" if sign > 0 else "discharge"

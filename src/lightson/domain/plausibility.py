"""Physical plausibility of readings: one rule per quantity, shared by every edge.

A reading that breaks a rule is *implausible*: the edge that received it keeps it out of the
store the planner reads, records it (with the raw frame or body) in quarantine and says so the
way its protocol allows (``docs/csms.md``, ``docs/operations.md``). The rules are pure: each
takes the value, what it is compared with (a rating, the server's clock) and the field path to
name, and returns an :class:`Implausible` or ``None``.

Rules (``reason`` is the rule's name, used as the quarantine reason and the metric label):

- ``not-finite``: every number is finite (no ``inf``, ``nan``); ``not-a-number``: text that
  should hold a number does not (an edge that cannot refuse the message leaves it out);
- ``soc-range``: a state of charge is a fraction in [0, 1] (0–100 %);
- ``power-range``: ``|power_kw| <= POWER_RATING_MULTIPLE × rating_kw`` (the charger's rating
  at a station, the service limit at a site's meter); without a rating,
  ``|power_kw| <= UNRATED_MAX_POWER_KW``;
- ``energy-range``: an energy register is in [0, ``MAX_REGISTER_KWH``];
- ``timestamp-offset``: a time carries a UTC offset (a local time without one is ambiguous);
- ``timestamp-future`` / ``timestamp-stale``: a time lies in
  [now − ``MAX_AGE``, now + ``MAX_AHEAD``].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

# A meter's reading above its charger's nameplate is normal within measurement error and the
# short overshoot of a control step; 1.5× leaves room for both and for a rating registered
# low, while 1e308 W, a multiplier of 9 (7 GW) or a home drawing 1 MW stay far outside.
POWER_RATING_MULTIPLE = 1.5
# Without a rating: the largest charger standard (MCS, 3.75 MW) with room to spare.
UNRATED_MAX_POWER_KW = 4000.0
# A 350 kW charger running without pause for 300 years: no real register gets there.
MAX_REGISTER_KWH = 1e9
# A station's clock may run a little fast (NTP-less chargers drift minutes a month); more than
# this is a clock that is wrong, and a reading from the future would hold as "fresh".
MAX_AHEAD = timedelta(minutes=10)
# Stations queue transaction messages while offline and send them on reconnect; OCPP sets no
# bound. A month covers an outage across a billing period; older readings cannot change any
# plan and mostly come from a clock reset to its epoch (1970, 2000).
MAX_AGE = timedelta(days=31)


@dataclass(frozen=True)
class Implausible:
    """One value that breaks a rule: where it was (``meterValue[0].sampledValue[2].value``),
    what it was (as text, cut to 200 characters) and the rule's name."""

    field: str
    value: str
    reason: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.value} breaks {self.reason} ({RULES[self.reason]})"


RULES = {
    "not-finite": "must be a finite number",
    "not-a-number": "must be a decimal number",
    "soc-range": "a state of charge is 0-100 %",
    "power-range": f"power within {POWER_RATING_MULTIPLE}x the rating",
    "energy-range": f"an energy register is 0 to {MAX_REGISTER_KWH:.0e} kWh",
    "timestamp-offset": "a time must carry a UTC offset",
    "timestamp-future": f"no more than {int(MAX_AHEAD.total_seconds() // 60)} min ahead",
    "timestamp-stale": f"no older than {MAX_AGE.days} days",
}


def _found(field: str, value: object, reason: str) -> Implausible:
    return Implausible(field, str(value)[:200], reason)


def check_finite(field: str, value: float) -> Implausible | None:
    return None if math.isfinite(value) else _found(field, value, "not-finite")


def check_soc(field: str, soc: float) -> Implausible | None:
    """``soc`` as a fraction (0–1), already scaled from percent."""
    if not math.isfinite(soc):
        return _found(field, soc, "not-finite")
    return None if 0.0 <= soc <= 1.0 else _found(field, soc, "soc-range")


def max_power_kw(rating_kw: float) -> float:
    """The largest plausible power magnitude at equipment rated ``rating_kw`` (≤ 0: unknown)."""
    if rating_kw > 0 and math.isfinite(rating_kw):
        return POWER_RATING_MULTIPLE * rating_kw
    return UNRATED_MAX_POWER_KW


def check_power_kw(field: str, power_kw: float, rating_kw: float) -> Implausible | None:
    """Either sign: ``power_kw`` may be import or export, charge or discharge."""
    if not math.isfinite(power_kw):
        return _found(field, power_kw, "not-finite")
    return (
        None if abs(power_kw) <= max_power_kw(rating_kw) else _found(field, power_kw, "power-range")
    )


def check_energy_kwh(field: str, energy_kwh: float) -> Implausible | None:
    if not math.isfinite(energy_kwh):
        return _found(field, energy_kwh, "not-finite")
    if 0.0 <= energy_kwh <= MAX_REGISTER_KWH:
        return None
    return _found(field, energy_kwh, "energy-range")


def check_time(field: str, at: datetime, now: datetime) -> Implausible | None:
    """``at`` must be aware and within [now − MAX_AGE, now + MAX_AHEAD]."""
    if at.tzinfo is None or at.utcoffset() is None:
        return _found(field, at.isoformat(), "timestamp-offset")
    if at > now + MAX_AHEAD:
        return _found(field, at.isoformat(), "timestamp-future")
    if at < now - MAX_AGE:
        return _found(field, at.isoformat(), "timestamp-stale")
    return None


__all__ = [
    "MAX_AGE",
    "MAX_AHEAD",
    "MAX_REGISTER_KWH",
    "POWER_RATING_MULTIPLE",
    "RULES",
    "UNRATED_MAX_POWER_KW",
    "Implausible",
    "check_energy_kwh",
    "check_finite",
    "check_power_kw",
    "check_soc",
    "check_time",
    "max_power_kw",
]

"""The one place where domain values meet OCPP's signs, units and names.

Domain rule: power is + into the vehicle, − out of it, in kW. OCPP speaks W, and each version
and dialect says "discharge" its own way:

- OCPP 2.1 ``CentralSetpoint``: a signed ``setpoint`` (− discharge) and a ``dischargeLimit``
  that is ≤ 0; ``V2XChargingParameters.maxDischargePower`` from the vehicle is *positive*.
- OCPP 2.0.1 and 1.6J have no discharge vocabulary: bidirectional chargers in the field take a
  negative ``limit`` (vendor-agreed, the ``negative-limit`` dialect).
- A charger with no V2X (``charge-only``) never gets a negative number: discharge requests
  become 0 W.

The charge-only default profile goes to every station at boot (stack level 0), and every
setpoint profile expires with its ``valid_until``; OCPP 2.1 profiles also carry
``maxOfflineDuration`` with ``invalidAfterOfflineDuration``, so a charger that loses us drops
back to charging only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from lightson.csms.wire import OcppVersion
from lightson.domain.plan import Setpoint
from lightson.domain.plausibility import (
    Implausible,
    check_energy_kwh,
    check_finite,
    check_power_kw,
    check_soc,
    check_time,
)
from lightson.domain.telemetry import ChargingNeeds, MeterSample

WATTS_PER_KW = 1000.0
DEFAULT_PROFILE_ID = 1
SETPOINT_STACK_LEVEL = 1
DEFAULT_MAX_OFFLINE_S = 300
BIDIRECTIONAL_TRANSFERS = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})


class Dialect(Enum):
    """How a station is told to discharge."""

    CENTRAL_SETPOINT = "central-setpoint"  # OCPP 2.1 V2X
    NEGATIVE_LIMIT = "negative-limit"  # 2.0.1 / 1.6J bidirectional chargers in the field
    CHARGE_ONLY = "charge-only"  # no discharge at all

    def check(self, version: OcppVersion) -> None:
        if self is Dialect.CENTRAL_SETPOINT and version is not OcppVersion.V21:
            raise ValueError(
                f"dialect {self.value!r} needs OCPP 2.1, the station speaks {version.value}"
            )


def timestamp(at: datetime) -> str:
    """OCPP date-time: UTC with a ``Z`` (the standard's examples; some chargers need it)."""
    if at.tzinfo is None:
        raise ValueError("OCPP times must carry a time zone")
    text = at.astimezone(UTC).isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """An OCPP date-time as UTC (stations may send any offset; storage keeps UTC). A time
    without an offset is refused (``ValueError``): it could be any zone's (the wire layer
    answers it ``FormatViolation`` before it gets here)."""
    at = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return at.astimezone(UTC)


def watts(setpoint: Setpoint, dialect: Dialect) -> float:
    """The setpoint in W with OCPP's sign (+ charge, − discharge), 0 W for charge-only."""
    power_w = setpoint.power_kw * WATTS_PER_KW
    if dialect is Dialect.CHARGE_ONLY:
        power_w = max(power_w, 0.0)
    return round(power_w, 1) + 0.0  # one decimal (1.6 schemas); "+ 0.0" turns −0.0 into 0.0


def setpoint_profile(
    setpoint: Setpoint,
    version: OcppVersion,
    dialect: Dialect,
    *,
    evse_id: int,
    profile_id: int,
    now: datetime,
    transaction_id: str | None = None,
    max_offline_s: int = DEFAULT_MAX_OFFLINE_S,
) -> dict[str, Any]:
    """A ``SetChargingProfile`` request payload (wire names) that holds the setpoint at one
    EVSE from ``now`` until ``setpoint.valid_until``."""
    dialect.check(version)
    power_w = watts(setpoint, dialect)
    purpose = "TxProfile" if transaction_id is not None else "TxDefaultProfile"
    if version is OcppVersion.V16:
        profile16: dict[str, Any] = {
            "chargingProfileId": profile_id,
            "stackLevel": SETPOINT_STACK_LEVEL,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "validTo": timestamp(setpoint.valid_until),
            "chargingSchedule": {
                "startSchedule": timestamp(now),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": power_w}],
            },
        }
        if transaction_id is not None:
            profile16["transactionId"] = int(transaction_id)
        return {"connectorId": evse_id, "csChargingProfiles": profile16}
    if dialect is Dialect.CENTRAL_SETPOINT:
        period: dict[str, Any] = {
            "startPeriod": 0,
            "operationMode": "CentralSetpoint",
            "setpoint": power_w,
        }
        if power_w < 0:
            period["dischargeLimit"] = power_w
    else:
        period = {"startPeriod": 0, "limit": power_w}
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": SETPOINT_STACK_LEVEL,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "validTo": timestamp(setpoint.valid_until),
        "chargingSchedule": [
            {
                "id": profile_id,
                "startSchedule": timestamp(now),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [period],
            }
        ],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    if version is OcppVersion.V21:
        profile["maxOfflineDuration"] = max_offline_s
        profile["invalidAfterOfflineDuration"] = True
    return {"evseId": evse_id, "chargingProfile": profile}


def schedule_update(setpoint: Setpoint, profile_id: int) -> dict[str, Any]:
    """An OCPP 2.1 ``UpdateDynamicSchedule`` payload moving a ``Dynamic`` profile to the
    setpoint."""
    power_w = watts(setpoint, Dialect.CENTRAL_SETPOINT)
    update: dict[str, Any] = {"setpoint": power_w}
    if power_w < 0:
        update["dischargeLimit"] = power_w
    return {"chargingProfileId": profile_id, "scheduleUpdate": update}


def charge_only_default(version: OcppVersion, max_charge_kw: float) -> dict[str, Any]:
    """The station-wide ``TxDefaultProfile`` installed at boot: charge up to the charger's
    rating, never discharge. Stack level 0, so every setpoint profile sits above it. It
    carries no ``maxOfflineDuration``: it stays valid while the station is offline, and is
    what a station falls back to when our setpoint profiles expire or go invalid offline
    (OCPP 2.1: "reverts back to a valid profile with a lower stack level")."""
    limit_w = round(max(max_charge_kw, 0.0) * WATTS_PER_KW, 1)
    if version is OcppVersion.V16:
        return {
            "connectorId": 0,
            "csChargingProfiles": {
                "chargingProfileId": DEFAULT_PROFILE_ID,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit_w}],
                },
            },
        }
    period: dict[str, Any] = {"startPeriod": 0, "limit": limit_w}
    if version is OcppVersion.V21:
        period["operationMode"] = "ChargingOnly"
    return {
        "evseId": 0,
        "chargingProfile": {
            "id": DEFAULT_PROFILE_ID,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {
                    "id": DEFAULT_PROFILE_ID,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [period],
                }
            ],
        },
    }


def islanded_default(version: OcppVersion) -> dict[str, Any]:
    """The default that replaces :func:`charge_only_default` while the station's site is
    islanded: the same station-wide ``TxDefaultProfile`` (same id, so it replaces it, K01.FR.05)
    at 0 W, ``ChargingOnly``. Whatever our setpoint profiles do when they expire or the
    station loses us, a vehicle then never charges from the island. ``ChargingOnly`` at 0 W
    rather than ``Idle``: every smart-charging station takes it, while ``Idle`` is one of the
    V2X modes a 2.1 station may not list in ``V2XChargingCtrlr.SupportedOperationModes``."""
    return charge_only_default(version, 0.0)


# --- what chargers tell us --------------------------------------------------------------------

_POWER_UNITS_W = {"W": 1.0, "kW": 1000.0}
_ENERGY_UNITS_WH = {"Wh": 1.0, "kWh": 1000.0}
_TOTAL_PHASES = (None,)
_LINE_PHASES = ("L1", "L2", "L3")


class UnreadableValueError(ValueError):
    """A 1.6 ``value`` in the ``Raw`` format that is not a decimal number (``"abc"``,
    ``"inf"``, ``"NaN"``): OCPP 1.6 says a raw value is one, so the message is refused."""

    def __init__(self, field: str, value: object) -> None:
        super().__init__(f"{field}: {str(value)[:50]!r} is not a decimal number")
        self.field = field
        self.value = str(value)[:200]


@dataclass(frozen=True)
class MeterReadings:
    """What a ``meterValue`` list says: the plausible samples, and what was left out."""

    samples: list[MeterSample]
    implausible: list[Implausible]


# A 1.6 "Raw" value: a decimal number as text (an exponent is tolerated; Python's float()
# would also take "inf", "nan", "1_000" and spaces).
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_meter_values(
    station_id: str,
    evse_id: int,
    meter_values: Sequence[Mapping[str, Any]],
    version: OcppVersion,
    *,
    rating_kw: float = 0.0,
    now: datetime | None = None,
    field: str = "meterValue",
    refuse_unreadable: bool = True,
) -> MeterReadings:
    """``meterValue`` entries (MeterValues, TransactionEvent, 1.6 ``transactionData``) as
    domain samples, each reading checked (:mod:`lightson.domain.plausibility`).

    Power is import − export (kW); a reading with no total but all three phases is summed.
    A 1.6 ``value`` is a string; a 2.x one a number with an optional ``unitOfMeasure``
    (``unit`` and a power-of-ten ``multiplier``). An implausible reading is left out of its
    sample (the sample's other readings stay); a sample whose time is implausible (outside
    ``now``'s window) is left out whole. ``rating_kw`` is the charger's (0: unknown).
    Raises :class:`UnreadableValueError` for a 1.6 value that is not a number, or with
    ``refuse_unreadable=False`` leaves it out as ``not-a-number``."""
    samples: list[MeterSample] = []
    implausible: list[Implausible] = []
    for i, meter_value in enumerate(meter_values):
        before = len(implausible)
        readings, found = _readings(
            meter_value, version, rating_kw, f"{field}[{i}]", refuse_unreadable
        )
        implausible.extend(found)
        at = parse_timestamp(str(meter_value["timestamp"]))
        late = None if now is None else check_time(f"{field}[{i}].timestamp", at, now)
        if late is not None:
            implausible.append(late)
            continue
        power_kw = _net(readings, "Power.Active.Import", "Power.Active.Export", 1000.0)
        total = None if power_kw is None else check_power_kw(f"{field}[{i}]", power_kw, rating_kw)
        if total is not None:  # each phase plausible, their sum not
            implausible.append(total)
            power_kw = None
        sample = MeterSample(
            station_id=station_id,
            evse_id=evse_id,
            at=at,
            power_kw=power_kw,
            energy_imported_kwh=_total(readings, "Energy.Active.Import.Register", 1000.0),
            energy_exported_kwh=_total(readings, "Energy.Active.Export.Register", 1000.0),
            soc=_total(readings, "SoC", 100.0),
        )
        values = (sample.power_kw, sample.energy_imported_kwh, sample.energy_exported_kwh)
        if len(implausible) == before or any(v is not None for v in (*values, sample.soc)):
            samples.append(sample)  # (nothing left of it once the implausible went: none)
    return MeterReadings(samples, implausible)


def meter_samples(
    station_id: str,
    evse_id: int,
    meter_values: Sequence[Mapping[str, Any]],
    version: OcppVersion,
) -> list[MeterSample]:
    """The plausible samples of :func:`read_meter_values` (no rating, no clock)."""
    return read_meter_values(station_id, evse_id, meter_values, version).samples


def _readings(
    meter_value: Mapping[str, Any],
    version: OcppVersion,
    rating_kw: float,
    field: str,
    refuse_unreadable: bool,
) -> tuple[dict[tuple[str, str | None], float], list[Implausible]]:
    """The plausible readings of one ``meterValue`` by (measurand, phase), in W, Wh or %."""
    readings: dict[tuple[str, str | None], float] = {}
    found: list[Implausible] = []
    for j, sampled in enumerate(meter_value.get("sampledValue", [])):
        if sampled.get("format") == "SignedData":
            continue  # 1.6: a signed blob for billing, not a number to read
        path = f"{field}.sampledValue[{j}].value"
        measurand = str(sampled.get("measurand", "Energy.Active.Import.Register"))
        try:
            value = _in_base_unit(sampled, version, path)
        except UnreadableValueError as error:
            if refuse_unreadable:
                raise
            found.append(Implausible(error.field, error.value, "not-a-number"))
            continue
        issue = _check(path, measurand, value, rating_kw)
        if issue is None:
            readings[(measurand, sampled.get("phase"))] = value
        else:
            found.append(issue)
    return readings, found


def _check(path: str, measurand: str, value: float, rating_kw: float) -> Implausible | None:
    if measurand == "SoC":
        return check_soc(path, value / 100.0)
    if measurand.startswith("Power.Active."):
        return check_power_kw(path, value / WATTS_PER_KW, rating_kw)
    if measurand.startswith("Energy.Active.") and measurand.endswith(".Register"):
        return check_energy_kwh(path, value / WATTS_PER_KW)
    return check_finite(path, value)


def _in_base_unit(sampled: Mapping[str, Any], version: OcppVersion, path: str) -> float:
    """The value in W, Wh or percent (not finite when the multiplier overflows it)."""
    if version is OcppVersion.V16:
        text = str(sampled["value"])
        if _DECIMAL.fullmatch(text) is None:
            raise UnreadableValueError(path, text)
        value = float(text)
        unit = sampled.get("unit")
        multiplier = 0
    else:
        value = float(sampled["value"])
        unit_of_measure = sampled.get("unitOfMeasure", {})
        unit = unit_of_measure.get("unit")
        multiplier = int(unit_of_measure.get("multiplier", 0))
    try:
        value *= 10.0**multiplier
    except OverflowError:  # multiplier 400: no meter reads 10^400 of anything
        value = math.inf
    measurand = str(sampled.get("measurand", "Energy.Active.Import.Register"))
    if measurand.startswith("Power.") and unit is not None:
        value *= _POWER_UNITS_W.get(unit, 1.0)
    if measurand.startswith("Energy.") and unit is not None:
        value *= _ENERGY_UNITS_WH.get(unit, 1.0)
    return value


def _total(
    readings: Mapping[tuple[str, str | None], float], measurand: str, scale: float
) -> float | None:
    if (measurand, None) in readings:
        return readings[(measurand, None)] / scale
    phases = [readings.get((measurand, phase)) for phase in _LINE_PHASES]
    if all(value is not None for value in phases):
        return sum(value for value in phases if value is not None) / scale
    return None


def _net(
    readings: Mapping[tuple[str, str | None], float], into: str, out_of: str, scale: float
) -> float | None:
    imported = _total(readings, into, scale)
    exported = _total(readings, out_of, scale)
    if imported is None and exported is None:
        return None
    return (imported or 0.0) - (exported or 0.0)


def charging_needs(station_id: str, request: Mapping[str, Any], now: datetime) -> ChargingNeeds:
    """An OCPP 2.x ``NotifyEVChargingNeeds`` request as domain needs (kW, kWh, fractions).

    The vehicle's power limits come from ``v2xChargingParameters`` (OCPP 2.1, ISO 15118-20:
    ``maxChargePower``, ``minChargePower``, ``maxDischargePower``, ``minDischargePower``, in W,
    the sum of all phases, or phase L1 when ``_L2``/``_L3`` values are given, which are then
    added) and from ``dcChargingParameters.evMaxPower``; where both say a maximum charge power
    the smaller counts. AC parameters carry only currents per phase with no phase count, so
    no power is read from them. Every limit is a magnitude in kW (discharge limits too, though
    some stations send them negative)."""
    needs = request["chargingNeeds"]
    v2x = needs.get("v2xChargingParameters", {})
    dc = needs.get("dcChargingParameters", {})
    ac = needs.get("acChargingParameters", {})
    energy_wh = v2x.get("evTargetEnergyRequest", dc.get("energyAmount", ac.get("energyAmount")))
    said = (_power_kw(v2x, "maxChargePower"), _power_kw(dc, "evMaxPower"))
    max_charge = [kw for kw in said if kw is not None]
    transfers = {needs["requestedEnergyTransfer"], *needs.get("availableEnergyTransfer", [])}
    departure = needs.get("departureTime")
    target = v2x.get("targetSoC")
    return ChargingNeeds(
        station_id=station_id,
        evse_id=int(request["evseId"]),
        at=parse_timestamp(request["timestamp"]) if "timestamp" in request else now,
        departure=parse_timestamp(departure) if departure else None,
        energy_request_kwh=None if energy_wh is None else energy_wh / WATTS_PER_KW,
        max_charge_kw=min(max_charge) if max_charge else None,
        max_discharge_kw=_power_kw(v2x, "maxDischargePower"),
        target_soc=None if target is None else target / 100.0,
        bidirectional=bool(transfers & BIDIRECTIONAL_TRANSFERS),
        min_charge_kw=_power_kw(v2x, "minChargePower"),
        min_discharge_kw=_power_kw(v2x, "minDischargePower"),
    )


def _power_kw(parameters: Mapping[str, Any], name: str) -> float | None:
    """A power limit in kW as a magnitude: ``name`` plus its ``_L2`` and ``_L3`` phases when
    sent; ``None`` when it is not there or not a finite number."""
    if name not in parameters:
        return None
    phases = [
        parameters[name],
        parameters.get(f"{name}_L2", 0.0),
        parameters.get(f"{name}_L3", 0.0),
    ]
    try:
        total_w = sum(abs(float(value)) for value in phases)
    except (TypeError, ValueError):
        return None
    return total_w / WATTS_PER_KW if math.isfinite(total_w) else None

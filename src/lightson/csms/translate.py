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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from lightson.csms.wire import OcppVersion
from lightson.domain.plan import Setpoint
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
    """An OCPP date-time as UTC (stations may send any offset; storage keeps UTC)."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


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
    rating, never discharge. Stack level 0, so every setpoint profile sits above it."""
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


# --- what chargers tell us --------------------------------------------------------------------

_POWER_UNITS_W = {"W": 1.0, "kW": 1000.0}
_ENERGY_UNITS_WH = {"Wh": 1.0, "kWh": 1000.0}
_TOTAL_PHASES = (None,)
_LINE_PHASES = ("L1", "L2", "L3")


def meter_samples(
    station_id: str,
    evse_id: int,
    meter_values: Iterable[Mapping[str, Any]],
    version: OcppVersion,
) -> list[MeterSample]:
    """``meterValue`` entries (MeterValues or TransactionEvent) as domain samples.

    Power is import − export (kW); a reading with no total but all three phases is summed.
    A 1.6 ``value`` is a string; a 2.x one a number with an optional ``unitOfMeasure``
    (``unit`` and a power-of-ten ``multiplier``)."""
    samples = []
    for meter_value in meter_values:
        readings: dict[tuple[str, str | None], float] = {}
        for sampled in meter_value.get("sampledValue", []):
            measurand = sampled.get("measurand", "Energy.Active.Import.Register")
            readings[(measurand, sampled.get("phase"))] = _in_base_unit(sampled, version)
        samples.append(
            MeterSample(
                station_id=station_id,
                evse_id=evse_id,
                at=parse_timestamp(str(meter_value["timestamp"])),
                power_kw=_net(readings, "Power.Active.Import", "Power.Active.Export", 1000.0),
                energy_imported_kwh=_total(readings, "Energy.Active.Import.Register", 1000.0),
                energy_exported_kwh=_total(readings, "Energy.Active.Export.Register", 1000.0),
                soc=_total(readings, "SoC", 100.0),
            )
        )
    return samples


def _in_base_unit(sampled: Mapping[str, Any], version: OcppVersion) -> float:
    """The value in W, Wh or percent."""
    value = float(sampled["value"])
    if version is OcppVersion.V16:
        unit = sampled.get("unit")
        multiplier = 0
    else:
        unit_of_measure = sampled.get("unitOfMeasure", {})
        unit = unit_of_measure.get("unit")
        multiplier = int(unit_of_measure.get("multiplier", 0))
    value *= 10.0**multiplier
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

"""Signs, units and names between the domain and each OCPP version and dialect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightson.csms.translate import (
    Dialect,
    UnreadableValueError,
    charge_only_default,
    charging_needs,
    islanded_default,
    meter_samples,
    parse_timestamp,
    read_meter_values,
    schedule_update,
    setpoint_profile,
    timestamp,
)
from lightson.csms.wire import Direction, OcppVersion, validate
from lightson.domain.plan import Setpoint

NOW = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(minutes=15)


def _period(payload: dict, version: OcppVersion) -> dict:  # type: ignore[type-arg]
    if version is OcppVersion.V16:
        return payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]  # type: ignore[no-any-return]
    return payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]  # type: ignore[no-any-return]


def test_a_2_1_discharge_is_a_negative_setpoint_and_discharge_limit() -> None:
    payload = setpoint_profile(
        Setpoint("evse-1", -11.0, UNTIL),
        OcppVersion.V21,
        Dialect.CENTRAL_SETPOINT,
        evse_id=1,
        profile_id=42,
        now=NOW,
        transaction_id="tx-9",
    )
    assert payload == {
        "evseId": 1,
        "chargingProfile": {
            "id": 42,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "validTo": "2026-07-15T19:15:00Z",
            "transactionId": "tx-9",
            "maxOfflineDuration": 300,
            "invalidAfterOfflineDuration": True,
            "chargingSchedule": [
                {
                    "id": 42,
                    "startSchedule": "2026-07-15T19:00:00Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [
                        {
                            "startPeriod": 0,
                            "operationMode": "CentralSetpoint",
                            "setpoint": -11000.0,
                            "dischargeLimit": -11000.0,
                        }
                    ],
                }
            ],
        },
    }
    validate(payload, "SetChargingProfile", Direction.REQUEST, OcppVersion.V21)


def test_a_2_1_charge_is_a_positive_setpoint_without_discharge_limit() -> None:
    payload = setpoint_profile(
        Setpoint("evse-1", 7.2, UNTIL),
        OcppVersion.V21,
        Dialect.CENTRAL_SETPOINT,
        evse_id=1,
        profile_id=2,
        now=NOW,
    )
    period = _period(payload, OcppVersion.V21)
    assert period == {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": 7200.0}
    assert payload["chargingProfile"]["chargingProfilePurpose"] == "TxDefaultProfile"


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21])
def test_older_dialect_discharges_with_a_negative_limit(version: OcppVersion) -> None:
    payload = setpoint_profile(
        Setpoint("evse-2", -6.6, UNTIL),
        version,
        Dialect.NEGATIVE_LIMIT,
        evse_id=2,
        profile_id=5,
        now=NOW,
        transaction_id="17",
    )
    assert _period(payload, version) == {"startPeriod": 0, "limit": -6600.0}
    validate(payload, "SetChargingProfile", Direction.REQUEST, version)
    if version is OcppVersion.V16:
        assert payload["connectorId"] == 2
        assert payload["csChargingProfiles"]["transactionId"] == 17


@pytest.mark.parametrize("version", list(OcppVersion))
def test_a_charge_only_station_never_gets_a_negative_number(version: OcppVersion) -> None:
    payload = setpoint_profile(
        Setpoint("evse-2", -6.6, UNTIL),
        version,
        Dialect.CHARGE_ONLY,
        evse_id=1,
        profile_id=5,
        now=NOW,
    )
    assert _period(payload, version)["limit"] == 0.0
    assert "-" not in str(_period(payload, version)["limit"])


def test_central_setpoint_needs_ocpp_2_1() -> None:
    with pytest.raises(ValueError, match=r"needs OCPP 2\.1"):
        setpoint_profile(
            Setpoint("e", 1.0, UNTIL),
            OcppVersion.V201,
            Dialect.CENTRAL_SETPOINT,
            evse_id=1,
            profile_id=1,
            now=NOW,
        )


def test_schedule_update_signs() -> None:
    assert schedule_update(Setpoint("e", -3.5, UNTIL), 9) == {
        "chargingProfileId": 9,
        "scheduleUpdate": {"setpoint": -3500.0, "dischargeLimit": -3500.0},
    }
    assert schedule_update(Setpoint("e", 3.5, UNTIL), 9)["scheduleUpdate"] == {"setpoint": 3500.0}
    validate(
        schedule_update(Setpoint("e", -3.5, UNTIL), 9),
        "UpdateDynamicSchedule",
        Direction.REQUEST,
        OcppVersion.V21,
    )


@pytest.mark.parametrize("version", list(OcppVersion))
def test_charge_only_default_is_valid_and_never_discharges(version: OcppVersion) -> None:
    payload = charge_only_default(version, 19.2)
    validate(payload, "SetChargingProfile", Direction.REQUEST, version)
    period = _period(payload, version)
    assert period["limit"] == 19200.0
    if version is OcppVersion.V21:
        assert period["operationMode"] == "ChargingOnly"


@pytest.mark.parametrize("version", list(OcppVersion))
def test_the_islanded_default_replaces_the_charge_only_one_at_zero_watts(
    version: OcppVersion,
) -> None:
    """Same id, purpose, stack level and EVSE 0, so it replaces the boot default (K01.FR.05);
    0 W in ChargingOnly, and no maxOfflineDuration: it stays valid with the CSMS gone."""
    payload = islanded_default(version)
    validate(payload, "SetChargingProfile", Direction.REQUEST, version)
    period = _period(payload, version)
    assert period["limit"] == 0.0
    boot = charge_only_default(version, 60.0)
    key = "csChargingProfiles" if version is OcppVersion.V16 else "chargingProfile"
    profile, booted = payload[key], boot[key]
    for name in ("chargingProfilePurpose", "stackLevel"):
        assert profile[name] == booted[name]
    assert "maxOfflineDuration" not in profile
    if version is OcppVersion.V16:
        assert payload["connectorId"] == 0
        assert profile["chargingProfileId"] == booted["chargingProfileId"]
    else:
        assert payload["evseId"] == 0 and profile["id"] == booted["id"]
    if version is OcppVersion.V21:
        assert period["operationMode"] == "ChargingOnly"


@given(
    power_kw=st.floats(-500, 500, allow_nan=False),
    version=st.sampled_from(list(OcppVersion)),
    dialect=st.sampled_from(list(Dialect)),
)
def test_every_setpoint_profile_is_valid_and_keeps_its_sign(
    power_kw: float, version: OcppVersion, dialect: Dialect
) -> None:
    if dialect is Dialect.CENTRAL_SETPOINT and version is not OcppVersion.V21:
        return
    payload = setpoint_profile(
        Setpoint("e", power_kw, UNTIL),
        version,
        dialect,
        evse_id=1,
        profile_id=3,
        now=NOW,
        transaction_id="12",
    )
    validate(payload, "SetChargingProfile", Direction.REQUEST, version)
    period = _period(payload, version)
    sent_w = period["setpoint"] if dialect is Dialect.CENTRAL_SETPOINT else period["limit"]
    expected_w = power_kw * 1000 if dialect is not Dialect.CHARGE_ONLY else max(power_kw, 0) * 1000
    assert sent_w == pytest.approx(expected_w, abs=0.05)
    assert (sent_w < 0) == (expected_w <= -0.05)
    assert period.get("dischargeLimit", 0.0) <= 0.0


def test_timestamps_are_utc_with_z_and_naive_times_are_refused() -> None:
    eastern = datetime.fromisoformat("2026-07-15T15:00:00-04:00")
    assert timestamp(eastern) == "2026-07-15T19:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        timestamp(datetime(2026, 7, 15, 15))


def test_meter_values_2x_net_power_with_units_and_multipliers() -> None:
    samples = meter_samples(
        "cs-1",
        1,
        [
            {
                "timestamp": "2026-07-15T19:05:00Z",
                "sampledValue": [
                    {"measurand": "Power.Active.Import", "value": 0.0},
                    {
                        "measurand": "Power.Active.Export",
                        "value": 11.0,
                        "unitOfMeasure": {"unit": "kW"},
                    },
                    {"value": 1234.5, "unitOfMeasure": {"unit": "Wh", "multiplier": 1}},
                    {
                        "measurand": "Energy.Active.Export.Register",
                        "value": 2.5,
                        "unitOfMeasure": {"unit": "kWh"},
                    },
                    {"measurand": "SoC", "value": 64, "unitOfMeasure": {"unit": "Percent"}},
                ],
            }
        ],
        OcppVersion.V201,
    )
    (sample,) = samples
    assert sample.power_kw == pytest.approx(-11.0)
    assert sample.energy_imported_kwh == pytest.approx(12.345)
    assert sample.energy_exported_kwh == pytest.approx(2.5)
    assert sample.soc == pytest.approx(0.64)
    assert sample.at == NOW + timedelta(minutes=5)


def test_meter_values_1_6_strings_and_phases_sum() -> None:
    (sample,) = meter_samples(
        "cs-16",
        1,
        [
            {
                "timestamp": "2026-07-15T19:00:00Z",
                "sampledValue": [
                    {
                        "measurand": "Power.Active.Import",
                        "value": "2300",
                        "phase": phase,
                        "unit": "W",
                    }
                    for phase in ("L1", "L2", "L3")
                ],
            }
        ],
        OcppVersion.V16,
    )
    assert sample.power_kw == pytest.approx(6.9)
    assert sample.soc is None


def test_charging_needs_v2x_discharge_power_is_positive_in_ocpp_and_in_the_domain() -> None:
    needs = charging_needs(
        "cs-1",
        {
            "evseId": 1,
            "timestamp": "2026-07-15T19:00:00Z",
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "departureTime": "2026-07-16T11:30:00Z",
                "v2xChargingParameters": {
                    "maxChargePower": 60000.0,
                    "maxDischargePower": 60000.0,
                    "evTargetEnergyRequest": 90000.0,
                    "targetSoC": 80,
                },
            },
        },
        NOW,
    )
    assert needs.bidirectional
    assert needs.max_discharge_kw == 60.0
    assert needs.max_charge_kw == 60.0
    assert needs.energy_request_kwh == 90.0
    assert needs.target_soc == 0.8
    assert needs.departure == datetime(2026, 7, 16, 11, 30, tzinfo=UTC)


def test_charging_needs_of_a_charge_only_car() -> None:
    needs = charging_needs(
        "cs-1",
        {
            "evseId": 2,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase",
                "acChargingParameters": {"energyAmount": 20000},
            },
        },
        NOW,
    )
    assert not needs.bidirectional
    assert needs.max_discharge_kw is None
    assert needs.energy_request_kwh == 20.0
    assert needs.at == NOW


def test_a_time_without_an_offset_is_not_taken_for_utc() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp("2026-07-15T19:00:00")
    assert parse_timestamp("2026-07-15t15:00:00-04:00") == NOW


@pytest.mark.parametrize("text", ["abc", "inf", "NaN", " 1", "1_000", ""])
def test_a_1_6_raw_value_must_be_a_decimal_number(text: str) -> None:
    entry = {"timestamp": "2026-07-15T19:00:00Z", "sampledValue": [{"value": text}]}
    with pytest.raises(UnreadableValueError) as refused:
        read_meter_values("cs-16", 1, [entry], OcppVersion.V16)
    assert refused.value.field == "meterValue[0].sampledValue[0].value"
    left_out = read_meter_values("cs-16", 1, [entry], OcppVersion.V16, refuse_unreadable=False)
    assert left_out.samples == [] and left_out.implausible[0].reason == "not-a-number"


def test_signed_data_is_not_read_and_decimals_with_exponents_are() -> None:
    (sample,) = meter_samples(
        "cs-16",
        1,
        [
            {
                "timestamp": "2026-07-15T19:00:00Z",
                "sampledValue": [
                    {"value": "MIIBsig...", "format": "SignedData"},
                    {"value": "1.5e3"},
                ],
            }
        ],
        OcppVersion.V16,
    )
    assert sample.energy_imported_kwh == 1.5


def test_charging_needs_keep_the_vehicles_declared_minimum_and_maximum_powers() -> None:
    needs = charging_needs(
        "cs-1",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC_BPT",
                "dcChargingParameters": {
                    "evMaxCurrent": 200,
                    "evMaxVoltage": 500,
                    "evMaxPower": 50000,
                },
                "v2xChargingParameters": {
                    "maxChargePower": 11000.0,  # below the DC evMaxPower: this one counts
                    "minChargePower": 1000.0,
                    "maxDischargePower": 5000.0,
                    "minDischargePower": 1400.0,
                },
            },
        },
        NOW,
    )
    assert needs.max_charge_kw == 11.0
    assert needs.min_charge_kw == 1.0
    assert needs.max_discharge_kw == 5.0
    assert needs.min_discharge_kw == 1.4


def test_charging_needs_per_phase_limits_add_up_and_dc_power_is_a_charge_limit() -> None:
    # With _L2/_L3 values the main field is phase L1 (OCPP 2.1 V2XChargingParametersType).
    three_phase = charging_needs(
        "cs-1",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_BPT",
                "v2xChargingParameters": {
                    "maxDischargePower": 2000.0,
                    "maxDischargePower_L2": 2000.0,
                    "maxDischargePower_L3": 2000.0,
                    "minDischargePower": -500.0,  # a magnitude, whatever sign it is sent with
                },
            },
        },
        NOW,
    )
    assert three_phase.max_discharge_kw == 6.0
    assert three_phase.min_discharge_kw == 0.5
    assert three_phase.max_charge_kw is None and three_phase.min_charge_kw is None
    dc = charging_needs(
        "cs-1",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 500, "evMaxPower": 0},
            },
        },
        NOW,
    )
    assert dc.max_charge_kw == 0.0  # said: no charging (not "not said")

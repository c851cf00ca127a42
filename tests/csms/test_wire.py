"""The wire layer: exact names for every schema property, frames and CALLERROR codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.v21 import call as call21
from ocpp.v21 import datatypes as types21
from ocpp.v21 import enums as enums21

from lightson.csms.rpc import FrameQueue
from lightson.csms.wire import (
    MAX_FRAME_DEPTH,
    Direction,
    ErrorCode,
    FrameError,
    MessageType,
    OcppVersion,
    bounded,
    call_error,
    frame_head,
    from_wire,
    has_schema,
    load_schema,
    nested_deeper_than,
    parse_frame,
    to_wire,
    validate,
)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return root["definitions"][ref.rsplit("/", 1)[1]] if ref else node


def _full_sample(node: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
    """A payload that sets every property the schema allows, recursively."""
    node = _resolve(node, root)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {
            name: _full_sample(child, root, depth + 1)
            for name, child in node.get("properties", {}).items()
            if depth < 12
        }
    if kind == "array":
        return [_full_sample(node.get("items", {}), root, depth + 1)]
    if kind == "string":
        return "2026-07-15T19:00:00Z" if node.get("format") == "date-time" else "x"
    if kind == "integer":
        return int(min(max(node.get("minimum", 1), 1), node.get("maximum", 1e9)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return "x"


def _schemas(version: OcppVersion) -> list[tuple[str, Direction, bool]]:
    found = []
    for path in sorted(version.schema_dir.glob("*.json")):
        name = path.stem
        if name.endswith("Response"):
            found.append((name.removesuffix("Response"), Direction.RESPONSE, False))
        elif name.endswith("Request"):
            found.append((name.removesuffix("Request"), Direction.REQUEST, False))
        else:  # 1.6 requests and 2.1 SEND messages carry no suffix
            found.append((name, Direction.REQUEST, version is OcppVersion.V21))
    return found


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in _keys(item)}
    if isinstance(value, list):
        return {key for item in value for key in _keys(item)}
    return set()


@pytest.mark.parametrize("version", list(OcppVersion), ids=lambda v: v.value)
def test_every_property_of_every_schema_round_trips(version: OcppVersion) -> None:
    schemas = _schemas(version)
    assert len(schemas) > 50
    for action, direction, send in schemas:
        schema = load_schema(action if send else _file(action, direction, version), version)
        payload = _full_sample(schema, schema)
        assert to_wire(from_wire(payload), action, direction, version, send) == payload, action


def _file(action: str, direction: Direction, version: OcppVersion) -> str:
    if direction is Direction.RESPONSE:
        return action + "Response"
    return action if version is OcppVersion.V16 else action + "Request"


def test_the_ocpp_package_alone_loses_43_names_of_ocpp_2_1() -> None:
    """The defect our layer covers: if this fails, the package was fixed upstream."""
    lost = set()
    for action, direction, send in _schemas(OcppVersion.V21):
        schema = load_schema(
            action if send else _file(action, direction, OcppVersion.V21), OcppVersion.V21
        )
        payload = _full_sample(schema, schema)
        lost |= _keys(payload) - _keys(snake_to_camel_case(camel_to_snake_case(payload)))
    assert len(lost) == 43
    assert {"limit_L2", "setpoint_L3", "fixedPFAbsorb", "soc", "dischargeLimit_L2"} <= lost


def test_a_v2x_profile_from_the_package_dataclasses_keeps_the_standard_names() -> None:
    period = types21.ChargingSchedulePeriodType(
        start_period=0,
        operation_mode=enums21.OperationModeEnumType.central_setpoint,
        setpoint=-7000.0,
        setpoint_l2=-7000.0,
        discharge_limit_l3=-11000.0,
    )
    request = call21.SetChargingProfile(
        evse_id=1,
        charging_profile=types21.ChargingProfileType(
            id=7,
            stack_level=1,
            charging_profile_purpose=enums21.ChargingProfilePurposeEnumType.tx_profile,
            charging_profile_kind=enums21.ChargingProfileKindEnumType.absolute,
            charging_schedule=[
                types21.ChargingScheduleType(
                    id=1,
                    charging_rate_unit=enums21.ChargingRateUnitEnumType.w,
                    charging_schedule_period=[period],
                )
            ],
        ),
    )
    wire = to_wire(request, "SetChargingProfile", Direction.REQUEST, OcppVersion.V21)
    assert wire["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
        {
            "startPeriod": 0,
            "operationMode": "CentralSetpoint",
            "setpoint": -7000.0,
            "setpoint_L2": -7000.0,
            "dischargeLimit_L3": -11000.0,
        }
    ]
    validate(wire, "SetChargingProfile", Direction.REQUEST, OcppVersion.V21)


def test_names_that_collide_in_snake_case_keep_their_own_spelling() -> None:
    """``soc`` and ``soC`` are both ``soc`` in snake_case; each schema place says which."""
    limit = to_wire(
        {"charging_profile": {"charging_schedule": [{"limit_at_so_c": {"soc": 80, "limit": 1.0}}]}},
        "SetChargingProfile",
        Direction.REQUEST,
        OcppVersion.V21,
    )
    assert limit["chargingProfile"]["chargingSchedule"][0]["limitAtSoC"] == {
        "soc": 80,
        "limit": 1.0,
    }


# --- frames -------------------------------------------------------------------------------


def _error(raw: str, version: OcppVersion = OcppVersion.V21) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_frame(raw, version)
    return caught.value


def test_frames_of_every_type_parse() -> None:
    call = parse_frame('[2,"a1","Heartbeat",{}]', OcppVersion.V201)
    assert (call.type, call.message_id, call.action, call.payload) == (
        MessageType.CALL,
        "a1",
        "Heartbeat",
        {},
    )
    result = parse_frame('[3,"a1",{"currentTime":"2026-07-15T19:00:00Z"}]', OcppVersion.V16)
    assert result.type is MessageType.CALL_RESULT
    error = parse_frame('[4,"a1","NotImplemented","",{}]', OcppVersion.V16)
    assert (error.error_code, error.error_description) == ("NotImplemented", "")
    send = parse_frame('[6,"s1","NotifyPeriodicEventStream",{"id":1}]', OcppVersion.V21)
    assert (send.type, send.action) == (MessageType.SEND, "NotifyPeriodicEventStream")
    result_error = parse_frame('[5,"r1","FormatViolation","bad",{}]', OcppVersion.V21)
    assert result_error.type is MessageType.CALL_RESULT_ERROR
    assert result_error.to_json() == '[5,"r1","FormatViolation","bad",{}]'


def test_unreadable_frames_are_answered_with_message_id_minus_one() -> None:
    for raw in ("not json", "{}", "[2]", '[2, 17, "Heartbeat", {}]', '[2, "", "Heartbeat", {}]'):
        error = _error(raw)
        assert (error.code, error.message_id) == (ErrorCode.RPC_FRAMEWORK_ERROR, "-1"), raw


def test_new_frame_types_are_not_supported_before_2_1() -> None:
    for version in (OcppVersion.V16, OcppVersion.V201):
        error = _error('[6,"s1","NotifyPeriodicEventStream",{}]', version)
        assert error.code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
        assert error.message_id == "s1"
    assert ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED.spelled(OcppVersion.V16) == "ProtocolError"
    assert _error('[7,"x",{}]').code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
    assert _error('[true,"x",{}]').code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
    for odd in ('[[2],"x",{}]', '[{"a":1},"x",{}]', '[2.0,"x","Heartbeat",{}]', '["2","x",{}]'):
        assert _error(odd).code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, odd


def test_malformed_calls_keep_their_message_id() -> None:
    error = _error('[2,"m9","Heartbeat"]')
    assert (error.code, error.message_id) == (ErrorCode.RPC_FRAMEWORK_ERROR, "m9")
    assert _error('[2,"m9",5,{}]').message_id == "m9"
    assert _error('[2,"m9","Heartbeat",[]]').code is ErrorCode.RPC_FRAMEWORK_ERROR


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"reason": "PowerUp"}, ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "(payload)"),
        (
            {"reason": "PowerUp", "chargingStation": {"model": 5, "vendorName": "V"}},
            ErrorCode.TYPE_CONSTRAINT_VIOLATION,
            "chargingStation/model",
        ),
        (
            {"reason": "Sideways", "chargingStation": {"model": "M", "vendorName": "V"}},
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            "reason",
        ),
        (
            {"reason": "PowerUp", "chargingStation": {"model": "M" * 21, "vendorName": "V"}},
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            "chargingStation/model",
        ),
        (
            {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}, "x": 1},
            ErrorCode.FORMAT_VIOLATION,
            "(payload)",
        ),
    ],
)
def test_schema_violations_get_the_code_the_standard_names(
    payload: dict[str, Any], code: ErrorCode, field: str
) -> None:
    with pytest.raises(FrameError) as caught:
        validate(payload, "BootNotification", Direction.REQUEST, OcppVersion.V201, "b1")
    assert (caught.value.code, caught.value.message_id) == (code, "b1")
    assert caught.value.details["field"] == field


def test_ocpp_1_6_spells_its_codes_its_own_way() -> None:
    with pytest.raises(FrameError) as caught:
        validate({"chargePointVendor": "V"}, "BootNotification", Direction.REQUEST, OcppVersion.V16)
    assert caught.value.code.spelled(OcppVersion.V16) == "OccurenceConstraintViolation"
    assert ErrorCode.FORMAT_VIOLATION.spelled(OcppVersion.V16) == "FormationViolation"
    assert ErrorCode.FORMAT_VIOLATION.spelled(OcppVersion.V21) == "FormatViolation"


def test_1_6_charging_limits_with_one_decimal_validate() -> None:
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -21.4}],
            },
        },
    }
    validate(profile, "SetChargingProfile", Direction.REQUEST, OcppVersion.V16)


def test_an_action_another_version_has_is_not_supported() -> None:
    with pytest.raises(FrameError) as caught:
        validate({}, "NotifyEVChargingNeeds", Direction.REQUEST, OcppVersion.V16, "n1")
    assert caught.value.code is ErrorCode.NOT_IMPLEMENTED  # not known to 1.6


def test_rate_limit_paces_bursts_and_refills() -> None:
    from lightson.csms.rpc import RateLimit

    now = [0.0]
    limit = RateLimit(per_second=2.0, burst=3, now=lambda: now[0])
    assert [limit.delay_s() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.delay_s() == pytest.approx(0.5)  # the 4th waits for half a second's refill
    now[0] = 10.0
    assert limit.delay_s() == 0.0  # refilled (to the burst, not beyond)
    with pytest.raises(ValueError, match="per_second"):
        RateLimit(per_second=0.0, burst=1)


def test_nesting_is_measured_outside_strings_and_capped_before_parsing() -> None:
    at_limit = "[" * MAX_FRAME_DEPTH + "]" * MAX_FRAME_DEPTH
    assert not nested_deeper_than(at_limit)
    assert nested_deeper_than("[" + at_limit + "]")
    # Brackets inside strings (escaped quotes included) do not nest.
    assert not nested_deeper_than('["' + "[{" * 200 + '\\"' + "[" * 100 + '"]')
    assert nested_deeper_than('["a\\"b",' + "{" * 65 + "}" * 65 + "]")
    # Unbalanced, unterminated input is scanned without error (json.loads refuses it later).
    assert not nested_deeper_than('["' + '\\"' * 1000)
    # A frame nested 100,000 deep gets the malformed-frame answer, not a RecursionError.
    error = _error("[" * 100_000)
    assert (error.code, error.message_id) == (ErrorCode.RPC_FRAMEWORK_ERROR, "-1")
    deep_call = _error('[2,"d1","Heartbeat",{"x":' + "[" * 1000 + "]" * 1000 + "}]")
    assert (deep_call.code, deep_call.message_id, deep_call.frame_type) == (
        ErrorCode.FORMAT_VIOLATION,
        "d1",
        MessageType.CALL,
    )
    deep_result = _error('[3,"r1",{"x":' + "[" * 100 + "]" * 100 + "}]")
    assert deep_result.frame_type is MessageType.CALL_RESULT and not deep_result.answerable


def test_the_head_of_a_frame_is_read_without_parsing_it() -> None:
    assert frame_head(' [ 2 , "m-1" , "Heartbeat", {}]') == (2, "m-1")
    assert frame_head('[3,"' + "a" * 36 + '",{}]') == (3, "a" * 36)
    for unreadable in ('[2,"' + "a" * 37 + '",', '[2,"a\\"b",', "[[2]]", '{"2":1}', ""):
        assert frame_head(unreadable) is None, unreadable


def test_binary_frames_are_not_ocpp_j_messages() -> None:
    for raw in (b'[2,"b1","Heartbeat",{}]', b"\xff\xfe"):
        error = _error(raw)  # type: ignore[arg-type]
        assert (error.code, error.message_id) == (ErrorCode.RPC_FRAMEWORK_ERROR, "-1")
        assert error.answerable


def test_what_goes_back_is_bounded_and_names_are_never_paths() -> None:
    assert bounded("x" * 300) == "x" * 254 + "\u2026"
    assert bounded("x" * 255) == "x" * 255
    error = FrameError(ErrorCode.NOT_IMPLEMENTED, "y" * 5000, "m", {"field": "z" * 5000})
    assert len(error.description) == 255 and len(error.details["field"]) == 255
    frame = call_error("m", ErrorCode.GENERIC_ERROR, "w" * 1000, OcppVersion.V21)
    assert len(str(frame.error_description)) == 255
    with pytest.raises(FrameError) as caught:
        validate({}, "Teleport" * 625, Direction.REQUEST, OcppVersion.V21, "t1")
    assert caught.value.code is ErrorCode.NOT_IMPLEMENTED
    assert "(5000 characters)" in caught.value.description
    assert len(caught.value.description) < 120
    assert has_schema("Heartbeat", Direction.REQUEST, OcppVersion.V21)
    assert not has_schema("../../v201/schemas/Heartbeat", Direction.REQUEST, OcppVersion.V21)


def test_the_waiting_queue_is_bounded_in_frames_and_characters() -> None:
    import asyncio

    queue = FrameQueue(max_frames=3, max_chars=100)
    assert [queue.offer("a" * 10) for _ in range(4)] == [True, True, True, False]
    assert (len(queue), queue.chars) == (3, 30)

    async def take_one() -> str | bytes:
        return await queue.take()

    assert asyncio.run(take_one()) == "a" * 10
    assert queue.offer("b" * 70)  # 20 + 70 characters: fits again
    assert not queue.offer("c")  # 3 frames
    assert (len(queue), queue.chars) == (3, 90)
    empty = FrameQueue(max_frames=1, max_chars=10)
    assert empty.offer("d" * 50)  # one frame always fits an empty queue
    assert not empty.offer("e")
    with pytest.raises(ValueError, match="max_frames"):
        FrameQueue(max_frames=0, max_chars=10)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    return 0


_json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), inner, max_size=3)
    ),
    max_leaves=40,
)


@given(value=_json_values, limit=st.integers(min_value=0, max_value=8))
def test_the_nesting_scan_agrees_with_the_json_it_reads(value: Any, limit: int) -> None:
    """Brackets, quotes and backslashes inside strings and keys never count."""
    assert nested_deeper_than(json.dumps(value), limit) == (_depth(value) > limit)


def _event(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "Started",
        "timestamp": "2026-07-15T19:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-1"},
    }
    return {**payload, **changes}


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"timestamp": "yesterday"}, ErrorCode.FORMAT_VIOLATION, "timestamp"),
        ({"timestamp": "2026-07-15T19:00:00"}, ErrorCode.FORMAT_VIOLATION, "timestamp"),
        ({"timestamp": "2026-02-30T19:00:00Z"}, ErrorCode.FORMAT_VIOLATION, "timestamp"),
        ({"seqNo": 2**63}, ErrorCode.TYPE_CONSTRAINT_VIOLATION, "seqNo"),
        ({"seqNo": 2**31}, ErrorCode.TYPE_CONSTRAINT_VIOLATION, "seqNo"),
        (
            {"transactionInfo": {"transactionId": "x" * 37}},
            ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
            "transactionInfo/transactionId",
        ),
    ],
)
def test_formats_and_32_bit_integers_are_checked(
    changes: dict[str, Any], code: ErrorCode, field: str
) -> None:
    for version in (OcppVersion.V201, OcppVersion.V21):
        with pytest.raises(FrameError) as refused:
            validate(_event(**changes), "TransactionEvent", Direction.REQUEST, version, "m")
        assert refused.value.code is code
        assert refused.value.details == {"field": field}


@pytest.mark.parametrize(
    "stamp", ["2026-07-15T19:00:00Z", "2026-07-15T15:00:00.123-04:00", "2026-07-15t19:00:00z"]
)
def test_rfc_3339_date_times_and_the_largest_integer_pass(stamp: str) -> None:
    validate(
        _event(timestamp=stamp, seqNo=2**31 - 1),
        "TransactionEvent",
        Direction.REQUEST,
        OcppVersion.V21,
    )


def test_a_1_6_time_without_offset_is_a_formation_violation() -> None:
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    with pytest.raises(FrameError) as refused:
        validate(
            {**payload, "timestamp": "2026-07-15 19:00"},
            "StatusNotification",
            Direction.REQUEST,
            OcppVersion.V16,
        )
    assert refused.value.code.spelled(OcppVersion.V16) == "FormationViolation"

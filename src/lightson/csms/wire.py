"""OCPP-J on the wire: frames, error codes, payload validation and payload names.

This is our thin layer over the ``ocpp`` package (2.1.0). We use its JSON schemas, its
validators and its message dataclasses, and cover its known defects here, each with tests
(``tests/csms/test_wire.py``):

- **Names.** The package turns snake_case into camelCase with string rules that lose 43 OCPP
  2.1 names (every ``_L2``/``_L3`` field, ``fixedPFAbsorb``, ``LimitAtSoC.soc``, …). We convert
  guided by the message's own schema: each key is matched against the properties the schema
  allows at that place, so every name comes back exactly as the standard spells it.
- **Frames.** The package knows CALL, CALLRESULT and CALLERROR only; OCPP 2.1 adds
  CALLRESULTERROR (5) and SEND (6). A frame that cannot be parsed is logged and dropped by the
  package; the standard wants a CALLERROR (message id ``"-1"`` when the id cannot be read).
  A binary frame, or one nested deeper than :data:`MAX_FRAME_DEPTH`, is refused the same way
  before ``json.loads`` sees it (deep nesting raised ``RecursionError`` there).
- **Bounds.** Everything we send back or log about a received frame is bounded: an error
  description is at most :data:`MAX_ERROR_DESCRIPTION_LENGTH` characters (OCPP 2.x
  ``errorDescription`` is ``string[0..255]``), a name the peer sent is shown shortened.
- **Error codes.** The package maps a missing required field to ``ProtocolError`` and a too-long
  string to ``TypeConstraintViolation``, and uses the 2.0.1 spelling in 1.6. We map each schema
  violation to the code the standard names for it, spelled as the version spells it.
- **Formats and ranges.** The package checks no ``format``: a ``date-time`` of ``"yesterday"``
  or one without an offset passed and failed later as ``InternalError``. Ours checks RFC 3339
  date-times (``FormatViolation``) and holds ``integer`` to OCPP's 32 bits
  (``TypeConstraintViolation``).
"""

from __future__ import annotations

import decimal
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, is_dataclass
from datetime import datetime
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

import ocpp
from jsonschema import Draft4Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict

SCHEMA_ROOT = Path(ocpp.__file__).parent
UNREADABLE_MESSAGE_ID = "-1"
MAX_MESSAGE_ID_LENGTH = 36
MAX_ERROR_DESCRIPTION_LENGTH = 255  # OCPP 2.0.1/2.1 Part 4: errorDescription string[0..255]
# The deepest payload of the bundled schemas is 13 levels (2.0.1 ReportChargingProfiles), 14
# with the frame's array; 64 leaves room for vendor customData and stays far below the ~1,000
# Python frames at which json.loads and the schema validator raise RecursionError.
MAX_FRAME_DEPTH = 64


class OcppVersion(Enum):
    """The protocol versions we speak; the value is the ``ocpp`` package's name for it."""

    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"

    @property
    def subprotocol(self) -> str:
        """The WebSocket subprotocol name (``ocpp2.1`` …)."""
        return "ocpp" + self.value

    @classmethod
    def from_subprotocol(cls, name: str) -> OcppVersion:
        for version in cls:
            if version.subprotocol == name:
                return version
        raise ValueError(f"unknown OCPP subprotocol {name!r}")

    @property
    def schema_dir(self) -> Path:
        return SCHEMA_ROOT / ("v" + self.value.replace(".", "")) / "schemas"


class MessageType(IntEnum):
    CALL = 2
    CALL_RESULT = 3
    CALL_ERROR = 4
    CALL_RESULT_ERROR = 5  # OCPP 2.1: the answer to a CALLRESULT that could not be used
    SEND = 6  # OCPP 2.1: a message that expects no answer


SUPPORTED_TYPES = {
    OcppVersion.V16: frozenset({2, 3, 4}),
    OcppVersion.V201: frozenset({2, 3, 4}),
    OcppVersion.V21: frozenset({2, 3, 4, 5, 6}),
}


class ErrorCode(Enum):
    """CALLERROR codes by meaning; ``spelled(version)`` gives the word on the wire."""

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"

    def spelled(self, version: OcppVersion) -> str:
        """OCPP 1.6 spells two codes differently and lacks the two framework codes."""
        if version is not OcppVersion.V16:
            return self.value
        return {
            ErrorCode.FORMAT_VIOLATION: "FormationViolation",
            ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
            ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
            ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "ProtocolError",
        }.get(self, self.value)


class FrameError(Exception):
    """A received frame or payload the standard says to answer with a CALLERROR."""

    def __init__(
        self,
        code: ErrorCode,
        description: str,
        message_id: str = UNREADABLE_MESSAGE_ID,
        details: Mapping[str, Any] | None = None,
        frame_type: MessageType | None = None,
    ) -> None:
        description = bounded(description)
        super().__init__(description)
        self.code = code
        self.description = description
        self.message_id = message_id
        self.details: dict[str, Any] = {
            key: bounded(value) if isinstance(value, str) else value
            for key, value in (details or {}).items()
        }
        self.frame_type = frame_type  # the type of the bad frame, when it could be read

    @property
    def answerable(self) -> bool:
        """Only a CALL (or a frame too broken to tell) is answered with a CALLERROR; a bad
        SEND, CALLERROR or CALLRESULTERROR is never answered, a bad CALLRESULT only in 2.1
        (with a CALLRESULTERROR)."""
        return self.frame_type in (None, MessageType.CALL)


@dataclass(frozen=True)
class Frame:
    """One parsed OCPP-J message. ``action`` is set for CALL and SEND; ``payload`` is the
    payload of CALL, CALLRESULT and SEND, or the error details of the two error frames."""

    type: MessageType
    message_id: str
    action: str | None = None
    payload: Mapping[str, Any] | None = None
    error_code: str | None = None
    error_description: str | None = None

    def to_json(self) -> str:
        return dump(self.as_list())

    def as_list(self) -> list[Any]:
        head: list[Any] = [int(self.type), self.message_id]
        if self.type in (MessageType.CALL, MessageType.SEND):
            return [*head, self.action, dict(self.payload or {})]
        if self.type is MessageType.CALL_RESULT:
            return [*head, dict(self.payload or {})]
        return [*head, self.error_code, self.error_description or "", dict(self.payload or {})]


def dump(value: Any) -> str:
    """Compact JSON, as the examples of the standard are written."""
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def bounded(text: str, limit: int = MAX_ERROR_DESCRIPTION_LENGTH) -> str:
    """``text`` cut to at most ``limit`` characters (the last one an ellipsis when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def shown(name: str, limit: int = 40) -> str:
    """A name the peer sent, quoted and shortened for an error description or a log line: a
    5,000-character action is never echoed back."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}\u2026 ({len(name)} characters)"


def call_error(
    message_id: str,
    code: ErrorCode,
    description: str,
    version: OcppVersion,
    kind: MessageType = MessageType.CALL_ERROR,
    **details: Any,
) -> Frame:
    """A CALLERROR (or, in 2.1, a CALLRESULTERROR) with the code spelled for ``version``."""
    return Frame(
        kind,
        message_id,
        payload=details,
        error_code=code.spelled(version),
        error_description=bounded(description),
    )


# A frame's head, ``[type, "messageId",``, read without parsing the rest (a message id with
# escapes is not read this way: it is answered as unreadable).
_HEAD = re.compile(rf'\s*\[\s*(\d{{1,2}})\s*,\s*"([^"\\]{{1,{MAX_MESSAGE_ID_LENGTH}}})"\s*,')
# A JSON string (an unterminated one runs to the end, so the scan never backtracks) or a
# bracket: brackets inside strings do not nest.
_DEPTH_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def frame_head(raw: str) -> tuple[int, str] | None:
    """The message type and id at the start of a frame, or None when they cannot be read."""
    head = _HEAD.match(raw)
    return None if head is None else (int(head.group(1)), head.group(2))


def nested_deeper_than(raw: str, limit: int = MAX_FRAME_DEPTH) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` deep; linear
    in the frame's length, and a count of brackets when there are fewer than ``limit``."""
    if raw.count("[") + raw.count("{") <= limit:
        return False
    depth = 0
    for token in _DEPTH_TOKENS.finditer(raw):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in ("]", "}"):
            depth -= 1
    return False


def _refuse_unreadable(raw: str | bytes, version: OcppVersion) -> None:
    """Raise for a frame that must not reach ``json.loads``: a binary frame (OCPP-J messages
    are UTF-8 JSON text; its content is not read, so its id is unknown) or one nested deeper
    than :data:`MAX_FRAME_DEPTH` (answered ``FormatViolation`` under its id when the head of the
    frame can be read, like any payload that does not fit its message)."""
    if isinstance(raw, bytes):
        raise FrameError(
            ErrorCode.RPC_FRAMEWORK_ERROR,
            "a binary WebSocket frame: OCPP-J messages are sent as text frames",
        )
    if not nested_deeper_than(raw):
        return
    deep = f"nested deeper than {MAX_FRAME_DEPTH} levels"
    head = frame_head(raw)
    if head is None or head[0] not in SUPPORTED_TYPES[version]:
        raise FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, f"a frame {deep}")
    kind = MessageType(head[0])
    raise FrameError(ErrorCode.FORMAT_VIOLATION, f"the payload is {deep}", head[1], frame_type=kind)


def parse_frame(raw: str | bytes, version: OcppVersion) -> Frame:
    """Read one OCPP-J frame, or raise :class:`FrameError` naming what is wrong with it."""
    _refuse_unreadable(raw, version)
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, f"not JSON: {error}") from None
    if not isinstance(message, list) or len(message) < 2:
        raise FrameError(
            ErrorCode.RPC_FRAMEWORK_ERROR, "a frame is a JSON array [type, messageId, …]"
        )
    type_id, message_id = message[0], message[1]
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_LENGTH:
        raise FrameError(
            ErrorCode.RPC_FRAMEWORK_ERROR,
            f"messageId must be a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters",
        )
    if type(type_id) is not int or type_id not in SUPPORTED_TYPES[version]:
        raise FrameError(
            ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
            f"message type {type_id!r} is not part of OCPP {version.value}",
            message_id,
        )
    kind = MessageType(type_id)

    def bad(shape: str) -> FrameError:
        return FrameError(
            ErrorCode.RPC_FRAMEWORK_ERROR, f"expected {shape}", message_id, frame_type=kind
        )

    shapes = {
        MessageType.CALL: (4, "[2, messageId, action, payload]"),
        MessageType.SEND: (4, "[6, messageId, action, payload]"),
        MessageType.CALL_RESULT: (3, "[3, messageId, payload]"),
        MessageType.CALL_ERROR: (5, "[4, messageId, errorCode, errorDescription, details]"),
        MessageType.CALL_RESULT_ERROR: (
            5,
            "[5, messageId, errorCode, errorDescription, details]",
        ),
    }
    length, shape = shapes[kind]
    if len(message) != length:
        raise bad(shape)
    if kind in (MessageType.CALL, MessageType.SEND):
        action, payload = message[2], message[3]
        if not isinstance(action, str) or not isinstance(payload, dict):
            raise bad(shape)
        return Frame(kind, message_id, action=action, payload=payload)
    if kind is MessageType.CALL_RESULT:
        if not isinstance(message[2], dict):
            raise bad(shape)
        return Frame(kind, message_id, payload=message[2])
    code, description, details = message[2], message[3], message[4]
    if not isinstance(code, str) or not isinstance(description, str):
        raise bad(shape)
    return Frame(
        kind,
        message_id,
        payload=details if isinstance(details, dict) else {},
        error_code=code,
        error_description=description,
    )


# --- schemas ------------------------------------------------------------------------------


class Direction(Enum):
    REQUEST = "request"
    RESPONSE = "response"


def schema_name(action: str, direction: Direction, version: OcppVersion, send: bool = False) -> str:
    """The schema file of a message: ``BootNotificationRequest`` (2.x), ``BootNotification``
    (1.6 requests, 2.1 SEND messages), ``…Response`` for answers."""
    if direction is Direction.RESPONSE:
        return action + "Response"
    if version is OcppVersion.V16 or send:
        return action
    return action + "Request"


def has_schema(action: str, direction: Direction, version: OcppVersion, send: bool = False) -> bool:
    """Whether the version has this message. A name is looked up among the schema files, never
    joined into a path: a peer's action may be 5,000 characters or contain ``../``."""
    return schema_name(action, direction, version, send) in _schema_names(version)


@functools.cache
def _schema_names(version: OcppVersion) -> frozenset[str]:
    return frozenset(path.stem for path in version.schema_dir.glob("*.json"))


@functools.cache
def load_schema(name: str, version: OcppVersion) -> dict[str, Any]:
    text = (version.schema_dir / f"{name}.json").read_text(encoding="utf-8-sig")
    schema: dict[str, Any] = json.loads(text)
    return schema


# 1.6 schemas give some decimals ``multipleOf: 0.1``; they must be read as Decimal on both
# sides or 21.4 fails as 21.399999999999995 (the ``ocpp`` package does the same).
_DECIMAL_MESSAGES_16 = frozenset(
    {"SetChargingProfile", "RemoteStartTransaction", "GetCompositeScheduleResponse"}
)


def validate(
    payload: Mapping[str, Any],
    action: str,
    direction: Direction,
    version: OcppVersion,
    message_id: str = UNREADABLE_MESSAGE_ID,
    send: bool = False,
) -> None:
    """Check a payload against the standard's schema; raise :class:`FrameError` with the code
    the standard names for the first violation and the JSON path of the field."""
    name = schema_name(action, direction, version, send)
    if not has_schema(action, direction, version, send):
        raise FrameError(
            ErrorCode.NOT_IMPLEMENTED,
            f"{shown(action)} is not part of OCPP {version.value}",
            message_id,
        )
    decimals = version is OcppVersion.V16 and name in _DECIMAL_MESSAGES_16
    if decimals:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = next(iter(_validator(name, version, decimals).iter_errors(payload)), None)
    if error is not None:
        raise _frame_error(error, action, message_id)


# OCPP's primitive ``integer`` is 32 bits (OCPP 2.x Part 2, "Primitive Datatypes"; 1.6 the
# same): the JSON schemas only say ``"type": "integer"``, so 2^63 would pass them and then
# overflow a database column.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.I)
_FORMATS = FormatChecker(formats=())


def _date_time(value: object) -> bool:
    """RFC 3339 ``date-time``, as the schemas' ``format`` says: a date, a time and an offset
    (``Z`` or ``±hh:mm``); a time without an offset is not one."""
    if not isinstance(value, str):
        return True  # "type" speaks for other values
    if _RFC3339.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time with an offset")
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # 2026-02-30 fails here
    return True


_FORMATS.checks("date-time", raises=ValueError)(_date_time)


def _integer_type(validator: Any, types: Any, instance: Any, schema: Any) -> Iterator[SchemaError]:
    yield from _DRAFT4_TYPE(validator, types, instance, schema)
    wanted = types if isinstance(types, list) else [types]
    if (
        "integer" in wanted
        and isinstance(instance, int)
        and not isinstance(instance, bool)
        and not INT32_MIN <= instance <= INT32_MAX
    ):
        yield SchemaError(f"{instance} is outside OCPP's 32-bit integer range")


_DRAFT4_TYPE = Draft4Validator.VALIDATORS["type"]
_OcppValidator = validators.extend(Draft4Validator, {"type": _integer_type})


@functools.cache
def _validator(name: str, version: OcppVersion, decimals: bool) -> Any:
    """The schema's validator, with formats checked and integers held to 32 bits."""
    text = (version.schema_dir / f"{name}.json").read_text(encoding="utf-8-sig")
    schema = json.loads(text, parse_float=decimal.Decimal if decimals else float)
    return _OcppValidator(schema, format_checker=_FORMATS)


_SCHEMA_CODES = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorCode.FORMAT_VIOLATION,
    "format": ErrorCode.FORMAT_VIOLATION,
}


def _frame_error(error: SchemaError, action: str, message_id: str) -> FrameError:
    field = "/".join(str(part) for part in error.absolute_path) or "(payload)"
    code = _SCHEMA_CODES.get(str(error.validator), ErrorCode.PROPERTY_CONSTRAINT_VIOLATION)
    return FrameError(code, f"{action}: {field}: {error.message}", message_id, {"field": field})


# --- names ----------------------------------------------------------------------------------


def snake_name(camel: str) -> str:
    """The ``ocpp`` package's snake_case for a standard name (its dataclass field names)."""
    converted: dict[str, Any] = camel_to_snake_case({camel: None})
    return next(iter(converted))


def from_wire(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A received payload as the keyword arguments the ``ocpp`` dataclasses take."""
    converted: dict[str, Any] = camel_to_snake_case(dict(payload))
    return converted


def to_wire(
    payload: Any, action: str, direction: Direction, version: OcppVersion, send: bool = False
) -> dict[str, Any]:
    """A dataclass or snake_case mapping as the standard's payload, names spelled exactly as
    the message's schema spells them."""
    if is_dataclass(payload) and not isinstance(payload, type):
        payload = serialize_as_dict(payload)
    schema = load_schema(schema_name(action, direction, version, send), version)
    converted: dict[str, Any] = _rename(remove_nones(payload), schema, schema)
    return converted


def _rename(value: Any, node: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    node = _resolve(node, root)
    if isinstance(value, Mapping):
        properties = node.get("properties", {})
        names = _property_names(properties)
        renamed = {}
        for key, item in value.items():
            camel = names.get(key, key if key in properties else _fallback_camel(key))
            renamed[camel] = _rename(item, properties.get(camel, {}), root)
        return renamed
    if isinstance(value, list):
        return [_rename(item, node.get("items", {}), root) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = node.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/definitions/"):
        resolved: Mapping[str, Any] = root["definitions"][reference.rsplit("/", 1)[1]]
        return resolved
    return node


_NAMES: dict[int, tuple[Mapping[str, Any], dict[str, str]]] = {}


def _property_names(properties: Mapping[str, Any]) -> dict[str, str]:
    """snake_case → standard name for the properties of one object schema (the schemas are
    loaded once and kept, so their identity is a stable cache key)."""
    cached = _NAMES.get(id(properties))
    if cached is None or cached[0] is not properties:
        cached = (properties, {snake_name(camel): camel for camel in properties})
        _NAMES[id(properties)] = cached
    return cached[1]


def _fallback_camel(key: str) -> str:
    """A key the schema does not list (vendor ``customData``): plain lowerCamelCase."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)

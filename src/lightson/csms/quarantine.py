"""What the CSMS keeps of readings it will not plan on: a ``quarantine`` row per refused or
implausible value, with the whole frame as received (``docs/csms.md``, "Implausible
readings").

Two ways in: a message the standard's schemas refuse (a ``date-time`` that is not one, a
37-character ``transactionId``, a ``seqNo`` beyond 32 bits, a 1.6 value that is not a number)
is answered with its CALLERROR and quarantined whole; a schema-valid message with an
implausible reading (SoC 150 %, 1e308 W) is answered normally, the reading left out of
``meter_samples`` and quarantined with the rule it broke.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from lightson.csms.wire import ErrorCode, Frame, FrameError
from lightson.domain.plausibility import Implausible
from lightson.store import schema as db

SOURCE = "ocpp"
# Messages that carry readings or transaction state: a refusal of one of these loses data
# the planner or settlement would use, so the frame is kept. (A refused Heartbeat is not.)
READING_ACTIONS = frozenset(
    {
        "MeterValues",
        "TransactionEvent",
        "StartTransaction",
        "StopTransaction",
        "StatusNotification",
        "NotifyEVChargingNeeds",
    }
)
# Refusals that say nothing about the reading: our own failure, an unknown action.
_NOT_THE_READING = frozenset(
    {ErrorCode.INTERNAL_ERROR, ErrorCode.NOT_IMPLEMENTED, ErrorCode.NOT_SUPPORTED}
)


def quarantined(
    frame: Frame,
    station_id: str,
    site_id: str | None,
    received_at: datetime,
    field: str,
    value: str | None,
    reason: str,
) -> tuple[Table, Mapping[str, Any]]:
    return (
        db.quarantine,
        {
            "received_at": received_at,
            "source": SOURCE,
            "station_id": station_id,
            "site_id": site_id,
            "action": frame.action,
            "field": field[:200],
            "value": None if value is None else value[:200],
            "reason": reason[:200],
            "raw": frame.to_json(),
        },
    )


def implausible_rows(
    frame: Frame,
    station_id: str,
    site_id: str | None,
    received_at: datetime,
    found: list[Implausible],
) -> list[tuple[Table, Mapping[str, Any]]]:
    return [
        quarantined(frame, station_id, site_id, received_at, i.field, i.value, i.reason)
        for i in found
    ]


def refused_row(
    frame: Frame, error: FrameError, station_id: str, site_id: str | None, received_at: datetime
) -> tuple[Table, Mapping[str, Any]] | None:
    """The row for a CALL we refused, if it carried readings and the refusal was theirs."""
    if frame.action not in READING_ACTIONS or error.code in _NOT_THE_READING:
        return None
    path = str(error.details.get("field", "(payload)"))
    value = _value_at(frame.payload or {}, path)
    return quarantined(
        frame, station_id, site_id, received_at, dotted(path), value, error.code.value
    )


def dotted(path: str) -> str:
    """The wire layer's ``meterValue/0/sampledValue/2/value`` as
    ``meterValue[0].sampledValue[2].value`` (the field paths every edge names)."""
    return re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", path.replace("/", "."))


def _value_at(payload: Mapping[str, Any], path: str) -> str | None:
    node: Any = payload
    for part in path.replace("[", ".").replace("]", "").replace("/", ".").split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return None if isinstance(node, Mapping | list) else str(node)

"""The broker's names and messages, shared by every role (one place, so the roles agree).

Subjects (NATS):
- ``lightson.cmd.<station_id>``: a request to the gateway that holds the station's
  connection (it subscribes while the station is connected); the body is a
  :class:`Command`, the reply a :class:`CommandReply`. No gateway holds it: NATS answers
  "no responders" at once, which the sender reads as the station being offline.
- ``lightson.site.<site_id>.<kind>``: what a gateway tells the worker that owns a site, after
  the station's message is durable in the database: ``meter``, ``needs``, ``connected``;
  and ``grid``: a grid signal of the site (lost, restored) was stored by whoever saw it
  (the site meter, an operator). The worker reads the data itself from the database; the
  message only wakes it.

Key-value bucket ``lightson-leases`` (JetStream): key ``<site_id>``, value the worker's id.
Command ``args``: ``send_setpoint`` :func:`setpoint_args`; ``clear_profiles``
``{"evse_id": int | None}``; ``install_default`` ``{}``.

A worker controls a site only while it holds the lease; the key's revision when the lease
was taken is the fencing token carried by every command for that site, and a gateway refuses
a command whose token is lower than the highest it has seen for that site.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from lightson.domain.plan import Setpoint

COMMAND_PREFIX = "lightson.cmd"
SITE_PREFIX = "lightson.site"
LEASE_BUCKET = "lightson-leases"

SiteEventKind = Literal["meter", "needs", "connected", "grid"]
CommandOp = Literal["send_setpoint", "clear_profiles", "install_default"]


def command_subject(station_id: str) -> str:
    return f"{COMMAND_PREFIX}.{_token(station_id)}"


def site_subject(site_id: str, kind: SiteEventKind) -> str:
    return f"{SITE_PREFIX}.{_token(site_id)}.{kind}"


def site_wildcard(site_id: str) -> str:
    return f"{SITE_PREFIX}.{_token(site_id)}.*"


def _token(identifier: str) -> str:
    """A station or site id as one subject token: NATS splits on '.', and '*', '>' and
    white space are not allowed in a token, so those are refused rather than mangled."""
    if not identifier or any(c in identifier for c in ".*> \t\r\n"):
        raise ValueError(f"id {identifier!r} cannot be a broker subject token")
    return identifier


@dataclass(frozen=True)
class Command:
    """One SetpointSink call, sent to the gateway holding ``station_id``."""

    op: CommandOp
    station_id: str
    site_id: str
    fence: int  # the sender's lease revision for ``site_id``
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Command:
        body = json.loads(data)
        return cls(
            op=body["op"],
            station_id=str(body["station_id"]),
            site_id=str(body["site_id"]),
            fence=int(body["fence"]),
            args=dict(body.get("args") or {}),
        )


@dataclass(frozen=True)
class CommandReply:
    """The station's answer (``Accepted``, ``Rejected``, ...), or why there is none."""

    status: str
    error: str | None = None  # "fenced": a newer lease holds the site; "offline", ...

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> CommandReply:
        body = json.loads(data)
        return cls(status=str(body["status"]), error=body.get("error"))


def setpoint_args(
    evse_id: int,
    setpoint: Setpoint,
    transaction_id: str | None,
    max_offline_s: int | None,
) -> dict[str, Any]:
    """The ``args`` of a ``send_setpoint`` :class:`Command` (power in kW, from the vehicle's
    side; ``valid_until`` ISO 8601 with its offset)."""
    return {
        "evse_id": evse_id,
        "setpoint": {
            "evse_id": setpoint.evse_id,
            "power_kw": setpoint.power_kw,
            "valid_until": setpoint.valid_until.isoformat(),
        },
        "transaction_id": transaction_id,
        "max_offline_s": max_offline_s,
    }


def setpoint_from_args(args: dict[str, Any]) -> tuple[int, Setpoint, str | None, int | None]:
    """``(evse_id, setpoint, transaction_id, max_offline_s)`` back from :func:`setpoint_args`
    (a missing or malformed field raises ``KeyError``, ``TypeError`` or ``ValueError``)."""
    body = args["setpoint"]
    valid_until = datetime.fromisoformat(str(body["valid_until"]))
    if valid_until.tzinfo is None:
        raise ValueError("setpoint.valid_until must carry its offset")
    transaction_id, max_offline_s = args.get("transaction_id"), args.get("max_offline_s")
    return (
        int(args["evse_id"]),
        Setpoint(str(body["evse_id"]), float(body["power_kw"]), valid_until),
        None if transaction_id is None else str(transaction_id),
        None if max_offline_s is None else int(max_offline_s),
    )

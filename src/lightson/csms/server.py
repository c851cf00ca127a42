"""The charging-station management server: OCPP 2.1, 2.0.1 and 1.6J over WebSocket.

One :class:`CsmsServer` listens on a port; each station connects to ``ws://host:port/<id>``
(any path prefix; the last segment is the station id) offering the subprotocols it speaks.
The handshake checks HTTP Basic credentials against the registered station (security profile 1,
profile 2 when an ``ssl.SSLContext`` is given); unknown ids and wrong passwords get ``401`` and
no session. The station is then held to the version it was registered with.

Transaction events and meter values are committed to the store *before* the answer goes back,
so a crash after the answer loses nothing. Gaps in a transaction's ``seqNo`` are logged and
recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import itertools
import json
import logging
import os
import secrets
import ssl
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from sqlalchemy import Table, insert, update
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from lightson.csms.auth import check_password, hash_password
from lightson.csms.certificates import CsrRefusedError, StationCertificateAuthority
from lightson.csms.quarantine import implausible_rows, refused_row
from lightson.csms.reconcile import Reconciler
from lightson.csms.rpc import CallRefusedError, FrameQueue, OcppSession, RateLimit, after, on
from lightson.csms.tls import common_name, requires_client_certificate
from lightson.csms.translate import (
    Dialect,
    UnreadableValueError,
    charge_only_default,
    charging_needs,
    islanded_default,
    parse_timestamp,
    read_meter_values,
    schedule_update,
    setpoint_profile,
    timestamp,
    watts,
)
from lightson.csms.wire import ErrorCode, Frame, FrameError, OcppVersion
from lightson.domain.plan import Setpoint
from lightson.domain.telemetry import ChargingNeeds, MeterSample
from lightson.domain.time import Clock
from lightson.services.ratelimit import Buckets
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from lightson.store.transactions import station_transactions

LOGGER = logging.getLogger("lightson.csms")
PROFILE_ID_BASE = {"TxProfile": 99, "TxDefaultProfile": 199}  # + the EVSE id
REALM = "Lights On CSMS"


@functools.cache
def _unknown_station() -> StationRecord:
    """A stand-in checked for ids we don't know, made once (scrypt takes a while)."""
    return StationRecord(
        "", hash_password("no station has this password!"), "2.1", "charge-only", 0.0
    )


@dataclass(frozen=True)
class CsmsSettings:
    """``port=0`` takes a free port (tests). ``max_message_bytes`` bounds one frame;
    ``messages_per_second``/``burst`` pace each station, whose frames read ahead of the pace
    wait in a queue of at most ``waiting_frames`` frames and ``waiting_bytes`` characters (a
    CALL that finds it full is refused at once); ``ping_interval_s``/``ping_timeout_s`` are
    the WebSocket keepalive (None: off).

    ``offline_close_after_s``: a station not connected for this long (CSMS clock) has its
    open transactions closed, so its vehicle stops counting as plugged. 15 minutes: three
    missed heartbeats at the default interval and the live loop's own limit on a reading's
    age, so a network blip or a station's restart (seconds to a few minutes) never ends a
    session, while a vanished one stops steering its site within one more tick or two.
    ``boot_grace_s``: how long after a 2.x boot an unanswered transaction may wait for the
    station's queued events (a long queue is paced at ``messages_per_second``).
    ``available_grace_s``: how long after an ``Available`` status the station may still send
    its own end of the transaction at that EVSE before the CSMS closes it.
    ``offline_check_every_s``: real seconds between two looks at what is due."""

    host: str = "127.0.0.1"
    port: int = 9000
    heartbeat_interval_s: int = 300
    max_message_bytes: int = 256 * 1024
    messages_per_second: float = 20.0
    burst: int = 60
    waiting_frames: int = 120
    waiting_bytes: int = 1 << 20
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    response_timeout_s: float = 30.0
    max_offline_s: int = 300
    compression: bool = True
    # Connections waiting to be accepted: a fleet reconnecting after our restart comes at
    # once (asyncio's default of 100 refused some of 200 stations); the kernel caps it at
    # net.core.somaxconn.
    backlog: int = 4096
    failed_handshakes_per_minute: float = 1.0
    failed_handshakes_burst: int = 10
    handshake_timeout_s: float = 120.0  # handshakes queue for password checks in a storm
    offline_close_after_s: float = 900.0
    boot_grace_s: float = 300.0
    available_grace_s: float = 30.0
    offline_check_every_s: float = 1.0
    tls: ssl.SSLContext | None = None
    station_ca: StationCertificateAuthority | None = None  # signs stations' CSRs (A02/A03)


class StationOfflineError(Exception):
    """The station has no open session."""


class Telemetry:
    """Listeners for what stations report (the control loop subscribes here)."""

    def __init__(self) -> None:
        self.meter: list[Callable[[MeterSample], None]] = []
        self.needs: list[Callable[[ChargingNeeds], None]] = []
        self.connected: list[Callable[[str], None]] = []  # a station's session opened
        self.disconnected: list[Callable[[str], None]] = []  # ...and closed (not replaced)

    def publish_connected(self, station_id: str) -> None:
        for listener in self.connected:
            listener(station_id)

    def publish_disconnected(self, station_id: str) -> None:
        for listener in self.disconnected:
            listener(station_id)

    def publish_meter(self, samples: Sequence[MeterSample]) -> None:
        for sample in samples:
            for listener in self.meter:
                listener(sample)

    def publish_needs(self, needs: ChargingNeeds) -> None:
        for listener in self.needs:
            listener(needs)


class StationSession(OcppSession):
    """What every version shares: the server, the station record and the stored-first rule."""

    def __init__(
        self, server: CsmsServer, station: StationRecord, connection: ServerConnection
    ) -> None:
        version = OcppVersion(station.ocpp_version)
        super().__init__(
            station.id,
            connection,
            version,
            response_timeout_s=server.settings.response_timeout_s,
            rate_limit=RateLimit(server.settings.messages_per_second, server.settings.burst),
            waiting=FrameQueue(server.settings.waiting_frames, server.settings.waiting_bytes),
        )
        self.server = server
        self.station = station
        self.dialect = Dialect(station.dialect)
        self.booted = False
        self.v2x_operation_modes: tuple[str, ...] = ()
        self._signed_chain: str | None = None  # a chain just signed, sent after the answer
        self._raw: Mapping[str, Any] = {}
        self._frame: Frame | None = None  # the CALL being answered

    async def _answer(self, frame: Any) -> None:
        self._raw = frame.payload or {}
        self._frame = frame
        await super()._answer(frame)

    async def _send_error(self, error: FrameError) -> None:
        """A refused message that carried readings is kept in quarantine, then answered."""
        frame = self._frame
        if frame is not None and frame.message_id == error.message_id:
            row = refused_row(frame, error, self.id, self.station.site_id, self.now)
            if row is not None:
                LOGGER.warning("%s: %s refused: %s", self.id, frame.action, error.description)
                await self.server.store.commit([row])
        await super()._send_error(error)

    @property
    def now(self) -> datetime:
        return self.server.clock.now()

    # --- what every version answers the same way -------------------------------------------

    @on("BootNotification")
    async def on_boot_notification(self, **_: Any) -> dict[str, Any]:
        self.booted = True
        await self.server.reconciler.on_boot(self)  # before the answer: no new one is closed
        return {
            "current_time": timestamp(self.now),
            "interval": self.server.settings.heartbeat_interval_s,
            "status": "Accepted",
        }

    @after("BootNotification")
    async def after_boot_notification(self, **_: Any) -> None:
        await self.after_boot()
        await self.server.reconciler.after_boot(self)

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any) -> dict[str, Any]:
        return {"current_time": timestamp(self.now)}

    @on("DataTransfer")
    def on_data_transfer(self, **_: Any) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}  # no vendor extensions are known here

    @on("SignCertificate")
    def on_sign_certificate(self, **_: Any) -> dict[str, Any]:
        """A02/A03 (1.6: the security extension): the station's CSR, signed by the operator's
        CA when it names this station; the chain follows in ``CertificateSigned``."""
        self._signed_chain = None
        kind = self._raw.get("certificateType", "ChargingStationCertificate")
        authority = self.server.settings.station_ca
        if kind != "ChargingStationCertificate":
            why = ("UnsupportedCertType", f"{kind} certificates come from the V2G PKI")
        elif authority is None:
            why = ("NoCA", "no certificate authority is configured (--station-ca-cert)")
        else:
            try:
                self._signed_chain = authority.sign(self._raw["csr"], self.id, self.now)
            except CsrRefusedError as error:
                why = ("InvalidCSR", str(error))
        if self._signed_chain is not None:
            LOGGER.info("%s: certificate signed", self.id)
            return {"status": "Accepted"}
        LOGGER.warning("%s: certificate not signed: %s", self.id, why[1])
        if self.version is OcppVersion.V16:
            return {"status": "Rejected"}
        return {
            "status": "Rejected",
            "status_info": {"reason_code": why[0], "additional_info": why[1][:512]},
        }

    @after("SignCertificate")
    async def after_sign_certificate(self, **_: Any) -> None:
        chain, self._signed_chain = self._signed_chain, None
        if chain is None:
            return
        payload: dict[str, Any] = {"certificateChain": chain}
        if self.version is not OcppVersion.V16:
            payload["certificateType"] = "ChargingStationCertificate"
        try:
            answer = await self.request("CertificateSigned", payload)
            LOGGER.info("%s: certificate installed: %s", self.id, answer.get("status"))
        except (CallRefusedError, TimeoutError, ConnectionClosed, FrameError) as error:
            LOGGER.warning("%s: CertificateSigned failed: %s", self.id, error)

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any) -> dict[str, Any]:
        LOGGER.info("%s: firmware %s", self.id, self._raw.get("status"))
        return {}

    async def after_boot(self) -> None:
        """Install the default profile (and, in 2.1, learn V2X capability): charge-only at
        the registered rating, or 0 W while the station's site is islanded (a station that
        reboots in an outage must not charge from the island)."""
        try:
            await self.server.refresh_islanded(self.id)
            islanded = self.server.islanded_station(self.id)
            answer = await self.request("SetChargingProfile", self.server.default_profile(self))
            LOGGER.info(
                "%s: %s default profile %s",
                self.id,
                "islanded (0 W)" if islanded else "charge-only",
                answer.get("status"),
            )
            if self.version is OcppVersion.V21 and self.dialect is Dialect.CENTRAL_SETPOINT:
                self.v2x_operation_modes = await self.server.v2x_operation_modes(self.id)
        except (CallRefusedError, TimeoutError, ConnectionClosed) as error:
            LOGGER.warning("%s: configuring after boot failed: %s", self.id, error)

    async def store_meter(
        self,
        evse_id: int,
        meter_values: Sequence[Mapping[str, Any]],
        transaction_id: str | None,
        extra: Sequence[tuple[Table, Mapping[str, Any]]] = (),
        seq_no: int | None = None,
        field: str = "meterValue",
    ) -> None:
        """Store the plausible samples of ``meter_values`` (with ``extra`` rows, in one
        commit) and quarantine the implausible readings; ``field`` names the list in the
        payload. A 1.6 value that is not a number refuses the whole message."""
        try:
            read = read_meter_values(
                self.id,
                evse_id,
                meter_values,
                self.version,
                rating_kw=self.station.max_charge_kw,
                now=self.now,
                field=field,
                # Refused, a StopTransaction would be resent and then dropped: the end of the
                # transaction lost for one unreadable value. Leave the value out instead.
                refuse_unreadable=field != "transactionData",
            )
        except UnreadableValueError as error:  # OCPP-J: a field with an invalid value
            raise FrameError(
                ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
                str(error),
                self._frame.message_id if self._frame else "-1",
                {"field": error.field},
            ) from None
        samples = read.samples
        if read.implausible and self._frame is not None:
            LOGGER.warning(
                "%s: implausible readings left out: %s",
                self.id,
                "; ".join(i.message for i in read.implausible),
            )
            extra = [
                *extra,
                *implausible_rows(
                    self._frame, self.id, self.station.site_id, self.now, read.implausible
                ),
            ]
        rows = [
            *extra,
            *(
                (db.meter_samples, _sample_row(s, transaction_id, seq_no, entry))
                for entry, s in enumerate(samples)
            ),
        ]
        await self.server.store.commit(rows)
        self.server.telemetry.publish_meter(samples)


class Session2x(StationSession):
    """OCPP 2.0.1 and 2.1 stations."""

    @on("StatusNotification")
    async def on_status_notification(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        row = {
            "station_id": self.id,
            "evse_id": raw["evseId"],
            "connector_id": raw["connectorId"],
            "status": raw["connectorStatus"],
            "at": parse_timestamp(raw["timestamp"]),
        }
        await self.server.store.commit([(db.evse_status, row)])
        if row["status"] == "Available":
            await self.server.reconciler.on_available(self.id, row["evse_id"], row["at"])
        return {}

    @on("Authorize")
    def on_authorize(self, **_: Any) -> dict[str, Any]:
        return {"id_token_info": {"status": "Accepted"}}

    @on("TransactionEvent")
    async def on_transaction_event(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        transaction_id = raw["transactionInfo"]["transactionId"]
        # Only the first event of a transaction must name its EVSE: remember it.
        known_evse = self.server.transaction_evse.get((self.id, transaction_id))
        evse_id = raw.get("evse", {}).get("id", known_evse)
        if evse_id is not None:
            self.server.transaction_evse[(self.id, transaction_id)] = evse_id
        self.server.reconciler.heard(self.id, transaction_id)
        seq_no = int(raw["seqNo"])
        rows: list[tuple[Table, Mapping[str, Any]]] = [
            (
                db.transaction_events,
                {
                    "station_id": self.id,
                    "evse_id": evse_id,
                    "transaction_id": transaction_id,
                    "seq_no": seq_no,
                    "event_type": raw["eventType"],
                    "trigger_reason": raw["triggerReason"],
                    "at": parse_timestamp(raw["timestamp"]),
                    "offline": bool(raw.get("offline", False)),
                    "id_token": raw.get("idToken", {}).get("idToken"),
                    "received_at": self.now,
                    "payload": dict(raw),
                },
            )
        ]
        gap = self.server.sequence.observe(self.id, transaction_id, seq_no)
        if gap is not None:
            LOGGER.warning(
                "%s: transaction %s is missing seqNo %d..%d",
                self.id,
                transaction_id,
                gap[0],
                gap[1],
            )
            rows.append(
                (
                    db.sequence_gaps,
                    {
                        "station_id": self.id,
                        "transaction_id": transaction_id,
                        "first_missing": gap[0],
                        "last_missing": gap[1],
                        "noticed_at": self.now,
                    },
                )
            )
        await self.store_meter(
            evse_id or 0, raw.get("meterValue", []), transaction_id, extra=rows, seq_no=seq_no
        )
        if "idToken" in raw:
            return {"id_token_info": {"status": "Accepted"}}
        return {}

    @on("MeterValues")
    async def on_meter_values(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        await self.store_meter(int(raw["evseId"]), raw["meterValue"], None)
        return {}

    @on("NotifyEVChargingNeeds")
    async def on_notify_ev_charging_needs(self, **_: Any) -> dict[str, Any]:
        needs = charging_needs(self.id, self._raw, self.now)
        await self.server.store.commit([(db.charging_needs, _needs_row(needs))])
        self.server.telemetry.publish_needs(needs)
        return {"status": "Accepted"}

    @on("ReportChargingProfiles")
    def on_report_charging_profiles(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        self.server.reported_profiles.setdefault(self.id, []).extend(raw["chargingProfile"])
        return {}

    @on("NotifyReport")
    def on_notify_report(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> dict[str, Any]:
        LOGGER.info("%s: security event %s", self.id, self._raw.get("type"))
        return {}

    @on("LogStatusNotification")
    def on_log_status_notification(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyChargingLimit")
    def on_notify_charging_limit(self, **_: Any) -> dict[str, Any]:
        LOGGER.info("%s: external charging limit %s", self.id, self._raw.get("chargingLimit"))
        return {}

    @on("ClearedChargingLimit")
    def on_cleared_charging_limit(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyEVChargingSchedule")
    def on_notify_ev_charging_schedule(self, **_: Any) -> dict[str, Any]:
        return {"status": "Accepted"}


class Session16(StationSession):
    """OCPP 1.6J stations."""

    @on("StatusNotification")
    async def on_status_notification(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        row = {
            "station_id": self.id,
            "evse_id": raw["connectorId"],
            "connector_id": raw["connectorId"],
            "status": raw["status"],
            "at": parse_timestamp(raw["timestamp"]) if "timestamp" in raw else self.now,
        }
        await self.server.store.commit([(db.evse_status, row)])
        if row["status"] == "Available":
            await self.server.reconciler.on_available(self.id, row["evse_id"], row["at"])
        return {}

    @on("Authorize")
    def on_authorize(self, **_: Any) -> dict[str, Any]:
        return {"id_tag_info": {"status": "Accepted"}}

    def _event(
        self, event_type: str, transaction_id: int, connector_id: int | None
    ) -> dict[str, Any]:
        raw = self._raw
        return {
            "station_id": self.id,
            "evse_id": connector_id,
            "transaction_id": str(transaction_id),
            "seq_no": None,
            "event_type": event_type,
            "trigger_reason": raw.get("reason"),
            "at": parse_timestamp(raw["timestamp"]),
            "offline": False,
            "id_token": raw.get("idTag"),
            "received_at": self.now,
            "payload": dict(raw),
        }

    @on("StartTransaction")
    async def on_start_transaction(self, **_: Any) -> dict[str, Any]:
        row = self._event("Started", 0, int(self._raw["connectorId"]))
        transaction_id = await self.server.start_transaction_16(row)
        return {"transaction_id": transaction_id, "id_tag_info": {"status": "Accepted"}}

    @on("StopTransaction")
    async def on_stop_transaction(self, **_: Any) -> dict[str, Any]:
        transaction_id = int(self._raw["transactionId"])
        known = await asyncio.to_thread(
            station_transactions, self.server.store, self.id, str(transaction_id)
        )
        if not known:
            return await self._stop_unknown(transaction_id)
        self.server.reconciler.ended_by_station(self.id, str(transaction_id))
        connector_id = known[0].evse_id  # from the store: also right after a restart
        row = self._event("Ended", transaction_id, connector_id)
        await self.store_meter(
            connector_id or 0,
            self._raw.get("transactionData", []),
            str(transaction_id),
            extra=[(db.transaction_events, row)],
            field="transactionData",
        )
        if "idTag" in self._raw:
            return {"id_tag_info": {"status": "Accepted"}}
        return {}

    async def _stop_unknown(self, transaction_id: int) -> dict[str, Any]:
        """A StopTransaction for an id never issued to this station. 1.6 (4.10): the Central
        System SHALL answer it (else the station resends it), cannot prevent a transaction
        from stopping, and its ``idTagInfo`` is about the tag, which the station puts in its
        authorization cache: so the tag gets what Authorize gives it here, not ``Invalid``
        (that would lock a good card out). It is not stored as the end of anything; the
        frame is kept in ``quarantine`` and logged."""
        LOGGER.warning("%s: StopTransaction for unknown transaction %d", self.id, transaction_id)
        row = {
            "received_at": self.now,
            "source": "ocpp",
            "station_id": self.id,
            "action": "StopTransaction",
            "field": "transactionId",
            "value": str(transaction_id),
            "reason": "no transaction with this id was started at this station",
            "raw": json.dumps(self._raw),
        }
        await self.server.store.commit([(db.quarantine, row)])
        if "idTag" in self._raw:
            return {"id_tag_info": {"status": "Accepted"}}
        return {}

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("MeterValues")
    async def on_meter_values(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        transaction = raw.get("transactionId")
        await self.store_meter(
            int(raw["connectorId"]),
            raw["meterValue"],
            None if transaction is None else str(transaction),
        )
        if transaction is not None:
            taken = [parse_timestamp(m["timestamp"]) for m in raw["meterValue"]]
            await self.server.reconciler.on_meter_values_16(
                self.id, str(transaction), int(raw["connectorId"]), max(taken, default=None)
            )
        return {}


class SequenceTracker:
    """The last ``seqNo`` seen per transaction; reports the missing range on a jump."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def observe(self, station_id: str, transaction_id: str, seq_no: int) -> tuple[int, int] | None:
        key = (station_id, transaction_id)
        last = self._last.get(key)
        self._last[key] = seq_no if last is None else max(last, seq_no)
        if last is not None and seq_no > last + 1:
            return (last + 1, seq_no - 1)
        return None


class CsmsServer:
    """The CSMS: sessions by station id, and the calls the control loop makes on them."""

    def __init__(self, store: Store, clock: Clock, settings: CsmsSettings | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or CsmsSettings()
        self.sessions: dict[str, StationSession] = {}
        self.telemetry = Telemetry()
        # Whether a station's site is islanded now (the operations server wires the control
        # loop in): its default profile is then 0 W, at boot too.
        self.islanded_station: Callable[[str], bool] = lambda _station_id: False
        # Awaited before a booted station's default is chosen: a gateway without the control
        # loop reads the site's grid state from the database there (``lightson gateway``).
        self.refresh_islanded: Callable[[str], Awaitable[None]] = _nothing_to_refresh
        # Whether another process holds a station's connection now (``lightson gateway``:
        # asked over the broker). The reconciler never closes what another gateway holds;
        # ``None``: nobody could say, nothing is closed yet. One process: never.
        self.held_elsewhere: Callable[[str], Awaitable[bool | None]] = _held_nowhere_else
        self.sequence = SequenceTracker()
        self.reported_profiles: dict[str, list[Mapping[str, Any]]] = {}
        self.reconciler = Reconciler(self)
        self._server: Server | None = None
        self._profile_ids = itertools.count(100)
        self.transaction_evse: dict[tuple[str, str], int] = {}
        self.rejected_handshakes = 0
        # Failed handshakes by source address: 10, then one a minute (a fleet behind one
        # NAT address that all fail is misconfigured, not attacked; it gets in once fixed).
        self.failed_handshakes = Buckets(
            per_second=self.settings.failed_handshakes_per_minute / 60,
            burst=self.settings.failed_handshakes_burst,
        )
        self._secret = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._hashing = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, StationRecord] = (
            weakref.WeakKeyDictionary()
        )

    def profile_id(self, station_id: str, evse_id: int, purpose: str) -> int:
        """One profile id per (station, EVSE, purpose): each new setpoint replaces the last
        (OCPP 2.x K01.FR.05; a new id at the same stack level and purpose is refused). The
        same after a restart, so a restarted CSMS replaces what a charger holds instead of
        being refused: 99 + EVSE for transaction profiles (100 at EVSE 1), 199 + EVSE for
        default ones (200 at EVSE 1). Never change them: a charger holding the old id would
        refuse the new one."""
        del station_id  # ids are per station: the same scheme at every one
        return PROFILE_ID_BASE.get(purpose, 299) + evse_id

    async def start_transaction_16(self, started: Mapping[str, Any]) -> int:
        """Store a 1.6 ``Started`` row and return the transaction id it was given: the row's
        own id in ``transaction_events``, so ids are unique across restarts and across
        gateways sharing one database (the database's sequence hands them out). Committed
        before it returns (the answer carries the id)."""
        return await asyncio.to_thread(_insert_started, self.store, started)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            subprotocols=[Subprotocol(v.subprotocol) for v in OcppVersion],
            select_subprotocol=self._select_subprotocol,
            process_request=self._authenticate,
            compression="deflate" if self.settings.compression else None,
            max_size=self.settings.max_message_bytes,
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
            ssl=self.settings.tls,
            open_timeout=self.settings.handshake_timeout_s,
            backlog=self.settings.backlog,
        )
        await self.reconciler.start()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        sockets = list(self._server.sockets)
        port: int = sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.tls is not None else "ws"
        return f"{scheme}://{self.settings.host}:{self.port}/ocpp"

    async def stop(self) -> None:
        await self.reconciler.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._hashing.shutdown(wait=False)

    async def __aenter__(self) -> CsmsServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- handshake ---------------------------------------------------------------------------

    def _station_for(self, request: Request) -> StationRecord | None:
        path = urllib.parse.urlsplit(request.path).path
        station_id = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
        return self.store.station(station_id) if station_id else None

    async def _authenticate(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        address = str(connection.remote_address[0]) if connection.remote_address else "?"
        if self.failed_handshakes.wait_s(address) > 0:
            # It kept guessing: refused before any password is hashed (scrypt is costly).
            self.rejected_handshakes += 1
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        station = await asyncio.to_thread(self._station_for, request)
        header = request.headers.get("Authorization")
        good = False
        if requires_client_certificate(self.settings.tls):
            # Security profile 3: TLS already required a certificate from a trusted CA; it
            # must name the station it connects as. No password is asked.
            certificate = connection.transport.get_extra_info("peercert")
            named = common_name(certificate)
            good = station is not None and named == station.id
            if not good:
                LOGGER.warning(
                    "refused handshake for %s: its certificate names %r",
                    request.path[:100],
                    named,
                )
        elif header is not None:
            with contextlib.suppress(InvalidHeader, ValueError):
                username, password = parse_authorization_basic(header)
                if station is None:
                    # Pay the same hashing cost as for a known id: no enumeration by timing.
                    await self._check(_unknown_station(), password)
                else:
                    good = username == station.id and await self._check(station, password)
        if not good:
            self.failed_handshakes.take(address)
            self.rejected_handshakes += 1
            LOGGER.warning("refused handshake for %s", request.path)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic(REALM)
            return response
        assert station is not None
        self._handshakes[connection] = station
        return None

    async def _check(self, station: StationRecord, password: str) -> bool:
        """scrypt costs tens of milliseconds on purpose; a reconnecting fleet would pay it
        again and again, so a password that passed is remembered (as a keyed digest, bound to
        the stored hash) for as long as the server runs."""
        digest = hmac.new(self._secret, f"{station.password_hash}\0{password}".encode(), "sha256")
        known = self._verified.get(station.id)
        if known is not None and hmac.compare_digest(known, digest.digest()):
            return True
        loop = asyncio.get_running_loop()
        good = await loop.run_in_executor(
            self._hashing, check_password, password, station.password_hash
        )
        if good:
            self._verified[station.id] = digest.digest()
        return good

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        station = self._handshakes.get(connection)
        if station is None:
            return None
        wanted = OcppVersion(station.ocpp_version).subprotocol
        return Subprotocol(wanted) if wanted in offered else None

    async def _handle(self, connection: ServerConnection) -> None:
        station = self._handshakes.pop(connection, None)
        if station is None or connection.subprotocol is None:
            await connection.close(1002, "no agreed OCPP version")
            return
        session_type = Session16 if station.ocpp_version == "1.6" else Session2x
        session = session_type(self, station, connection)
        previous = self.sessions.get(station.id)
        self.sessions[station.id] = session
        self.reconciler.connected(station.id, session.version)
        if previous is not None:
            LOGGER.info("%s: reconnected; the older connection is closed", station.id)
            await previous._connection.close(1000, "replaced by a new connection")
        # A station that reconnects without booting (its link dropped, or we restarted)
        # holds whatever it held: the control loop re-sends its default and setpoint now.
        asyncio.get_running_loop().call_soon(self.telemetry.publish_connected, station.id)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self.sessions.get(station.id) is session:
                del self.sessions[station.id]
                self.reconciler.lost(station.id)
                self.telemetry.publish_disconnected(station.id)

    # --- calls to stations --------------------------------------------------------------------

    def session(self, station_id: str) -> StationSession:
        session = self.sessions.get(station_id)
        if session is None:
            raise StationOfflineError(f"station {station_id!r} is not connected")
        return session

    def default_profile(self, session: StationSession) -> dict[str, Any]:
        """The station-wide default the station should hold now (see :meth:`install_default`)."""
        if self.islanded_station(session.id):
            return islanded_default(session.version)
        return charge_only_default(session.version, session.station.max_charge_kw)

    async def install_default(self, station_id: str) -> str:
        """(Re)install the station-wide default profile under our setpoints: charge-only at
        the registered rating, or 0 W while its site is islanded (``islanded_station``).
        Returns the station's answer."""
        session = self.session(station_id)
        try:
            answer = await session.request("SetChargingProfile", self.default_profile(session))
        except TimeoutError:
            return "Timeout"
        except CallRefusedError as error:
            return f"Error: {error.code}"
        except ConnectionClosed:
            return "Offline"
        return str(answer.get("status"))

    async def send_setpoint(
        self,
        station_id: str,
        evse_id: int,
        setpoint: Setpoint,
        transaction_id: str | None = None,
        *,
        max_offline_s: int | None = None,
    ) -> str:
        """Send a setpoint as the station's version and dialect say, record it, and return
        the station's answer (``Accepted``, ``Rejected``, or ``Timeout``/``Error``).
        ``max_offline_s`` (2.1): how long the station may follow it without us (default
        ``settings.max_offline_s``; an islanded site's setpoints hold longer)."""
        session = self.session(station_id)
        purpose = "TxProfile" if transaction_id is not None else "TxDefaultProfile"
        payload = setpoint_profile(
            setpoint,
            session.version,
            session.dialect,
            evse_id=evse_id,
            profile_id=self.profile_id(station_id, evse_id, purpose),
            now=self.clock.now(),
            transaction_id=transaction_id,
            max_offline_s=self.settings.max_offline_s if max_offline_s is None else max_offline_s,
        )
        message = None
        try:
            answer = await session.request("SetChargingProfile", payload)
            status = str(answer.get("status"))
            message = _status_info(answer)
        except TimeoutError:
            status, message = "Timeout", "no answer"
        except CallRefusedError as error:
            status, message = "Error", f"{error.code}: {error.description}"[:200]
        except FrameError as error:
            status, message = "Error", f"invalid answer: {error.description}"[:200]
        except ConnectionClosed:
            status, message = "Offline", "the connection closed before the answer"
        await self.store.commit(
            [
                (
                    db.setpoints_sent,
                    {
                        "station_id": station_id,
                        "evse_id": evse_id,
                        "power_kw": setpoint.power_kw,
                        "power_w_sent": watts(setpoint, session.dialect),
                        "valid_until": setpoint.valid_until,
                        "sent_at": self.clock.now(),
                        "status": status,
                        "message": message,
                    },
                )
            ]
        )
        return status

    async def update_dynamic_schedule(
        self, station_id: str, profile_id: int, setpoint: Setpoint
    ) -> str:
        session = self.session(station_id)
        if session.version is not OcppVersion.V21:
            raise ValueError("UpdateDynamicSchedule is OCPP 2.1 only")
        answer = await session.request(
            "UpdateDynamicSchedule", schedule_update(setpoint, profile_id)
        )
        return str(answer.get("status"))

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str:
        """Clear our setpoint profiles (stack level 1); the charge-only default stays."""
        session = self.session(station_id)
        if session.version is OcppVersion.V16:
            payload: dict[str, Any] = {"stackLevel": 1}
            if evse_id is not None:
                payload["connectorId"] = evse_id
        else:
            criteria: dict[str, Any] = {"stackLevel": 1}
            if evse_id is not None:
                criteria["evseId"] = evse_id
            payload = {"chargingProfileCriteria": criteria}
        answer = await session.request("ClearChargingProfile", payload)
        return str(answer.get("status"))

    async def get_variables(
        self, station_id: str, wanted: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], str | None]:
        """Device-model values (2.x): ``{(component, variable): value or None}``."""
        session = self.session(station_id)
        answer = await session.request(
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": component}, "variable": {"name": variable}}
                    for component, variable in wanted
                ]
            },
        )
        return {
            (item["component"]["name"], item["variable"]["name"]): (
                item.get("attributeValue") if item["attributeStatus"] == "Accepted" else None
            )
            for item in answer["getVariableResult"]
        }

    async def set_variables(
        self, station_id: str, values: Mapping[tuple[str, str], str]
    ) -> dict[tuple[str, str], str]:
        session = self.session(station_id)
        answer = await session.request(
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "attributeValue": value,
                        "component": {"name": component},
                        "variable": {"name": variable},
                    }
                    for (component, variable), value in values.items()
                ]
            },
        )
        return {
            (item["component"]["name"], item["variable"]["name"]): item["attributeStatus"]
            for item in answer["setVariableResult"]
        }

    async def v2x_operation_modes(self, station_id: str) -> tuple[str, ...]:
        """What a 2.1 station says it can do (``V2XChargingCtrlr.SupportedOperationModes``)."""
        values = await self.get_variables(
            station_id,
            [("V2XChargingCtrlr", "Enabled"), ("V2XChargingCtrlr", "SupportedOperationModes")],
        )
        if values.get(("V2XChargingCtrlr", "Enabled")) != "true":
            return ()
        modes = values.get(("V2XChargingCtrlr", "SupportedOperationModes")) or ""
        return tuple(mode for mode in modes.split(",") if mode)

    async def request_start(self, station_id: str, evse_id: int, id_token: str) -> str:
        session = self.session(station_id)
        if session.version is OcppVersion.V16:
            answer = await session.request(
                "RemoteStartTransaction", {"connectorId": evse_id, "idTag": id_token}
            )
        else:
            answer = await session.request(
                "RequestStartTransaction",
                {
                    "evseId": evse_id,
                    "remoteStartId": next(self._profile_ids),
                    "idToken": {"idToken": id_token, "type": "Central"},
                },
            )
        return str(answer.get("status"))

    async def request_stop(self, station_id: str, transaction_id: str) -> str:
        session = self.session(station_id)
        if session.version is OcppVersion.V16:
            answer = await session.request(
                "RemoteStopTransaction", {"transactionId": int(transaction_id)}
            )
        else:
            answer = await session.request(
                "RequestStopTransaction", {"transactionId": transaction_id}
            )
        return str(answer.get("status"))

    # --- certificates (A02-A05; the 1.6 security extension) ------------------------------

    async def install_certificate(self, station_id: str, certificate_type: str, pem: str) -> str:
        """Install a root certificate on the station (``CSMSRootCertificate``,
        ``ManufacturerRootCertificate``, ...; 1.6: ``CentralSystemRootCertificate``). Returns
        the station's answer."""
        session = self.session(station_id)
        answer = await session.request(
            "InstallCertificate", {"certificateType": certificate_type, "certificate": pem}
        )
        return str(answer.get("status"))

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """The certificates the station holds, as their hash data (``certificateHashData``
        entries: 2.x with ``certificateType``). 1.6 asks for one type at a time: the first
        of ``certificate_types`` (required there)."""
        session = self.session(station_id)
        if session.version is OcppVersion.V16:
            if not certificate_types:
                raise ValueError("OCPP 1.6 asks for one certificate type at a time")
            answer = await session.request(
                "GetInstalledCertificateIds", {"certificateType": certificate_types[0]}
            )
            return [dict(h) for h in answer.get("certificateHashData", [])]
        payload = {"certificateType": list(certificate_types)} if certificate_types else {}
        answer = await session.request("GetInstalledCertificateIds", payload)
        return [dict(h) for h in answer.get("certificateHashDataChain", [])]

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str:
        """Delete the certificate with ``hash_data`` (as ``installed_certificates`` gives it:
        ``hashAlgorithm``, ``issuerNameHash``, ``issuerKeyHash``, ``serialNumber``)."""
        session = self.session(station_id)
        keys = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash", "serialNumber")
        answer = await session.request(
            "DeleteCertificate", {"certificateHashData": {k: hash_data[k] for k in keys}}
        )
        return str(answer.get("status"))

    async def request_station_certificate(self, station_id: str) -> str:
        """Ask the station for a new key and a CSR (A02/A03 triggered: 2.x ``TriggerMessage``
        of ``SignChargingStationCertificate``, 1.6 ``ExtendedTriggerMessage`` of
        ``SignChargePointCertificate``); its ``SignCertificate`` follows. Returns its answer."""
        session = self.session(station_id)
        if session.version is OcppVersion.V16:
            action, wanted = "ExtendedTriggerMessage", "SignChargePointCertificate"
        else:
            action, wanted = "TriggerMessage", "SignChargingStationCertificate"
        answer = await session.request(action, {"requestedMessage": wanted})
        return str(answer.get("status"))

    async def get_charging_profiles(self, station_id: str, request_id: int) -> str:
        """Ask a 2.x station to report its profiles (they arrive as ReportChargingProfiles)."""
        session = self.session(station_id)
        answer = await session.request(
            "GetChargingProfiles",
            {"requestId": request_id, "chargingProfile": {"chargingProfilePurpose": "TxProfile"}},
        )
        return str(answer.get("status"))


def _insert_started(store: Store, started: Mapping[str, Any]) -> int:
    """Insert the row under a placeholder id, then name the transaction after the row, in
    one database transaction. Before 2026-12-05 ids counted on from the largest row id at
    start, one per transaction: each was at most its own Started row's id, so none repeats."""
    events = db.transaction_events
    placeholder = f"new-{secrets.token_hex(8)}"
    with store.engine.begin() as connection:
        result = connection.execute(
            insert(events).values({**started, "transaction_id": placeholder})
        )
        key = result.inserted_primary_key
        assert key is not None
        row_id = int(key[0])
        connection.execute(
            update(events).where(events.c.id == row_id).values(transaction_id=str(row_id))
        )
    return row_id


async def _nothing_to_refresh(_station_id: str) -> None:
    return None


async def _held_nowhere_else(_station_id: str) -> bool | None:
    return False


def _sample_row(
    sample: MeterSample, transaction_id: str | None, seq_no: int | None, entry: int
) -> dict[str, Any]:
    return {
        "seq_no": seq_no,
        "entry": entry if seq_no is not None else None,
        "station_id": sample.station_id,
        "evse_id": sample.evse_id,
        "transaction_id": transaction_id,
        "at": sample.at,
        "power_kw": sample.power_kw,
        "energy_imported_kwh": sample.energy_imported_kwh,
        "energy_exported_kwh": sample.energy_exported_kwh,
        "soc": sample.soc,
    }


def _status_info(answer: Mapping[str, Any]) -> str | None:
    """The station's reason for its answer (2.x ``statusInfo``), as stored: ``reasonCode``,
    then ``: additionalInfo`` when it gave one."""
    info = answer.get("statusInfo")
    if not isinstance(info, Mapping) or "reasonCode" not in info:
        return None
    text = str(info["reasonCode"])
    if info.get("additionalInfo"):
        text = f"{text}: {info['additionalInfo']}"
    return text[:200]


def _needs_row(needs: ChargingNeeds) -> dict[str, Any]:
    return {
        "station_id": needs.station_id,
        "evse_id": needs.evse_id,
        "at": needs.at,
        "departure": needs.departure,
        "energy_request_kwh": needs.energy_request_kwh,
        "max_charge_kw": needs.max_charge_kw,
        "max_discharge_kw": needs.max_discharge_kw,
        "target_soc": needs.target_soc,
        "bidirectional": needs.bidirectional,
        "min_charge_kw": needs.min_charge_kw,
        "min_discharge_kw": needs.min_discharge_kw,
    }


__all__ = ["CsmsServer", "CsmsSettings", "StationOfflineError", "Telemetry"]

"""The station side of the CSMS: one session per connected station, answering what it sends
and storing it (gateway side).

:class:`StationSession` holds what every OCPP version shares; :class:`Session2x` and
:class:`Session16` answer their version's messages. Transaction events and meter values are
committed to the store *before* the answer goes back, so a crash after the answer loses
nothing; gaps in a transaction's ``seqNo`` are logged and recorded (:class:`SequenceTracker`).
What stations report is published to listeners (:class:`Telemetry`): the control loop in one
process, the broker in a gateway. This module never imports the control loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from lightson.csms.certificates import CsrRefusedError
from lightson.csms.quarantine import implausible_rows, refused_row
from lightson.csms.rpc import CallRefusedError, FrameQueue, OcppSession, RateLimit, after, on
from lightson.csms.translate import (
    Dialect,
    UnreadableValueError,
    charging_needs,
    parse_timestamp,
    read_meter_values,
    timestamp,
)
from lightson.csms.wire import ErrorCode, Frame, FrameError, OcppVersion
from lightson.domain.telemetry import ChargingNeeds, MeterSample
from lightson.store import StationRecord
from lightson.store import schema as db
from lightson.store.transactions import station_transactions

if TYPE_CHECKING:
    from lightson.csms.server import CsmsServer

LOGGER = logging.getLogger("lightson.csms")


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

"""The station side of the CSMS: one session per connected station, answering what it sends
and storing it (gateway side).

:class:`StationSession` holds what every OCPP version shares; ``Session2x``
(``csms.session_2x``) and ``Session16`` (``csms.session_16``) answer their version's
messages. Transaction events and meter values are committed to the store *before* the
answer goes back, so a crash after the answer loses nothing; gaps in a transaction's
``seqNo`` are logged and recorded (:class:`SequenceTracker`). What stations report is
published to listeners (:class:`Telemetry`): the control loop in one process, the broker in
a gateway. This module never imports the control loop.
"""

from __future__ import annotations

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
    read_meter_values,
    timestamp,
)
from lightson.csms.wire import ErrorCode, Frame, FrameError, OcppVersion
from lightson.domain.telemetry import ChargingNeeds, MeterSample
from lightson.store import StationRecord
from lightson.store import schema as db

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

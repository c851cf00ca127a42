"""An emulated charging station with EVs, speaking OCPP 2.1, 2.0.1 or 1.6J to a CSMS.

It behaves as the standard says a station does, not as our server happens to expect:

- it boots, reports connector status and heartbeats at the interval the CSMS gives;
- a plug-in starts a transaction (``TransactionEvent`` Started with ``seqNo`` from 0, or 1.6
  ``StartTransaction``) and, in 2.x, sends ``NotifyEVChargingNeeds`` (with
  ``v2xChargingParameters`` in 2.1 when the car and charger are bidirectional);
- the power it delivers follows the composite of its installed charging profiles: per EVSE the
  valid ``TxProfile`` of the running transaction, else the ``TxDefaultProfile`` for the EVSE or
  for the whole station, highest ``stackLevel`` first; a period's ``operationMode`` (2.1)
  decides between following a signed ``setpoint`` and honouring a ``limit``; a negative
  ``limit`` discharges only on a ``negative-limit`` charger; no profile means full power;
- it refuses what a station refuses (a ``TxProfile`` with no matching transaction, a
  ``CentralSetpoint`` on a charger without V2X);
- messages that belong to a transaction are queued while the connection is down and sent in
  order after reconnecting (2.x ``TransactionEvent`` with ``offline: true``); a 2.1 profile with
  ``invalidAfterOfflineDuration`` stops counting once the station has been offline longer than
  its ``maxOfflineDuration``.

Time comes from the injected clock; :meth:`EmulatedStation.advance` moves the physics on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.headers import build_authorization_basic
from websockets.typing import Subprotocol

from lightson.csms.rpc import CallRefusedError, OcppSession, after, on
from lightson.csms.translate import parse_timestamp, timestamp
from lightson.csms.wire import FrameError, OcppVersion
from lightson.domain.time import Clock
from lightson.emulator.certificates import CertificateStore

LOGGER = logging.getLogger("lightson.emulator")
AC_VOLTS = 230.0
V2X_OPERATION_MODES = ("Idle", "ChargingOnly", "CentralSetpoint")
# What a CSMS triggers to have the station send a new CSR (2.x, the 1.6 security extension).
_SIGN_REQUESTS = ("SignChargingStationCertificate", "SignChargePointCertificate")


@dataclass
class EmulatedEv:
    """A vehicle: energy in kWh, limits in kW (magnitudes), SoC as a fraction."""

    battery_kwh: float
    soc: float
    max_charge_kw: float
    max_discharge_kw: float = 0.0
    departure: datetime | None = None
    target_soc: float = 0.9
    min_soc: float = 0.1

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_kw > 0


@dataclass
class InstalledProfile:
    evse_id: int
    payload: Mapping[str, Any]  # the profile as received (wire names, 2.x layout)
    received_at: datetime

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def purpose(self) -> str:
        return str(self.payload["chargingProfilePurpose"])

    @property
    def stack_level(self) -> int:
        return int(self.payload["stackLevel"])


@dataclass
class Evse:
    id: int
    max_charge_kw: float
    max_discharge_kw: float
    ev: EmulatedEv | None = None
    transaction_id: str | None = None
    transaction_started: datetime | None = None
    seq_no: int = 0
    power_kw: float = 0.0
    imported_wh: float = 0.0
    exported_wh: float = 0.0
    status: str = "Available"


@dataclass
class _Queued:
    action: str
    build: Callable[[], Mapping[str, Any]]
    on_answer: Callable[[Mapping[str, Any]], None] | None = None


class EmulatorSession(OcppSession):
    """The station side of the connection: answers what the CSMS asks."""

    def __init__(self, station: EmulatedStation, connection: ClientConnection) -> None:
        super().__init__(station.id, connection, station.version, response_timeout_s=30.0)
        self.station = station
        self.received: list[str] = []  # raw frames from the CSMS, for tests and debugging

    async def route_message(self, raw_msg: str | bytes) -> None:
        text = raw_msg if isinstance(raw_msg, str) else raw_msg.decode(errors="replace")
        self.received.append(text)
        del self.received[:-200]
        await super().route_message(raw_msg)

    # --- smart charging ---------------------------------------------------------------------

    @on("SetChargingProfile")
    def on_set_charging_profile(self, **_: Any) -> dict[str, Any]:
        return self.station.install_profile(self._raw_payload)

    @on("ClearChargingProfile")
    def on_clear_charging_profile(self, **_: Any) -> dict[str, Any]:
        return {"status": self.station.clear_profiles(self._raw_payload)}

    @on("GetChargingProfiles")
    def on_get_charging_profiles(self, **_: Any) -> dict[str, Any]:
        found = [p for p in self.station.profiles.values() if p.purpose == "TxProfile"]
        return {"status": "Accepted" if found else "NoProfiles"}

    @after("GetChargingProfiles")
    async def after_get_charging_profiles(self, **_: Any) -> None:
        found = [p for p in self.station.profiles.values() if p.purpose == "TxProfile"]
        by_evse: dict[int, list[Mapping[str, Any]]] = {}
        for profile in found:
            by_evse.setdefault(profile.evse_id, []).append(profile.payload)
        request_id = int(self._last_request_id)
        for evse_id, profiles in by_evse.items():
            await self.request(
                "ReportChargingProfiles",
                {
                    "requestId": request_id,
                    "chargingLimitSource": "CSO",
                    "evseId": evse_id,
                    "chargingProfile": profiles,
                },
            )

    @on("UpdateDynamicSchedule")
    def on_update_dynamic_schedule(self, **_: Any) -> dict[str, Any]:
        return {"status": self.station.update_dynamic(self._raw_payload)}

    # --- device model -----------------------------------------------------------------------

    @on("GetVariables")
    def on_get_variables(self, **_: Any) -> dict[str, Any]:
        results = []
        for item in self._raw_payload["getVariableData"]:
            value = self.station.variable(item["component"]["name"], item["variable"]["name"])
            result = {"component": item["component"], "variable": item["variable"]}
            if value is None:
                result["attributeStatus"] = "UnknownVariable"
            else:
                result["attributeStatus"] = "Accepted"
                result["attributeValue"] = value
            results.append(result)
        return {"get_variable_result": results}

    @on("SetVariables")
    def on_set_variables(self, **_: Any) -> dict[str, Any]:
        results = []
        for item in self._raw_payload["setVariableData"]:
            status = self.station.set_variable(
                item["component"]["name"], item["variable"]["name"], item["attributeValue"]
            )
            results.append(
                {
                    "attributeStatus": status,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return {"set_variable_result": results}

    # --- remote transactions ----------------------------------------------------------------

    @on("RequestStartTransaction")
    def on_request_start_transaction(self, **_: Any) -> dict[str, Any]:
        evse = self.station.evses.get(int(self._raw_payload.get("evseId", 1)))
        ok = evse is not None and evse.ev is not None
        return {"status": "Accepted" if ok else "Rejected"}

    @on("RequestStopTransaction")
    def on_request_stop_transaction(self, **_: Any) -> dict[str, Any]:
        evse = self.station.evse_with_transaction(self._raw_payload["transactionId"])
        if evse is None:
            return {"status": "Rejected"}
        self.station.later(self.station.stop_transaction(evse.id, "Remote"))
        return {"status": "Accepted"}

    @on("GetTransactionStatus")
    def on_get_transaction_status(self, **_: Any) -> dict[str, Any]:
        """E14: whether a transaction goes on here, and whether messages for it (or any,
        without an id) wait in the queue."""
        wanted = self._raw_payload.get("transactionId")
        queued = [
            item.build().get("transactionInfo", {}).get("transactionId")
            for item in self.station.queue
        ]
        if wanted is None:
            return {"messages_in_queue": bool(queued)}
        return {
            "ongoing_indicator": self.station.evse_with_transaction(wanted) is not None,
            "messages_in_queue": wanted in queued,
        }

    @on("RemoteStartTransaction")
    def on_remote_start_transaction(self, **_: Any) -> dict[str, Any]:
        evse = self.station.evses.get(int(self._raw_payload.get("connectorId", 1)))
        return {"status": "Accepted" if evse is not None and evse.ev is not None else "Rejected"}

    @on("RemoteStopTransaction")
    def on_remote_stop_transaction(self, **_: Any) -> dict[str, Any]:
        evse = self.station.evse_with_transaction(str(self._raw_payload["transactionId"]))
        if evse is None:
            return {"status": "Rejected"}
        self.station.later(self.station.stop_transaction(evse.id, "Remote"))
        return {"status": "Accepted"}

    # --- certificates -----------------------------------------------------------------------

    @on("InstallCertificate")
    def on_install_certificate(self, **_: Any) -> dict[str, Any]:
        raw = self._raw_payload
        kind, pem = str(raw["certificateType"]), str(raw["certificate"])
        return {"status": self.station.certificates.install(kind, pem)}

    @on("GetInstalledCertificateIds")
    def on_get_installed_certificate_ids(self, **_: Any) -> dict[str, Any]:
        asked = self._raw_payload.get("certificateType", [])
        kinds = [asked] if isinstance(asked, str) else list(asked)
        held = self.station.certificates.installed(kinds)
        answer: dict[str, Any] = {"status": "Accepted" if held else "NotFound"}
        if held and self.version is OcppVersion.V16:
            answer["certificateHashData"] = [data for _, data in held]
        elif held:
            answer["certificateHashDataChain"] = [
                {"certificateType": kind, "certificateHashData": data} for kind, data in held
            ]
        return answer

    @on("DeleteCertificate")
    def on_delete_certificate(self, **_: Any) -> dict[str, Any]:
        wanted = dict(self._raw_payload["certificateHashData"])
        return {"status": self.station.certificates.delete(wanted)}

    @on("TriggerMessage")
    def on_trigger_message(self, **_: Any) -> dict[str, Any]:
        wanted = self._raw_payload["requestedMessage"]
        return {"status": "Accepted" if wanted in _SIGN_REQUESTS else "NotImplemented"}

    @after("TriggerMessage")
    def after_trigger_message(self, **request: Any) -> None:
        if request.get("requested_message") in _SIGN_REQUESTS:
            self.station.later(self.station.request_certificate())

    @on("ExtendedTriggerMessage")
    def on_extended_trigger_message(self, **_: Any) -> dict[str, Any]:
        return self.on_trigger_message()

    @after("ExtendedTriggerMessage")
    def after_extended_trigger_message(self, **request: Any) -> None:
        self.after_trigger_message(**request)

    @on("CertificateSigned")
    def on_certificate_signed(self, **_: Any) -> dict[str, Any]:
        chain = str(self._raw_payload["certificateChain"])
        return {"status": self.station.certificates.signed(chain)}

    async def _answer(self, frame: Any) -> None:
        self._raw_payload: Mapping[str, Any] = frame.payload or {}
        if frame.action == "GetChargingProfiles":
            self._last_request_id = self._raw_payload.get("requestId", 0)
        await super()._answer(frame)


def _to_2x_profile(request: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """A SetChargingProfile request of any version as (evse id, 2.x-shaped profile)."""
    if "csChargingProfiles" in request:  # 1.6
        old = request["csChargingProfiles"]
        schedule = dict(old["chargingSchedule"])
        schedule["id"] = old["chargingProfileId"]
        profile = {
            "id": old["chargingProfileId"],
            "stackLevel": old["stackLevel"],
            "chargingProfilePurpose": old["chargingProfilePurpose"],
            "chargingProfileKind": old["chargingProfileKind"],
            "chargingSchedule": [schedule],
        }
        for key in ("validFrom", "validTo"):
            if key in old:
                profile[key] = old[key]
        if "transactionId" in old:
            profile["transactionId"] = str(old["transactionId"])
        return int(request["connectorId"]), profile
    return int(request["evseId"]), dict(request["chargingProfile"])


class EmulatedStation:
    """One charging station with EVSEs (each may hold an EV).

    ``backup_urls``: other CSMS addresses (gateways) to try in turn, after ``url``, when the
    connection drops or cannot be made, as a charger configured with several connection
    profiles does (OCPP 2.x ``NetworkConnectionProfile`` slots in ``NetworkConfigurationPriority``;
    1.6 chargers mostly take one URL and sit behind a load balancer instead)."""

    def __init__(
        self,
        station_id: str,
        password: str,
        version: OcppVersion,
        url: str,
        clock: Clock,
        evses: Mapping[int, Evse],
        dialect: str = "charge-only",
        vendor: str = "LightsOn",
        model: str = "Emulated-V2X",
        backup_urls: Sequence[str] = (),
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.id = station_id
        self.password = password
        self.version = version
        self.url = url.rstrip("/")
        self.urls = [self.url, *(u.rstrip("/") for u in backup_urls)]
        self.url_index = 0  # the one in use, or tried next
        self.clock = clock
        self.evses = dict(evses)
        self.dialect = dialect
        self.vendor = vendor
        self.model = model
        self.profiles: dict[int, InstalledProfile] = {}
        self.tls = tls  # wss:// (security profiles 2 and 3: a client certificate in it)
        self.certificates = CertificateStore(station_id)
        self.variables: dict[tuple[str, str], str] = {
            ("SmartChargingCtrlr", "Enabled"): "true",
            ("V2XChargingCtrlr", "Enabled"): "true" if self.can_discharge_v21 else "false",
            ("V2XChargingCtrlr", "SupportedOperationModes"): (
                ",".join(V2X_OPERATION_MODES) if self.can_discharge_v21 else "ChargingOnly"
            ),
        }
        self.session: EmulatorSession | None = None
        self.heartbeat_interval_s = 300
        self.boots = 0  # BootNotifications accepted
        self.queue: list[_Queued] = []
        self.offline_since: datetime | None = None
        self.connected = asyncio.Event()
        self.refused: int | None = None  # HTTP status of a refused handshake
        self._tasks: set[asyncio.Task[Any]] = set()
        self._transaction_ids = itertools.count(1)
        self._stopping = False
        self._flush_lock = asyncio.Lock()

    @property
    def can_discharge_v21(self) -> bool:
        return self.version is OcppVersion.V21 and self.dialect == "central-setpoint"

    @property
    def can_discharge(self) -> bool:
        return self.dialect in ("central-setpoint", "negative-limit")

    # --- connection -------------------------------------------------------------------------

    async def run(self, reconnect_delay_s: float = 0.2) -> None:
        """Connect, boot, serve; reconnect after a drop until :meth:`stop`."""
        while not self._stopping:
            try:
                async with connect(
                    f"{self.urls[self.url_index]}/{self.id}",
                    subprotocols=[Subprotocol(self.version.subprotocol)],
                    additional_headers={
                        "Authorization": build_authorization_basic(self.id, self.password)
                    },
                    open_timeout=5,
                    ssl=self.tls,
                ) as connection:
                    self.session = EmulatorSession(self, connection)
                    reader = asyncio.create_task(self.session.start())
                    beats: asyncio.Task[None] | None = None
                    try:
                        await self._boot()
                        beats = asyncio.create_task(self._heartbeats())
                        await reader
                    finally:
                        reader.cancel()
                        if beats is not None:
                            beats.cancel()
            except InvalidStatus as refused:
                self.refused = refused.response.status_code
                LOGGER.warning("%s: handshake refused (%s)", self.id, self.refused)
                return
            except (
                ConnectionClosed,
                OSError,
                TimeoutError,
                CallRefusedError,
                FrameError,
            ) as error:  # ConnectionError (boot not accepted) is an OSError
                LOGGER.info("%s: connection lost: %s", self.id, error)
            self._went_offline()
            self.url_index = (self.url_index + 1) % len(self.urls)  # the next CSMS in turn
            if not self._stopping:
                await asyncio.sleep(reconnect_delay_s)

    def _went_offline(self) -> None:
        self.session = None
        self.connected.clear()
        if self.offline_since is None:
            self.offline_since = self.clock.now()

    async def stop(self) -> None:
        self._stopping = True
        if self.session is not None:
            await self.session._connection.close()
        for task in list(self._tasks):
            task.cancel()

    async def drop_connection(self) -> None:
        """Lose the connection (tests of offline behaviour); :meth:`run` reconnects."""
        if self.session is not None:
            await self.session._connection.close()

    def later(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request_certificate(self) -> str:
        """A02/A03: a new key and a CSR naming this station (``SignCertificate``); the CSMS's
        answer (``Accepted`` means a ``CertificateSigned`` follows)."""
        if self.session is None:
            raise ConnectionError(f"{self.id} is not connected")
        payload: dict[str, Any] = {"csr": self.certificates.new_csr()}
        if self.version is not OcppVersion.V16:
            payload["certificateType"] = "ChargingStationCertificate"
        answer = await self.session.request("SignCertificate", payload)
        return str(answer["status"])

    async def _boot(self) -> None:
        assert self.session is not None
        boot: dict[str, Any]
        if self.version is OcppVersion.V16:
            boot = {"chargePointVendor": self.vendor, "chargePointModel": self.model}
        else:
            boot = {
                "reason": "PowerUp",
                "chargingStation": {"vendorName": self.vendor, "model": self.model},
            }
        answer = await self.session.request("BootNotification", boot)
        if answer["status"] != "Accepted":
            raise ConnectionError(f"boot {answer['status']}")
        self.heartbeat_interval_s = int(answer["interval"])
        self.boots += 1
        self._expire_offline_profiles()
        self.offline_since = None
        for evse in self.evses.values():
            await self._send_status(evse)
        self.connected.set()
        await self.flush()

    async def flush(self) -> None:
        """Send queued transaction messages in order."""
        async with self._flush_lock:
            while self.queue and self.session is not None:
                item = self.queue[0]
                answer = await self.session.request(item.action, item.build())
                self.queue.pop(0)
                if item.on_answer is not None:
                    item.on_answer(answer)

    async def _transactional(
        self,
        action: str,
        build: Callable[[], Mapping[str, Any]],
        on_answer: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        """Queue a transaction message and send the queue when connected."""
        self.queue.append(_Queued(action, build, on_answer))
        if self.connected.is_set():
            with contextlib.suppress(ConnectionClosed):
                await self.flush()

    async def _heartbeats(self) -> None:
        """A Heartbeat every interval the CSMS gave at boot (real seconds)."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            with contextlib.suppress(ConnectionClosed, TimeoutError, CallRefusedError):
                await self.heartbeat()

    async def heartbeat(self) -> None:
        if self.session is not None:
            await self.session.request("Heartbeat", {})

    async def _send_status(self, evse: Evse) -> None:
        assert self.session is not None
        if self.version is OcppVersion.V16:
            payload: dict[str, Any] = {
                "connectorId": evse.id,
                "errorCode": "NoError",
                "status": "Preparing" if evse.status == "Occupied" else "Available",
                "timestamp": timestamp(self.clock.now()),
            }
        else:
            payload = {
                "timestamp": timestamp(self.clock.now()),
                "connectorStatus": evse.status,
                "evseId": evse.id,
                "connectorId": 1,
            }
        await self.session.request("StatusNotification", payload)

    # --- EVs --------------------------------------------------------------------------------

    async def plug_in(self, evse_id: int, ev: EmulatedEv, id_token: str = "LIGHTSON") -> None:
        evse = self.evses[evse_id]
        evse.ev, evse.status = ev, "Occupied"
        if self.session is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send_status(evse)
                await self._authorize(id_token)
        now = self.clock.now()
        evse.transaction_started = now
        if self.version is OcppVersion.V16:
            evse.transaction_id = None

            def started(answer: Mapping[str, Any]) -> None:
                evse.transaction_id = str(answer["transactionId"])

            await self._transactional(
                "StartTransaction",
                lambda: {
                    "connectorId": evse.id,
                    "idTag": id_token,
                    "meterStart": int(evse.imported_wh),
                    "timestamp": timestamp(now),
                },
                started,
            )
            return
        evse.transaction_id = f"{self.id}-{next(self._transaction_ids)}"
        evse.seq_no = 0
        await self._transaction_event(evse, "Started", "CablePluggedIn", id_token=id_token)
        if self.session is not None:
            with contextlib.suppress(ConnectionClosed, CallRefusedError):
                await self.session.request("NotifyEVChargingNeeds", self._needs(evse))

    async def _authorize(self, id_token: str) -> None:
        """The driver's token, checked before the transaction starts (offline: skipped, as a
        station with offline authorization does)."""
        assert self.session is not None
        if self.version is OcppVersion.V16:
            answer = await self.session.request("Authorize", {"idTag": id_token})
            status = answer["idTagInfo"]["status"]
        else:
            answer = await self.session.request(
                "Authorize", {"idToken": {"idToken": id_token, "type": "Central"}}
            )
            status = answer["idTokenInfo"]["status"]
        if status != "Accepted":
            raise PermissionError(f"{self.id}: token {id_token!r} was {status}")

    def _needs(self, evse: Evse) -> dict[str, Any]:
        ev = evse.ev
        assert ev is not None
        energy_wh = max(ev.target_soc - ev.soc, 0.0) * ev.battery_kwh * 1000
        bidirectional = ev.bidirectional and self.can_discharge_v21
        needs: dict[str, Any] = {
            "requestedEnergyTransfer": "DC_BPT" if bidirectional else "DC",
            "dcChargingParameters": {  # integers: 2.0.1 types them so, 2.1 takes them
                "evMaxCurrent": 200,
                "evMaxVoltage": 500,
                "evMaxPower": round(ev.max_charge_kw * 1000),
                "energyAmount": round(energy_wh),
                "evEnergyCapacity": round(ev.battery_kwh * 1000),
                "stateOfCharge": round(ev.soc * 100),
            },
        }
        if ev.departure is not None:
            needs["departureTime"] = timestamp(ev.departure)
        if bidirectional:
            needs["availableEnergyTransfer"] = ["DC", "DC_BPT"]
            needs["controlMode"] = "ScheduledControl"
            needs["v2xChargingParameters"] = {
                "maxChargePower": min(ev.max_charge_kw, evse.max_charge_kw) * 1000,
                "maxDischargePower": min(ev.max_discharge_kw, evse.max_discharge_kw) * 1000,
                "evTargetEnergyRequest": round(energy_wh, 1),
                "targetSoC": round(ev.target_soc * 100),
            }
        request: dict[str, Any] = {"evseId": evse.id, "chargingNeeds": needs}
        if self.version is OcppVersion.V21:
            request["timestamp"] = timestamp(self.clock.now())
        return request

    async def unplug(self, evse_id: int) -> None:
        await self.stop_transaction(evse_id, "EVDisconnected")
        evse = self.evses[evse_id]
        evse.ev, evse.status, evse.power_kw = None, "Available", 0.0
        if self.session is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send_status(evse)

    async def stop_transaction(self, evse_id: int, reason: str) -> None:
        evse = self.evses[evse_id]
        if evse.transaction_started is None:
            return
        evse.transaction_started = None
        evse.power_kw = 0.0
        self._drop_tx_profiles(evse)  # a TxProfile ends with its transaction
        now = self.clock.now()
        if self.version is OcppVersion.V16:
            meter = int(evse.imported_wh)
            await self._transactional(
                "StopTransaction",
                lambda: {
                    "transactionId": int(evse.transaction_id or 0),
                    "meterStop": meter,
                    "timestamp": timestamp(now),
                    "reason": "Remote" if reason == "Remote" else "EVDisconnected",
                },
            )
        else:
            await self._transaction_event(
                evse, "Ended", "RemoteStop" if reason == "Remote" else "EVCommunicationLost"
            )

    def _drop_tx_profiles(self, evse: Evse) -> None:
        for profile_id, profile in list(self.profiles.items()):
            if profile.purpose == "TxProfile" and profile.evse_id == evse.id:
                del self.profiles[profile_id]

    async def _transaction_event(
        self, evse: Evse, event_type: str, trigger: str, id_token: str | None = None
    ) -> None:
        offline = not self.connected.is_set()
        seq_no = evse.seq_no
        evse.seq_no += 1
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": timestamp(self.clock.now()),
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": evse.transaction_id},
            "evse": {"id": evse.id, "connectorId": 1},
            "meterValue": [self._meter_value(evse)],
        }
        if offline:
            payload["offline"] = True
        if id_token is not None:
            payload["idToken"] = {"idToken": id_token, "type": "Central"}
        await self._transactional("TransactionEvent", lambda: payload)

    # --- meter values -----------------------------------------------------------------------

    def _meter_value(self, evse: Evse) -> dict[str, Any]:
        power_w = evse.power_kw * 1000
        values: list[tuple[str, float, str]] = [
            ("Power.Active.Import", max(power_w, 0.0), "W"),
            ("Power.Active.Export", max(-power_w, 0.0), "W"),
            ("Energy.Active.Import.Register", evse.imported_wh, "Wh"),
            ("Energy.Active.Export.Register", evse.exported_wh, "Wh"),
        ]
        if evse.ev is not None:
            values.append(("SoC", evse.ev.soc * 100, "Percent"))
        sampled: list[dict[str, Any]]
        if self.version is OcppVersion.V16:
            sampled = [
                {"measurand": m, "value": f"{v:.1f}", "unit": u, "context": "Sample.Periodic"}
                for m, v, u in values
            ]
        else:
            sampled = [
                {
                    "measurand": m,
                    "value": round(v, 1),
                    "unitOfMeasure": {"unit": u},
                    "context": "Sample.Periodic",
                }
                for m, v, u in values
            ]
        return {"timestamp": timestamp(self.clock.now()), "sampledValue": sampled}

    async def send_meter_values(self) -> None:
        """A periodic sample from every EVSE with a transaction."""
        for evse in self.evses.values():
            if evse.transaction_started is None:
                continue
            if self.version is OcppVersion.V16:
                meter = self._meter_value(evse)

                def build(evse: Evse = evse, meter: dict[str, Any] = meter) -> dict[str, Any]:
                    payload: dict[str, Any] = {"connectorId": evse.id, "meterValue": [meter]}
                    if evse.transaction_id is not None:
                        payload["transactionId"] = int(evse.transaction_id)
                    return payload

                await self._transactional("MeterValues", build)
            else:
                await self._transaction_event(evse, "Updated", "MeterValuePeriodic")

    # --- physics ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move every EV on by ``seconds`` at the power the profiles allow now."""
        now = self.clock.now()
        for evse in self.evses.values():
            evse.power_kw = self.power_kw(evse, now) if evse.transaction_started else 0.0
            ev = evse.ev
            if ev is None or evse.power_kw == 0.0:
                continue
            energy_kwh = evse.power_kw * seconds / 3600
            ev.soc = min(max(ev.soc + energy_kwh / ev.battery_kwh, 0.0), 1.0)
            if energy_kwh > 0:
                evse.imported_wh += energy_kwh * 1000
            else:
                evse.exported_wh -= energy_kwh * 1000

    def power_kw(self, evse: Evse, now: datetime) -> float:
        """The power the composite schedule asks for, within charger, car and SoC limits."""
        ev = evse.ev
        if ev is None:
            return 0.0
        wanted_kw = self._scheduled_kw(evse, now)
        charge_room_kw = min(evse.max_charge_kw, ev.max_charge_kw) if ev.soc < 1.0 else 0.0
        discharge_room_kw = (
            min(evse.max_discharge_kw, ev.max_discharge_kw)
            if self.can_discharge and ev.soc > ev.min_soc
            else 0.0
        )
        if wanted_kw is None:  # no profile: charge at full power
            return charge_room_kw
        return min(max(wanted_kw, -discharge_room_kw), charge_room_kw)

    def _scheduled_kw(self, evse: Evse, now: datetime) -> float | None:
        """The composite schedule: the highest valid profile with an active period (Tx
        profile first, then defaults), capped by a ChargingStationMaxProfile if any."""
        wanted = None
        for profile in self._candidates(evse, now):
            period = self._active_period(profile, evse, now)
            if period is not None:
                wanted = self._period_kw(profile, period)
                break
        cap_kw = self._station_max_kw(evse, now)
        if cap_kw is None:
            return wanted
        return min(cap_kw, wanted) if wanted is not None else cap_kw

    def _station_max_kw(self, evse: Evse, now: datetime) -> float | None:
        caps = sorted(
            (
                p
                for p in self.profiles.values()
                if p.purpose == "ChargingStationMaxProfile" and self._valid(p, now)
            ),
            key=lambda p: -p.stack_level,
        )
        for profile in caps:
            period = self._active_period(profile, evse, now)
            if period is not None and "limit" in period:
                return max(float(period["limit"]) * self._unit_w(profile), 0.0) / 1000
        return None

    def _period_kw(self, profile: InstalledProfile, period: Mapping[str, Any]) -> float:
        mode = period.get("operationMode", "ChargingOnly")
        if mode == "Idle":
            return 0.0
        if mode == "CentralSetpoint":
            setpoint_w = float(period.get("setpoint", 0.0))
            if "dischargeLimit" in period:
                setpoint_w = max(setpoint_w, float(period["dischargeLimit"]))
            if "limit" in period:
                setpoint_w = min(setpoint_w, float(period["limit"]))
            return setpoint_w / 1000
        limit_w = float(period.get("limit", 0.0)) * self._unit_w(profile)
        if limit_w < 0 and self.dialect != "negative-limit":
            return 0.0
        return limit_w / 1000

    def _unit_w(self, profile: InstalledProfile) -> float:
        unit = profile.payload["chargingSchedule"][0]["chargingRateUnit"]
        return 1.0 if unit == "W" else AC_VOLTS * 3

    def _valid(self, profile: InstalledProfile, now: datetime) -> bool:
        payload = profile.payload
        if "validFrom" in payload and now < parse_timestamp(payload["validFrom"]):
            return False
        if "validTo" in payload and now >= parse_timestamp(payload["validTo"]):
            return False
        return not self._offline_too_long(profile, now)

    def _offline_too_long(self, profile: InstalledProfile, now: datetime) -> bool:
        payload = profile.payload
        if self.offline_since is None or "maxOfflineDuration" not in payload:
            return False
        limit = timedelta(seconds=int(payload["maxOfflineDuration"]))
        return now - self.offline_since > limit

    def _expire_offline_profiles(self) -> None:
        now = self.clock.now()
        for profile_id, profile in list(self.profiles.items()):
            if profile.payload.get("invalidAfterOfflineDuration") and self._offline_too_long(
                profile, now
            ):
                del self.profiles[profile_id]

    def _candidates(self, evse: Evse, now: datetime) -> list[InstalledProfile]:
        """Valid profiles for the EVSE, most important first: the transaction's TxProfiles by
        stack level, then the TxDefaultProfiles (the EVSE's before the station's at a level)."""
        valid = [p for p in self.profiles.values() if self._valid(p, now)]
        tx = [
            p
            for p in valid
            if p.purpose == "TxProfile"
            and p.evse_id == evse.id
            and p.payload.get("transactionId") == evse.transaction_id
        ]
        defaults = [
            p for p in valid if p.purpose == "TxDefaultProfile" and p.evse_id in (0, evse.id)
        ]
        return sorted(tx, key=lambda p: -p.stack_level) + sorted(
            defaults, key=lambda p: (-p.stack_level, p.evse_id != evse.id)
        )

    def _active_period(
        self, profile: InstalledProfile, evse: Evse, now: datetime
    ) -> Mapping[str, Any] | None:
        schedule = profile.payload["chargingSchedule"][0]
        if profile.payload["chargingProfileKind"] == "Relative":
            start = evse.transaction_started or now
        elif "startSchedule" in schedule:
            start = parse_timestamp(schedule["startSchedule"])
        else:
            start = profile.received_at
        elapsed_s = (now - start).total_seconds()
        if "duration" in schedule and elapsed_s >= int(schedule["duration"]):
            return None
        current = None
        for period in schedule["chargingSchedulePeriod"]:
            if int(period["startPeriod"]) <= elapsed_s:
                current = period
        return current

    # --- what the CSMS asks ----------------------------------------------------------------

    def install_profile(self, request: Mapping[str, Any]) -> dict[str, Any]:
        evse_id, profile = _to_2x_profile(request)
        purpose = profile["chargingProfilePurpose"]
        if evse_id != 0 and evse_id not in self.evses:
            return _status("Rejected", "UnknownEvse", self.version)
        if purpose == "TxProfile":
            evse = self.evses.get(evse_id)
            if evse is None or evse.transaction_id is None:
                return _status("Rejected", "NoTransaction", self.version)
            if "transactionId" in profile and profile["transactionId"] != evse.transaction_id:
                return _status("Rejected", "TxNotFound", self.version)
            profile.setdefault("transactionId", evse.transaction_id)
        periods = [p for s in profile["chargingSchedule"] for p in s["chargingSchedulePeriod"]]
        modes = {p.get("operationMode", "ChargingOnly") for p in periods}
        if modes - {"ChargingOnly", "Idle"} and not self.can_discharge_v21:
            return _status("Rejected", "UnsupportedOperationMode", self.version)
        for profile_id, old in list(self.profiles.items()):
            same_slot = (
                old.evse_id == evse_id
                and old.purpose == purpose
                and old.stack_level == int(profile["stackLevel"])
            )
            if profile_id == int(profile["id"]):
                del self.profiles[profile_id]  # the same id replaces (K01.FR.05)
            elif same_slot and self.version is OcppVersion.V16:
                del self.profiles[profile_id]  # 1.6: same stack level and purpose replaces
            elif same_slot:
                # 2.x K01.FR.06/39: another id at the same stack level and purpose is refused
                return _status("Rejected", "DuplicateProfile", self.version)
        installed = InstalledProfile(evse_id, profile, self.clock.now())
        self.profiles[installed.id] = installed
        return {"status": "Accepted"}

    def clear_profiles(self, request: Mapping[str, Any]) -> str:
        criteria = request.get("chargingProfileCriteria", {})
        profile_id = request.get("chargingProfileId", request.get("id"))
        evse_id = criteria.get("evseId", request.get("connectorId"))
        stack_level = criteria.get("stackLevel", request.get("stackLevel"))
        purpose = criteria.get("chargingProfilePurpose", request.get("chargingProfilePurpose"))
        cleared = 0
        for key, profile in list(self.profiles.items()):
            if profile_id is not None and key != profile_id:
                continue
            if evse_id is not None and profile.evse_id != evse_id:
                continue
            if stack_level is not None and profile.stack_level != stack_level:
                continue
            if purpose is not None and profile.purpose != purpose:
                continue
            del self.profiles[key]
            cleared += 1
        return "Accepted" if cleared else "Unknown"

    def update_dynamic(self, request: Mapping[str, Any]) -> str:
        profile = self.profiles.get(int(request["chargingProfileId"]))
        if profile is None or profile.payload["chargingProfileKind"] != "Dynamic":
            return "Rejected"
        update = request["scheduleUpdate"]
        payload = dict(profile.payload)
        schedule = dict(payload["chargingSchedule"][0])
        period = dict(schedule["chargingSchedulePeriod"][0])
        period.update(update)
        schedule["chargingSchedulePeriod"] = [period]
        payload["chargingSchedule"] = [schedule]
        self.profiles[profile.id] = InstalledProfile(profile.evse_id, payload, self.clock.now())
        return "Accepted"

    def variable(self, component: str, name: str) -> str | None:
        return self.variables.get((component, name))

    def set_variable(self, component: str, name: str, value: str) -> str:
        key = (component, name)
        if key not in self.variables:
            return "UnknownVariable"
        if component == "V2XChargingCtrlr" and name == "SupportedOperationModes":
            return "Rejected"  # read-only: what the hardware can do
        self.variables[key] = value
        return "Accepted"

    def evse_with_transaction(self, transaction_id: str) -> Evse | None:
        for evse in self.evses.values():
            if evse.transaction_id == transaction_id and evse.transaction_started is not None:
                return evse
        return None


def _status(status: str, reason: str, version: OcppVersion) -> dict[str, Any]:
    """An answer with a reason (2.x ``statusInfo``; 1.6 has only the status)."""
    if version is OcppVersion.V16:
        return {"status": status}
    return {"status": status, "status_info": {"reason_code": reason}}


@dataclass
class Fleet:
    """Several emulated stations run together."""

    stations: list[EmulatedStation] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(station.run()) for station in self.stations]
        await asyncio.gather(*(s.connected.wait() for s in self.stations))

    async def stop(self) -> None:
        for station in self.stations:
            await station.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

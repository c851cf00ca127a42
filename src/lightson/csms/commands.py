"""The calls the control side makes on connected stations (outbound): setpoints, default and
cleared profiles, variables, remote start and stop, certificates.

:class:`StationCommands` is mixed into :class:`~lightson.csms.server.CsmsServer`, which holds
the sessions; each call looks up the station's session (:class:`StationOfflineError` when it
has none), sends one CALL and returns the station's answer. The payloads come from
``csms.translate``, the one place that knows both wire names and domain units.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from lightson.csms.rpc import CallRefusedError
from lightson.csms.sessions import StationSession
from lightson.csms.translate import (
    charge_only_default,
    islanded_default,
    schedule_update,
    setpoint_profile,
    watts,
)
from lightson.csms.wire import FrameError, OcppVersion
from lightson.domain.plan import Setpoint
from lightson.domain.time import Clock
from lightson.store import Store
from lightson.store import schema as db

if TYPE_CHECKING:
    from lightson.csms.server import CsmsSettings


LOGGER = logging.getLogger("lightson.csms")
PROFILE_ID_BASE = {"TxProfile": 99, "TxDefaultProfile": 199}  # + the EVSE id


class StationOfflineError(Exception):
    """The station has no open session."""


class StationCommands:
    """The calls to stations, on the sessions the server holds (mixed into ``CsmsServer``)."""

    store: Store
    clock: Clock
    settings: CsmsSettings
    sessions: dict[str, StationSession]
    islanded_station: Callable[[str], bool]
    _profile_ids: Iterator[int]

    def profile_id(self, station_id: str, evse_id: int, purpose: str) -> int:
        """One profile id per (station, EVSE, purpose): each new setpoint replaces the last
        (OCPP 2.x K01.FR.05; a new id at the same stack level and purpose is refused). The
        same after a restart, so a restarted CSMS replaces what a charger holds instead of
        being refused: 99 + EVSE for transaction profiles (100 at EVSE 1), 199 + EVSE for
        default ones (200 at EVSE 1). Never change them: a charger holding the old id would
        refuse the new one."""
        del station_id  # ids are per station: the same scheme at every one
        return PROFILE_ID_BASE.get(purpose, 299) + evse_id

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

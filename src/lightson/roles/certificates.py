"""The certificate routes' bridge to a CSMS in the same process (``lightson serve``, and a
gateway answering them for ``lightson api`` over the broker): :class:`CsmsCertificates`, the
API's :class:`~lightson.api.certificates.StationCommands` over a :class:`CsmsServer`."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from websockets.exceptions import ConnectionClosed

from lightson.api.station_calls import ROOT_TYPES, StationCallError
from lightson.csms.commands import StationOfflineError
from lightson.csms.rpc import CallRefusedError
from lightson.csms.server import CsmsServer
from lightson.csms.wire import FrameError, OcppVersion

T = TypeVar("T")


class CsmsCertificates:
    """The API's :class:`~lightson.api.certificates.StationCommands` over a
    :class:`CsmsServer` in the same process: its errors as HTTP answers, and 1.6's one type
    per ``GetInstalledCertificateIds`` hidden (each root type is asked in turn)."""

    def __init__(self, csms: CsmsServer) -> None:
        self.csms = csms

    def ocpp_version(self, station_id: str) -> str | None:
        record = self.csms.store.station(station_id)
        return record.ocpp_version if record is not None else None

    async def install_certificate(self, station_id: str, certificate_type: str, pem: str) -> str:
        work = self.csms.install_certificate(station_id, certificate_type, pem)
        return await _answer_of(station_id, work)

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str]
    ) -> list[dict[str, Any]]:
        return await _answer_of(station_id, self._installed(station_id, certificate_types))

    async def _installed(
        self, station_id: str, certificate_types: Sequence[str]
    ) -> list[dict[str, Any]]:
        if self.csms.session(station_id).version is not OcppVersion.V16:
            return await self.csms.installed_certificates(station_id, certificate_types)
        held = []
        for kind in certificate_types or ROOT_TYPES["1.6"]:
            for data in await self.csms.installed_certificates(station_id, [kind]):
                held.append({"certificateType": kind, "certificateHashData": data})
        return held

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str:
        return await _answer_of(station_id, self.csms.delete_certificate(station_id, hash_data))

    async def request_station_certificate(self, station_id: str) -> str:
        if self.csms.settings.station_ca is None:
            raise StationCallError(
                409,
                "NoCA",
                "no certificate authority signs stations' requests here "
                "(--station-ca-cert/--station-ca-key, or the program file's station_ca)",
            )
        return await _answer_of(station_id, self.csms.request_station_certificate(station_id))


async def _answer_of(station: str, work: Awaitable[T]) -> T:
    """``work``'s result; the CSMS's failures of a call to ``station`` as
    :class:`StationCallError` (HTTP status, code, message)."""
    try:
        return await work
    except (StationOfflineError, ConnectionClosed):
        raise StationCallError(409, "Offline", f"station '{station}' is not connected") from None
    except TimeoutError:
        raise StationCallError(
            504, "Timeout", f"station '{station}' did not answer in time"
        ) from None
    except CallRefusedError as error:
        raise StationCallError(
            502, error.code, f"station '{station}' answered {error.code}: {error.description}"
        ) from None
    except FrameError as error:
        raise StationCallError(
            502, str(error.code), f"station '{station}' answered out of the standard: {error}"
        ) from None


__all__ = ["CsmsCertificates"]

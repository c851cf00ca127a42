"""What the certificate routes ask of a CSMS (:class:`StationCommands`), how a call the
charger did not carry out is told (:class:`StationCallError`, with its HTTP answer), and
which root types each OCPP version takes (:data:`ROOT_TYPES`).

Apart from the routes (``lightson.api.certificates``) so that the gateway side, which runs
these calls for API servers over the broker (``bus.stations``, ``roles.certificates``),
needs nothing of the API's routers, its dependencies or the control loop behind them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

# InstallCertificateUseEnumType (2.0.1, 2.1) and the 1.6 security extension's
# CertificateUseEnumType: the roots a charger of each version may be given.
ROOT_TYPES: Mapping[str, tuple[str, ...]] = {
    "1.6": ("CentralSystemRootCertificate", "ManufacturerRootCertificate"),
    "2.0.1": (
        "CSMSRootCertificate",
        "ManufacturerRootCertificate",
        "MORootCertificate",
        "V2GRootCertificate",
    ),
    "2.1": (
        "CSMSRootCertificate",
        "ManufacturerRootCertificate",
        "MORootCertificate",
        "OEMRootCertificate",
        "V2GRootCertificate",
    ),
}


class StationCallError(Exception):
    """A call the charger did not carry out: ``status`` is the HTTP answer (409 not
    connected, 502 a CALLERROR, 504 no answer in time), ``code`` what OCPP or we name it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class StationCommands(Protocol):
    """What these routes ask of the CSMS; failures raise :class:`StationCallError`."""

    def ocpp_version(self, station_id: str) -> str | None:
        """The version the station is registered with (``None``: no such station)."""

    async def install_certificate(
        self, station_id: str, certificate_type: str, pem: str
    ) -> str: ...

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Each held certificate as ``{"certificateType", "certificateHashData"}``."""

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str: ...

    async def request_station_certificate(self, station_id: str) -> str:
        """Have the station send a new CSR (409 ``NoCA`` when none would be signed)."""


__all__ = ["ROOT_TYPES", "StationCallError", "StationCommands"]

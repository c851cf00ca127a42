"""Chargers' root certificates from the API (program staff only): install one, list what a
charger holds, delete one (OCPP A04/A05; the 1.6 security extension). The calls go to the
CSMS on its own event loop; the API's worker thread waits for the charger's answer.

The station certificates themselves are signed when a charger asks (``SignCertificate``,
``docs/csms.md``); these routes manage the roots it trusts (``CSMSRootCertificate``, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
CALL_TIMEOUT_S = 40.0  # the CSMS waits 30 s for a charger's answer

# 2.x InstallCertificateUseEnumType and the 1.6 security extension's CertificateUseEnumType.
CertificateType = Literal[
    "V2GRootCertificate",
    "MORootCertificate",
    "CSMSRootCertificate",
    "ManufacturerRootCertificate",
    "CentralSystemRootCertificate",
]


class StationCommands(Protocol):
    """What these routes ask of the CSMS (``CsmsServer`` has it)."""

    async def install_certificate(
        self, station_id: str, certificate_type: str, pem: str
    ) -> str: ...

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str] = ()
    ) -> list[dict[str, Any]]: ...

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str: ...


class InstallBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    certificate_type: CertificateType
    certificate: str = Field(min_length=1, max_length=5500)  # the schemas' maxLength


class HashData(BaseModel):
    """A certificate as the charger lists it (``certificateHashData``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    hash_algorithm: Literal["SHA256", "SHA384", "SHA512"]
    issuer_name_hash: str = Field(min_length=1, max_length=128)
    issuer_key_hash: str = Field(min_length=1, max_length=128)
    serial_number: str = Field(min_length=1, max_length=40)

    def wire(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
        }


def on_csms_loop(
    loop: asyncio.AbstractEventLoop, work: Callable[[], Awaitable[T]], timeout_s: float
) -> T:
    """Run ``work()`` on the CSMS's event loop from an API worker thread and wait for it."""

    async def call() -> T:
        return await work()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout_s)


__all__ = ["CALL_TIMEOUT_S", "HashData", "InstallBody", "StationCommands", "on_csms_loop"]

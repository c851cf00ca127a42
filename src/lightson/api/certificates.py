"""Chargers' root certificates from the API, for program staff (``docs/csms.md``, certificate
management): install one, list what a charger holds, delete one (OCPP 2.0.1/2.1 A04/A05,
M03-M05; the 1.6 security extension). ``lightson certificates`` calls these routes.

- ``GET /api/stations/{station_id}/certificates`` (``?certificate_type=`` repeatable);
- ``POST /api/stations/{station_id}/certificates`` with ``{"certificate_type", "certificate"}``;
- ``DELETE /api/stations/{station_id}/certificates/{serial_number}`` (``?issuer_name_hash=``
  when two certificates share the serial number);
- ``POST /api/stations/{station_id}/certificates/renew``: the charger is asked for a new CSR
  (``TriggerMessage``), which the CSMS signs with the operator's CA as it comes.

Only the admin role may: owners and utilities get 403 whatever the id, before it is looked up,
so ids cannot be found out by trying them; an unknown station is 404 (to staff). Every call,
done or refused, is in the audit log before the answer. A charger that is not connected is
409; one that does not answer in time 504; one that answers with a CALLERROR (say
``NotImplemented``, from a 1.6 charger without the security extension) 502 naming the code.
Which root types a version takes: :data:`ROOT_TYPES`; ``CSMSRootCertificate`` and 1.6's
``CentralSystemRootCertificate`` are the same and sent as the charger's version spells them.

The charger's own client certificate is never sent to it from here: it makes its key and
asks (``SignCertificate``), by itself or when told to renew, and the CSMS signs it.

The routes reach the CSMS through ``request.app.state.stations`` (:class:`StationCommands`;
the operations server sets it); without one they answer 503.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from lightson.api.deps import Who
from lightson.api.errors import HttpError
from lightson.api.station_calls import ROOT_TYPES, StationCallError, StationCommands
from lightson.services.access import Principal, Role

router = APIRouter(prefix="/api/stations", tags=["certificates"])

_CSMS_ROOT = {"1.6": "CentralSystemRootCertificate", "2.x": "CSMSRootCertificate"}
# What GetInstalledCertificateIds may ask for, beyond the roots (2.x).
LISTED_TYPES: Mapping[str, tuple[str, ...]] = {
    "1.6": ROOT_TYPES["1.6"],
    "2.0.1": (*ROOT_TYPES["2.0.1"], "V2GCertificateChain"),
    "2.1": (*ROOT_TYPES["2.1"], "V2GCertificateChain"),
}
MAX_CERTIFICATE_CHARS = 5500  # the schemas' maxLength of a certificate


class InstallBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    certificate_type: str = Field(min_length=1, max_length=50)
    certificate: str = Field(min_length=1, max_length=MAX_CERTIFICATE_CHARS)


def _fail(status: int, message: str, field: str = "") -> Exception:
    """The app's error, answered as ``{"errors": [...]}`` by its one handler."""
    return HttpError(status, message, field)


async def _audit(
    request: Request, who: Principal, action: str, target: str, outcome: str, detail: Any
) -> None:
    access = request.app.state.operations.access()
    await run_in_threadpool(access.audit, who, action, target, outcome, detail)


async def _station(request: Request, who: Principal, action: str, station_id: str) -> str:
    """Admin only (403 before any lookup), a known station (else 404), a CSMS to ask (else
    503): the station's OCPP version. A refusal is audited."""
    if who.role is not Role.ADMIN:
        await _audit(request, who, action, station_id, "refused", {"status": 403})
        raise _fail(403, f"the {who.role.value} role may not manage certificates")
    stations: StationCommands | None = getattr(request.app.state, "stations", None)
    if stations is None:
        await _audit(request, who, action, station_id, "refused", {"status": 503})
        raise _fail(503, "no charging-station server runs in this process")
    version = await run_in_threadpool(stations.ocpp_version, station_id)
    if version is None:
        await _audit(request, who, action, station_id, "refused", {"status": 404})
        raise _fail(404, f"no station '{station_id}'", "station_id")
    return version


def _commands(request: Request) -> StationCommands:
    stations: StationCommands = request.app.state.stations
    return stations


async def _refused_call(
    request: Request, who: Principal, action: str, target: str, error: StationCallError
) -> Exception:
    detail = {"status": error.status, "code": error.code}
    await _audit(request, who, action, target, "refused", detail)
    return _fail(error.status, error.message, "station_id")


def _spelled(certificate_type: str, version: str) -> str:
    """``CSMSRootCertificate`` as a 1.6 charger spells it, and the other way round."""
    if certificate_type in _CSMS_ROOT.values():
        return _CSMS_ROOT["1.6" if version == "1.6" else "2.x"]
    return certificate_type


def _check_type(certificate_type: str, version: str, allowed: Mapping[str, Sequence[str]]) -> str:
    spelled = _spelled(certificate_type, version)
    if spelled not in allowed[version]:
        choices = ", ".join(allowed[version])
        raise _fail(
            422,
            f"an OCPP {version} charger takes {choices}; got '{certificate_type}'",
            "certificate_type",
        )
    return spelled


def _one_certificate(pem: str) -> x509.Certificate:
    try:
        found = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        found = []
    if len(found) != 1:
        raise _fail(422, "must be one PEM certificate (-----BEGIN CERTIFICATE-----)", "certificate")
    return found[0]


def _shown(entry: Mapping[str, Any]) -> dict[str, Any]:
    data = entry["certificateHashData"]
    return {
        "certificate_type": entry["certificateType"],
        "hash_algorithm": data["hashAlgorithm"],
        "issuer_name_hash": data["issuerNameHash"],
        "issuer_key_hash": data["issuerKeyHash"],
        "serial_number": data["serialNumber"],
    }


@router.get("/{station_id}/certificates")
async def list_certificates(
    station_id: str,
    who: Who,
    request: Request,
    certificate_type: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """The certificates the charger holds (every type it lists when none is named)."""
    action = "certificates-list"
    version = await _station(request, who, action, station_id)
    try:
        kinds = [_check_type(k, version, LISTED_TYPES) for k in certificate_type or []]
    except Exception:
        await _audit(request, who, action, station_id, "refused", {"status": 422})
        raise
    try:
        held = await _commands(request).installed_certificates(station_id, kinds)
    except StationCallError as error:
        raise await _refused_call(request, who, action, station_id, error) from None
    await _audit(request, who, action, station_id, "done", {"certificates": len(held)})
    return {"station_id": station_id, "certificates": [_shown(h) for h in held]}


@router.post("/{station_id}/certificates")
async def install_certificate(
    station_id: str, body: InstallBody, who: Who, request: Request
) -> dict[str, Any]:
    """Give the charger a root certificate to trust; the answer is the charger's
    (``Accepted``, ``Rejected``, ``Failed``)."""
    action = "certificate-install"
    version = await _station(request, who, action, station_id)
    try:
        kind = _check_type(body.certificate_type, version, ROOT_TYPES)
        certificate = _one_certificate(body.certificate)
    except Exception:
        await _audit(request, who, action, station_id, "refused", {"status": 422})
        raise
    detail: dict[str, Any] = {
        "certificate_type": kind,
        "subject": certificate.subject.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
    }
    try:
        status = await _commands(request).install_certificate(station_id, kind, body.certificate)
    except StationCallError as error:
        raise await _refused_call(request, who, action, station_id, error) from None
    outcome = "done" if status == "Accepted" else "refused"
    await _audit(request, who, action, station_id, outcome, {**detail, "answer": status})
    return {"station_id": station_id, "certificate_type": kind, "status": status}


@router.post("/{station_id}/certificates/renew")
async def renew_certificate(station_id: str, who: Who, request: Request) -> dict[str, Any]:
    """Have the charger make a new key and send its CSR (TriggerMessage); the CSMS signs it
    with the operator's CA and sends it back. The answer is the charger's (``Accepted``,
    ``Rejected``, ``NotImplemented``)."""
    action = "certificate-renew"
    await _station(request, who, action, station_id)
    try:
        status = await _commands(request).request_station_certificate(station_id)
    except StationCallError as error:
        raise await _refused_call(request, who, action, station_id, error) from None
    outcome = "done" if status == "Accepted" else "refused"
    await _audit(request, who, action, station_id, outcome, {"answer": status})
    return {"station_id": station_id, "status": status}


@router.delete("/{station_id}/certificates/{serial_number}")
async def delete_certificate(
    station_id: str,
    serial_number: str,
    who: Who,
    request: Request,
    issuer_name_hash: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """Delete the certificate the charger lists with ``serial_number`` (hex, as listed)."""
    action = "certificate-delete"
    target = f"{station_id}/{serial_number}"
    await _station(request, who, action, station_id)
    commands = _commands(request)
    try:
        held = [_shown(h) for h in await commands.installed_certificates(station_id, [])]
    except StationCallError as error:
        raise await _refused_call(request, who, action, target, error) from None
    matching = [
        h
        for h in held
        if _same_serial(h["serial_number"], serial_number)
        and (issuer_name_hash is None or h["issuer_name_hash"].lower() == issuer_name_hash.lower())
    ]
    if len(matching) != 1:
        status = 404 if not matching else 409
        await _audit(request, who, action, target, "refused", {"status": status})
        message = (
            f"station '{station_id}' lists no certificate with serial number {serial_number}"
            if not matching
            else f"{len(matching)} certificates have serial number {serial_number}: "
            "name one with issuer_name_hash"
        )
        raise _fail(status, message, "serial_number")
    chosen = matching[0]
    wire = {
        "hashAlgorithm": chosen["hash_algorithm"],
        "issuerNameHash": chosen["issuer_name_hash"],
        "issuerKeyHash": chosen["issuer_key_hash"],
        "serialNumber": chosen["serial_number"],
    }
    try:
        status_text = await commands.delete_certificate(station_id, wire)
    except StationCallError as error:
        raise await _refused_call(request, who, action, target, error) from None
    outcome = "done" if status_text == "Accepted" else "refused"
    await _audit(request, who, action, target, outcome, {**chosen, "answer": status_text})
    return {"station_id": station_id, "serial_number": serial_number, "status": status_text}


def _same_serial(listed: str, asked: str) -> bool:
    """Serial numbers in hex, compared as numbers (case and leading zeros aside)."""
    try:
        return int(listed, 16) == int(asked, 16)
    except ValueError:
        return listed == asked


__all__ = [
    "LISTED_TYPES",
    "ROOT_TYPES",
    "InstallBody",
    "StationCallError",
    "StationCommands",
    "router",
]

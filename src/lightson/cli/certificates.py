"""``lightson certificates install|list|delete STATION``: chargers' root certificates, through
a running server's API (``lightson serve``; admin token), and the bridge those API routes
use to reach the CSMS (:class:`CsmsCertificates`)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from websockets.exceptions import ConnectionClosed

from lightson.api.certificates import ROOT_TYPES, StationCallError
from lightson.cli.app import main
from lightson.csms.commands import StationOfflineError
from lightson.csms.rpc import CallRefusedError
from lightson.csms.server import CsmsServer
from lightson.csms.wire import FrameError, OcppVersion

T = TypeVar("T")
TIMEOUT_S = 60.0  # the CSMS waits 30 s for a charger's answer; deleting asks twice


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


# --- the command ----------------------------------------------------------------------------


def _request(
    api: str, token: str | None, method: str, path: str, body: Any, ca: Path | None
) -> dict[str, Any]:
    """One call to the API; an error answer becomes a one-line ClickException."""
    if not token:
        raise click.ClickException("an admin token is needed: --token or $LIGHTSON_TOKEN")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        api.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=ca) if ca is not None else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as answer:
            result: dict[str, Any] = json.load(answer)
            return result
    except urllib.error.HTTPError as error:
        try:
            errors = json.load(error)["errors"]
            message = "; ".join(
                f"{e['field']}: {e['message']}" if e.get("field") else str(e["message"])
                for e in errors
            )
        except (ValueError, KeyError, TypeError):
            message = error.reason
        raise click.ClickException(f"{error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise click.ClickException(f"cannot reach the API at {api}: {reason}") from None


def _station_path(station_id: str) -> str:
    return f"/api/stations/{urllib.parse.quote(station_id, safe='')}/certificates"


@main.group()
@click.option(
    "--api",
    default="http://127.0.0.1:8000",
    show_default=True,
    envvar="LIGHTSON_API",
    help="The running server's address (lightson serve; env LIGHTSON_API).",
)
@click.option(
    "--token",
    default=None,
    envvar="LIGHTSON_TOKEN",
    help="An admin token (lightson token add; env LIGHTSON_TOKEN).",
)
@click.option(
    "--ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM CA that signed the API's https certificate (default: the system's).",
)
@click.pass_context
def certificates(context: click.Context, api: str, token: str | None, ca: Path | None) -> None:
    """Certificates on chargers (OCPP security profiles 2 and 3): the roots they trust
    (install, list, delete) and their own client certificate (renew: the charger sends a
    certificate signing request, which the server signs with --station-ca-cert;
    docs/csms.md).
    """
    context.obj = (api, token, ca)


@certificates.command("install")
@click.argument("station")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "certificate_type",
    default="CSMSRootCertificate",
    show_default=True,
    help="CSMSRootCertificate (1.6: CentralSystemRootCertificate), ManufacturerRootCertificate, "
    "MORootCertificate, V2GRootCertificate, OEMRootCertificate (2.1).",
)
@click.pass_obj
def install(
    obj: tuple[str, str | None, Path | None], station: str, certificate: Path, certificate_type: str
) -> None:
    """Send the PEM file CERTIFICATE to STATION to trust; prints the charger's answer."""
    api, token, ca = obj
    body = {"certificate_type": certificate_type, "certificate": certificate.read_text()}
    answer = _request(api, token, "POST", _station_path(station), body, ca)
    click.echo(f"{answer['station_id']} {answer['certificate_type']}: {answer['status']}")
    if answer["status"] != "Accepted":
        raise SystemExit(1)


@certificates.command("list")
@click.argument("station")
@click.option("--type", "certificate_types", multiple=True, help="Only these types (repeatable).")
@click.pass_obj
def list_(
    obj: tuple[str, str | None, Path | None], station: str, certificate_types: tuple[str]
) -> None:
    """The certificates STATION holds: type, serial number, issuer name hash."""
    api, token, ca = obj
    query = urllib.parse.urlencode([("certificate_type", t) for t in certificate_types])
    path = _station_path(station) + (f"?{query}" if query else "")
    answer = _request(api, token, "GET", path, None, ca)
    for held in answer["certificates"]:
        click.echo(
            f"{held['certificate_type']:<30} {held['serial_number']:<40} "
            f"{held['hash_algorithm']} {held['issuer_name_hash']}"
        )
    if not answer["certificates"]:
        click.echo(f"{station} holds no certificate of these types")


@certificates.command("renew")
@click.argument("station")
@click.pass_obj
def renew(obj: tuple[str, str | None, Path | None], station: str) -> None:
    """Have STATION make a new key and send its CSR, which the server's CA signs (its new
    certificate follows in CertificateSigned); prints the station's answer."""
    api, token, ca = obj
    answer = _request(api, token, "POST", f"{_station_path(station)}/renew", {}, ca)
    click.echo(f"{answer['station_id']}: {answer['status']}")
    if answer["status"] != "Accepted":
        raise SystemExit(1)


@certificates.command("delete")
@click.argument("station")
@click.argument("serial_number")
@click.option(
    "--issuer-name-hash", default=None, help="When two certificates share the serial number."
)
@click.pass_obj
def delete(
    obj: tuple[str, str | None, Path | None],
    station: str,
    serial_number: str,
    issuer_name_hash: str | None,
) -> None:
    """Delete the certificate STATION lists with SERIAL_NUMBER; prints its answer."""
    api, token, ca = obj
    path = f"{_station_path(station)}/{urllib.parse.quote(serial_number, safe='')}"
    if issuer_name_hash:
        path += "?" + urllib.parse.urlencode({"issuer_name_hash": issuer_name_hash})
    answer = _request(api, token, "DELETE", path, None, ca)
    click.echo(f"{answer['station_id']} {answer['serial_number']}: {answer['status']}")
    if answer["status"] != "Accepted":
        raise SystemExit(1)


__all__ = ["CsmsCertificates", "certificates"]

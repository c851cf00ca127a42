"""Certificate management against the emulated station on loopback (OCPP 2.0.1 A02/A04/A05,
M03-M05; the 1.6 security extension): the station's own CSR signed by the operator's CA and
used at once under security profile 3; root certificates installed, listed and deleted with
the exact frames each version names; what we do not support answered with OCPP's code."""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import connect
from websockets.headers import build_authorization_basic

from lightson.csms.auth import hash_password
from lightson.csms.certificates import StationCertificateAuthority
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.tls import server_context
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedStation, Evse
from lightson.store import StationRecord, Store
from net_support import eventually, run
from tls_support import Authority

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "certificates-test-password"


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'certificates.db'}")
    for station_id, version in (("cs1", "2.0.1"), ("cs2", "2.0.1"), ("old1", "1.6")):
        store.add_station(
            StationRecord(station_id, hash_password(PASSWORD), version, "negative-limit", 11.0)
        )
    return store


def _key_file(path: Path, key: Any) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _client(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


@asynccontextmanager
async def _station(
    station_id: str,
    version: OcppVersion,
    url: str,
    tls: ssl.SSLContext | None = None,
    password: str = PASSWORD,
) -> AsyncIterator[EmulatedStation]:
    station = EmulatedStation(
        station_id, password, version, url, SimClock(START), {1: Evse(1, 11.0, 11.0)}, tls=tls
    )
    task = asyncio.create_task(station.run())
    try:
        yield station
    finally:
        await station.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _calls(station: EmulatedStation, action: str) -> list[list[Any]]:
    """The CALLs of ``action`` the station received, as parsed frames."""
    assert station.session is not None
    frames = [json.loads(f) for f in station.session.received]
    return [f for f in frames if f[0] == 2 and f[2] == action]


def _root(folder: Path, name: str) -> tuple[Authority, str]:
    root = Authority(folder, name)
    return root, root.certificate.public_bytes(serialization.Encoding.PEM).decode()


def _hash_data_by_hand(certificate: x509.Certificate) -> dict[str, str]:
    """RFC 6960's CertID of a self-signed EC certificate, computed without the OCSP helper:
    SHA-256 of the DER issuer name and of the public key's point."""
    point = certificate.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(certificate.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(point).hexdigest(),
        "serialNumber": format(certificate.serial_number, "x"),
    }


def test_a_station_signs_in_with_the_certificate_our_ca_made_from_its_csr(
    tmp_path: Path,
) -> None:
    """Profile 2: the emulator makes a key and a CSR naming itself; the operator's CA signs it
    and CertificateSigned carries the chain (leaf, then the CA), which verifies against the
    CA and holds the station's own key. Profile 3: the station connects with it, without its
    password; the same certificate presented by another station id is refused (401)."""
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    authority = StationCertificateAuthority(ca.path, _key_file(tmp_path / "ca.key", ca.key))
    store = _store(tmp_path)

    async def scenario() -> None:
        settings = CsmsSettings(port=0, tls=server_context(cert, key), station_ca=authority)
        async with (
            CsmsServer(store, SimClock(START), settings) as server,
            _station("cs1", OcppVersion.V201, server.url, _client(ca.path)) as station,
        ):
            await asyncio.wait_for(station.connected.wait(), 10)
            csr_key_before = station.certificates.key
            assert await station.request_certificate() == "Accepted"
            assert station.certificates.key is not csr_key_before  # a new key per CSR
            chain = await eventually(lambda: station.certificates.chain_pem)
            signed = _calls(station, "CertificateSigned")
            assert signed == [
                [
                    2,
                    signed[0][1],
                    "CertificateSigned",
                    {"certificateChain": chain, "certificateType": "ChargingStationCertificate"},
                ]
            ]
            own_key = station.certificates.key_pem()
        leaf, issuer = x509.load_pem_x509_certificates(chain.encode())
        assert issuer == ca.certificate
        leaf.verify_directly_issued_by(ca.certificate)  # raises unless our CA signed it
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cs1"
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        loaded = serialization.load_pem_private_key(own_key, password=None)
        assert leaf.public_key() == loaded.public_key()

        (tmp_path / "cs1.chain.pem").write_text(chain)
        (tmp_path / "cs1.own.key").write_bytes(own_key)
        mine = _client(ca.path, tmp_path / "cs1.chain.pem", tmp_path / "cs1.own.key")
        profile_3 = server_context(cert, key, client_ca=ca.path)
        async with CsmsServer(
            store, SimClock(START), CsmsSettings(port=0, tls=profile_3)
        ) as server:
            async with _station("cs1", OcppVersion.V201, server.url, mine) as station:
                station.password = "not-the-password-at-all"  # profile 3 asks for none
                await asyncio.wait_for(station.connected.wait(), 10)
                assert station.boots == 1 and "cs1" in server.sessions
            async with _station("cs2", OcppVersion.V201, server.url, mine) as other:
                await eventually(lambda: other.refused, timeout_s=10)
                assert other.refused == 401 and "cs2" not in server.sessions

    try:
        run(scenario())
    finally:
        store.close()


def test_root_certificates_reach_the_emulator_in_each_versions_frames(tmp_path: Path) -> None:
    """2.0.1 and 1.6 (security extension): InstallCertificate keeps the root, the listing's
    hash data are RFC 6960's (computed here by hand), DeleteCertificate with them removes it
    and a second delete is NotFound. Each frame is exactly what the version names."""
    store = _store(tmp_path)
    root, pem = _root(tmp_path, "Operator Root")
    listed = _hash_data_by_hand(root.certificate)

    async def scenario() -> None:
        async with (
            CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as server,
            _station("cs1", OcppVersion.V201, server.url) as new,
            _station("old1", OcppVersion.V16, server.url) as old,
        ):
            await asyncio.wait_for(new.connected.wait(), 10)
            await asyncio.wait_for(old.connected.wait(), 10)

            assert await server.installed_certificates("cs1", ["CSMSRootCertificate"]) == []
            assert await server.install_certificate("cs1", "CSMSRootCertificate", pem) == (
                "Accepted"
            )
            assert await server.install_certificate("cs1", "CSMSRootCertificate", "x") == (
                "Rejected"
            )
            held = await server.installed_certificates("cs1", ["CSMSRootCertificate"])
            assert held == [
                {"certificateType": "CSMSRootCertificate", "certificateHashData": listed}
            ]
            assert await server.delete_certificate("cs1", listed) == "Accepted"
            assert await server.delete_certificate("cs1", listed) == "NotFound"
            install = _calls(new, "InstallCertificate")[0]
            assert install[3] == {"certificateType": "CSMSRootCertificate", "certificate": pem}
            asked = [f[3] for f in _calls(new, "GetInstalledCertificateIds")]
            assert asked == [{"certificateType": ["CSMSRootCertificate"]}] * 2
            assert _calls(new, "DeleteCertificate")[0][3] == {"certificateHashData": listed}

            old_type = "CentralSystemRootCertificate"
            assert await server.install_certificate("old1", old_type, pem) == "Accepted"
            assert await server.installed_certificates("old1", [old_type]) == [listed]
            assert await server.delete_certificate("old1", listed) == "Accepted"
            assert _calls(old, "InstallCertificate")[0][3] == {
                "certificateType": old_type,
                "certificate": pem,
            }
            assert _calls(old, "GetInstalledCertificateIds")[0][3] == {"certificateType": old_type}
            assert old.certificates.roots == {old_type: []}

    try:
        run(scenario())
    finally:
        store.close()


def test_what_we_do_not_support_is_answered_with_the_code_ocpp_names(tmp_path: Path) -> None:
    """ISO 15118 certificate requests are part of 2.0.1 but not supported here: CALLERROR
    NotSupported; an action 1.6 does not have: NotImplemented."""
    store = _store(tmp_path)
    headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
    old_headers = {"Authorization": build_authorization_basic("old1", PASSWORD)}
    get_15118 = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install"}
    get_15118["exiRequest"] = "AAAA"

    async def ask(url: str, protocol: str, options: dict[str, Any], frame: list[Any]) -> Any:
        async with connect(url, subprotocols=[protocol], additional_headers=options) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps(frame))
            while True:
                got = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if got[1] == frame[1]:
                    return got

    async def scenario() -> None:
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as server:
            url = server.url
            answer = await ask(
                f"{url}/cs1", "ocpp2.0.1", headers, [2, "a", "Get15118EVCertificate", get_15118]
            )
            assert answer[:3] == [4, "a", "NotSupported"]
            status = {"ocspRequestData": _ocsp_data()}
            answer = await ask(
                f"{url}/cs1", "ocpp2.0.1", headers, [2, "b", "GetCertificateStatus", status]
            )
            assert answer[:3] == [4, "b", "NotSupported"]
            answer = await ask(
                f"{url}/old1", "ocpp1.6", old_headers, [2, "c", "Get15118EVCertificate", {}]
            )
            assert answer[:3] == [4, "c", "NotImplemented"]

    try:
        run(scenario())
    finally:
        store.close()


def _ocsp_data() -> dict[str, str]:
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "00" * 32,
        "issuerKeyHash": "11" * 32,
        "serialNumber": "1f",
        "responderURL": "http://ocsp.example/",
    }


def test_a_renewal_the_csms_asks_for_brings_a_new_signed_certificate(tmp_path: Path) -> None:
    """The CSMS triggers a new CSR (2.0.1 TriggerMessage, 1.6 ExtendedTriggerMessage, each
    named as its version names it); the station answers with SignCertificate, and its new
    chain, signed by our CA, arrives in CertificateSigned (1.6: without certificateType).
    Without a CA the operations server does not ask (NoCA)."""
    from lightson.api.certificates import StationCallError
    from lightson.cli.certificates import CsmsCertificates

    ca = Authority(tmp_path)
    authority = StationCertificateAuthority(ca.path, _key_file(tmp_path / "ca.key", ca.key))
    store = _store(tmp_path)

    async def scenario() -> None:
        settings = CsmsSettings(port=0, station_ca=authority)
        async with (
            CsmsServer(store, SimClock(START), settings) as server,
            _station("cs1", OcppVersion.V201, server.url) as new,
            _station("old1", OcppVersion.V16, server.url) as old,
        ):
            await asyncio.wait_for(new.connected.wait(), 10)
            await asyncio.wait_for(old.connected.wait(), 10)
            for station in (new, old):
                assert await server.request_station_certificate(station.id) == "Accepted"
                chain = await eventually(lambda s=station: s.certificates.chain_pem)
                leaf = x509.load_pem_x509_certificates(chain.encode())[0]
                leaf.verify_directly_issued_by(ca.certificate)
                name = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
                assert name == station.id
            trigger = _calls(new, "TriggerMessage")
            assert trigger == [
                [
                    2,
                    trigger[0][1],
                    "TriggerMessage",
                    {"requestedMessage": "SignChargingStationCertificate"},
                ]
            ]
            extended = _calls(old, "ExtendedTriggerMessage")
            assert extended[0][3] == {"requestedMessage": "SignChargePointCertificate"}
            signed = _calls(old, "CertificateSigned")
            assert signed[0][3] == {"certificateChain": old.certificates.chain_pem}
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as bare:
            try:
                await CsmsCertificates(bare).request_station_certificate("cs1")
            except StationCallError as error:
                assert (error.status, error.code) == (409, "NoCA")
            else:
                raise AssertionError("asked for a CSR no one would sign")

    try:
        run(scenario())
    finally:
        store.close()


def test_a_csr_is_signed_only_as_a_client_certificate_naming_one_station(tmp_path: Path) -> None:
    """A request with two common names (the station's first) is refused; one asking to be a
    CA gets a certificate that is not one."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from lightson.csms.certificates import CsrRefusedError

    ca = Authority(tmp_path)
    authority = StationCertificateAuthority(ca.path, _key_file(tmp_path / "ca.key", ca.key))
    key = ec.generate_private_key(ec.SECP256R1())

    def csr(*names: str, ca_wanted: bool = False) -> str:
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
        )
        if ca_wanted:
            builder = builder.add_extension(x509.BasicConstraints(True, None), critical=True)
        request = builder.sign(key, hashes.SHA256())
        return request.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(CsrRefusedError, match="2 common names"):
        authority.sign(csr("cs1", "cs2"), "cs1", START)
    with pytest.raises(CsrRefusedError, match="names None"):
        authority.sign(csr(), "cs1", START)
    chain = authority.sign(csr("cs1", ca_wanted=True), "cs1", START)
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.not_valid_before_utc == START - timedelta(minutes=5)
    assert leaf.not_valid_after_utc == START + timedelta(days=365)

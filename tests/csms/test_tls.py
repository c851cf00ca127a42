"""TLS an operator switches on from the command line: security profile 2 (wss:// with the
CSMS's certificate, then HTTP Basic) and profile 3 (client certificates naming the station),
and the HTTP API over https://. Certificates are made in the test."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.headers import build_authorization_basic

from lightson.cli.serve import OperationsServer
from lightson.cli.tls import tls_context
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.csms.tls import common_name, server_context
from lightson.domain.errors import ConfigError
from lightson.domain.time import SimClock
from lightson.store import StationRecord, Store
from net_support import eventually, free_port, run
from tls_support import Authority

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "tls-test-password-01"
HEARTBEAT = '[2,"hb","Heartbeat",{}]'
ROOT = {"certificateType": "CSMSRootCertificate"}
OLD_ROOT = "CentralSystemRootCertificate"  # the 1.6 security extension's name for it


def _client(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def _store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'tls.db'}")
    for station_id in ("cs1", "cs2"):
        store.add_station(
            StationRecord(station_id, hash_password(PASSWORD), "2.0.1", "negative-limit", 11.0)
        )
    return store


async def _heartbeat(url: str, **options: Any) -> list[Any]:
    async with connect(url, subprotocols=["ocpp2.0.1"], open_timeout=10, **options) as ws:  # type: ignore[list-item]
        await ws.send(HEARTBEAT)
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] == 3 and frame[1] == "hb":
                return list(frame)


def test_lightson_csms_serves_profile_2_from_the_command_line(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    store = _store(tmp_path)
    store.close()
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "csms", "--port", str(port)),
            *("--db", f"sqlite:///{tmp_path / 'tls.db'}"),
            *("--tls-cert", str(cert), "--tls-key", str(key)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert f"CSMS listening on wss://127.0.0.1:{port}/ocpp" in line, line
        headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
        url = f"wss://127.0.0.1:{port}/ocpp/cs1"
        frame = run(_heartbeat(url, ssl=_client(ca.path), additional_headers=headers))
        assert frame[:2] == [3, "hb"]
        with pytest.raises(ssl.SSLCertVerificationError):  # a CA the station does not trust
            run(_heartbeat(url, ssl=ssl.create_default_context(), additional_headers=headers))
    finally:
        server.terminate()
        server.wait(10)


def test_profile_3_admits_only_the_station_its_certificate_names(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    cs1 = ca.issue("cs1")
    (tmp_path / "elsewhere").mkdir()
    stranger = Authority(tmp_path / "elsewhere", "another CA").issue("cs1")
    store = _store(tmp_path)

    async def scenario() -> None:
        tls = server_context(cert, key, client_ca=ca.path)
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0, tls=tls)) as server:
            # Its own certificate, no password: admitted.
            frame = await _heartbeat(f"{server.url}/cs1", ssl=_client(ca.path, *cs1))
            assert frame[:2] == [3, "hb"]
            # The same certificate connecting as cs2: refused, even with cs2's password.
            headers = {"Authorization": build_authorization_basic("cs2", PASSWORD)}
            with pytest.raises(InvalidStatus) as refused:
                await _heartbeat(
                    f"{server.url}/cs2", ssl=_client(ca.path, *cs1), additional_headers=headers
                )
            assert refused.value.response.status_code == 401
            # A password alone, or a certificate from a CA we do not trust: the TLS handshake
            # fails (with TLS 1.3 the client learns it as the connection closes).
            for client in (_client(ca.path), _client(ca.path, *stranger)):
                with pytest.raises((ssl.SSLError, ConnectionError, InvalidMessage)):
                    await _heartbeat(f"{server.url}/cs1", ssl=client, additional_headers=headers)
            assert server.rejected_handshakes == 1

    try:
        run(scenario())
    finally:
        store.close()


def test_the_api_serves_https_with_the_same_certificate(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson", server=True)
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    program = load_program("example")
    server = OperationsServer(
        program,
        store,
        SimClock(START),
        http_port=0,
        csms_settings=CsmsSettings(port=0, tls=server_context(cert, key)),
        http_tls=(cert, key),
    )

    def health(url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=10, context=_client(ca.path)) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    async def scenario() -> None:
        async with server.running() as running:
            assert running.url.startswith("https://")
            assert running.csms.url.startswith("wss://")
            answer = await asyncio.to_thread(health, f"{running.url}/api/health")
            assert answer["status"] == "ok"

    try:
        run(scenario())
    finally:
        store.close()


def test_tls_options_name_what_is_missing_or_wrong(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson", server=True)
    assert tls_context(None, None, None) is None
    with pytest.raises(ConfigError, match="--tls-key"):
        tls_context(cert, None, None)
    with pytest.raises(ConfigError, match="--tls-cert"):
        tls_context(None, key, None)
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        tls_context(None, None, ca.path)
    with pytest.raises(ConfigError, match="--tls-cert"):
        tls_context(key, key, None)  # a key is no certificate
    with pytest.raises(ConfigError, match="--tls-client-ca"):
        tls_context(cert, key, key)
    context = tls_context(cert, key, ca.path)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_common_name_reads_the_subject() -> None:
    certificate = {"subject": ((("countryName", "US"),), (("commonName", "cs-7"),))}
    assert common_name(certificate) == "cs-7"
    assert common_name({"subject": ((("organizationName", "x"),),)}) is None
    assert common_name(None) is None


def _csr(common_name: str) -> tuple[str, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


async def _call(ws: Any, frame: list[Any]) -> tuple[list[Any], list[list[Any]]]:
    """Send a CALL; its answer, and the CSMS's own CALLs meanwhile (answered Accepted)."""
    await ws.send(json.dumps(frame))
    calls = []
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if got[0] == 2:
            calls.append(got)
            await ws.send(json.dumps([3, got[1], {"status": "Accepted"}]))
        elif got[1] == frame[1]:
            return got, calls


async def _next_call(ws: Any, action: str) -> list[Any]:
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if got[0] == 2:
            await ws.send(json.dumps([3, got[1], {"status": "Accepted"}]))
            if got[2] == action:
                return list(got)


def test_a_station_gets_its_certificate_signed_and_connects_with_it(tmp_path: Path) -> None:
    """A02: over profile 2 the station sends a CSR naming itself; the operator's CA signs it
    and CertificateSigned brings the chain; with it the station is admitted under profile 3
    (no password). A CSR naming another station, a V2G certificate, or no CA: Rejected."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from lightson.csms.certificates import StationCertificateAuthority

    ca = Authority(tmp_path)
    cert, key = ca.issue("lightson-csms", server=True)
    ca_key = tmp_path / "ca.key.pem"
    ca_key.write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    authority = StationCertificateAuthority(ca.path, ca_key)
    store = _store(tmp_path)
    headers = {"Authorization": build_authorization_basic("cs1", PASSWORD)}
    csr, station_key = _csr("cs1")

    async def scenario() -> None:
        settings = CsmsSettings(port=0, tls=server_context(cert, key), station_ca=authority)
        async with (
            CsmsServer(store, SimClock(START), settings) as server,
            connect(
                f"{server.url}/cs1",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                additional_headers=headers,
                ssl=_client(ca.path),
            ) as ws,
        ):
            answer, _ = await _call(ws, [2, "s1", "SignCertificate", {"csr": csr}])
            assert answer == [3, "s1", {"status": "Accepted"}]
            signed = await _next_call(ws, "CertificateSigned")
            chain = signed[3]["certificateChain"]
            assert signed[3]["certificateType"] == "ChargingStationCertificate"
            other, _ = await _call(ws, [2, "s2", "SignCertificate", {"csr": _csr("cs2")[0]}])
            assert other[2]["status"] == "Rejected"
            assert other[2]["statusInfo"]["reasonCode"] == "InvalidCSR"
            assert "'cs2', not the station 'cs1'" in other[2]["statusInfo"]["additionalInfo"]
            v2g = {"csr": csr, "certificateType": "V2GCertificate"}
            refused, _ = await _call(ws, [2, "s3", "SignCertificate", v2g])
            assert refused[2]["statusInfo"]["reasonCode"] == "UnsupportedCertType"
        leaf = x509.load_pem_x509_certificates(chain.encode())[0]
        assert leaf.issuer == ca.certificate.subject
        (tmp_path / "cs1-signed.pem").write_text(chain)
        (tmp_path / "cs1-own.key").write_bytes(
            station_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        tls = server_context(cert, key, client_ca=ca.path)
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0, tls=tls)) as server:
            client = _client(ca.path, tmp_path / "cs1-signed.pem", tmp_path / "cs1-own.key")
            frame = await _heartbeat(f"{server.url}/cs1", ssl=client)
            assert frame[:2] == [3, "hb"]
        async with (
            CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as server,
            connect(
                f"{server.url}/cs1",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                additional_headers=headers,
            ) as ws,
        ):
            answer, _ = await _call(ws, [2, "s4", "SignCertificate", {"csr": csr}])
            assert answer[2]["statusInfo"]["reasonCode"] == "NoCA"

    try:
        run(scenario())
    finally:
        store.close()


def test_root_certificates_are_installed_listed_and_deleted_as_each_version_says(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    store.add_station(StationRecord("cs16", hash_password(PASSWORD), "1.6", "negative-limit", 11))
    hash_data = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "a" * 64,
        "issuerKeyHash": "b" * 64,
        "serialNumber": "01",
    }
    root_held = {**ROOT, "certificateHashData": hash_data}

    async def station(server: CsmsServer, station_id: str, version: str, asked: list[Any]) -> None:
        headers = {"Authorization": build_authorization_basic(station_id, PASSWORD)}
        async with connect(
            f"{server.url}/{station_id}",
            subprotocols=[version],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            async for text in ws:
                frame = json.loads(text)
                asked.append(frame[2:])
                if frame[2] == "GetInstalledCertificateIds":
                    held: dict[str, Any] = (
                        {"certificateHashData": [hash_data]}
                        if version == "ocpp1.6"
                        else {"certificateHashDataChain": [root_held]}
                    )
                    await ws.send(json.dumps([3, frame[1], {"status": "Accepted", **held}]))
                else:
                    await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))

    async def scenario() -> dict[str, list[Any]]:
        asked: dict[str, list[Any]] = {"cs1": [], "cs16": []}
        async with CsmsServer(store, SimClock(START), CsmsSettings(port=0)) as server:
            tasks = [
                asyncio.create_task(station(server, "cs1", "ocpp2.0.1", asked["cs1"])),
                asyncio.create_task(station(server, "cs16", "ocpp1.6", asked["cs16"])),
            ]
            await eventually(lambda: {"cs1", "cs16"} <= set(server.sessions))
            pem = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"
            assert await server.install_certificate("cs1", "CSMSRootCertificate", pem) == "Accepted"
            held = await server.installed_certificates("cs1", ["CSMSRootCertificate"])
            assert held[0]["certificateHashData"] == hash_data
            assert (
                await server.delete_certificate("cs1", held[0]["certificateHashData"]) == "Accepted"
            )
            old = OLD_ROOT
            assert await server.install_certificate("cs16", old, pem) == "Accepted"
            assert await server.installed_certificates("cs16", [old]) == [hash_data]
            with pytest.raises(ValueError, match="one certificate type at a time"):
                await server.installed_certificates("cs16")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return asked

    try:
        asked = run(scenario())
    finally:
        store.close()
    pem = "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n"
    assert asked["cs1"] == [
        ["InstallCertificate", {"certificateType": "CSMSRootCertificate", "certificate": pem}],
        ["GetInstalledCertificateIds", {"certificateType": ["CSMSRootCertificate"]}],
        ["DeleteCertificate", {"certificateHashData": hash_data}],
    ]
    assert asked["cs16"] == [
        [
            "InstallCertificate",
            {"certificateType": OLD_ROOT, "certificate": pem},
        ],
        ["GetInstalledCertificateIds", {"certificateType": OLD_ROOT}],
    ]

"""Moving a charger from security profile 2 to 3 as an operator does, with the shipped
commands only: ``lightson serve`` with TLS and the program file's ``station_ca``, then
``lightson certificates renew`` against its https API, then ``serve`` again with
``--tls-client-ca``, where the charger connects with the certificate it was given."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lightson.cli import main
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.wire import OcppVersion
from lightson.emulator import EmulatedStation, Evse
from lightson.services.access import AccessService
from lightson.store import StationRecord, Store
from net_support import free_port
from tls_support import Authority

PASSWORD = "profile-move-password-01"
STATION = "home-lowell-evse1"


@contextmanager
def _serving(arguments: list[str]) -> Iterator[subprocess.Popen[str]]:
    """``lightson serve`` in its own process until its first line; SIGTERM at the end."""
    server = subprocess.Popen(
        [sys.executable, "-m", "lightson.cli", "serve", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("dashboard and API: https://"):
            server.kill()
            _, err = server.communicate(timeout=30)
            raise AssertionError(f"serve did not start: {line}{err[-2000:]}")
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def _client(ca: Path, chain: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if chain is not None:
        context.load_cert_chain(chain, key)
    return context


async def _connected(station: EmulatedStation) -> int:
    """Run the station until it has booted; its boots then."""
    task = asyncio.create_task(station.run())
    try:
        await asyncio.wait_for(station.connected.wait(), 30)
        return station.boots
    finally:
        await station.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_an_operator_moves_a_charger_from_profile_2_to_3(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = Authority(pki, "Stations CA")
    (pki / "ca.key").write_bytes(
        ca.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_cert, server_key = ca.issue("lightson-server", server=True)
    example = (resources.files("lightson") / "examples" / "example.yaml").read_text()
    program = tmp_path / "program.yaml"
    section = f"station_ca:\n  cert: pki/{ca.path.name}\n  key: pki/ca.key\n"
    program.write_text(example.replace("\nsites:\n", f"\n{section}\nsites:\n", 1))

    url = f"sqlite:///{tmp_path / 'serve.db'}"
    store = Store(url)
    store.add_station(StationRecord(STATION, hash_password(PASSWORD), "2.0.1", "charge-only", 11))
    token = AccessService(store, AcceleratedClock()).issue("staff", "admin")
    store.close()
    http_port, csms_port = free_port(), free_port()
    common = [
        *("--program", str(program), "--db", url),
        *("--port", str(http_port), "--csms-port", str(csms_port)),
        *("--tls-cert", str(server_cert), "--tls-key", str(server_key)),
    ]
    csms_url = f"wss://127.0.0.1:{csms_port}/ocpp"
    api = f"https://127.0.0.1:{http_port}"

    def station(tls: ssl.SSLContext, password: str = PASSWORD) -> EmulatedStation:
        return EmulatedStation(
            STATION,
            password,
            OcppVersion.V201,
            csms_url,
            AcceleratedClock(),
            {1: Evse(1, 11, 11)},
            tls=tls,
        )

    async def renew(emulated: EmulatedStation) -> str:
        task = asyncio.create_task(emulated.run())
        try:
            await asyncio.wait_for(emulated.connected.wait(), 30)
            command = ["certificates", "--api", api, "--ca", str(ca.path), "--token", token]
            result = await asyncio.to_thread(CliRunner().invoke, main, [*command, "renew", STATION])
            assert (result.exit_code, result.output) == (0, f"{STATION}: Accepted\n")
            for _ in range(300):  # the CSR and the signed chain follow the answer
                if emulated.certificates.chain_pem is not None:
                    return emulated.certificates.chain_pem
                await asyncio.sleep(0.1)
            raise AssertionError("no CertificateSigned came")
        finally:
            await emulated.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # Profile 2: the server's certificate, the station's password.
    under_2 = station(_client(ca.path))
    with _serving(common):
        chain = asyncio.run(renew(under_2))
    leaf = x509.load_pem_x509_certificates(chain.encode())[0]
    leaf.verify_directly_issued_by(ca.certificate)
    (tmp_path / "station.pem").write_text(chain)
    (tmp_path / "station.key").write_bytes(under_2.certificates.key_pem())

    # Profile 3: the certificate alone (a wrong password is not even looked at).
    mine = _client(ca.path, tmp_path / "station.pem", tmp_path / "station.key")
    with _serving([*common, "--tls-client-ca", str(ca.path)]):
        assert asyncio.run(_connected(station(mine, password="no-password-is-asked"))) == 1

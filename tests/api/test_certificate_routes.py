"""Chargers' root certificates through the operations server: ``lightson certificates`` calls
the API of a running server (on loopback), which sends the OCPP calls to emulated chargers
(2.0.1 and 1.6). Only staff may; owners and utilities are refused alike whatever the id;
every call, done or refused, is in the audit log."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from websockets.asyncio.client import connect
from websockets.headers import build_authorization_basic

from lightson.cli import main
from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.certificates import StationCertificateAuthority
from lightson.csms.server import CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.domain.time import SimClock
from lightson.emulator import EmulatedStation, Evse
from lightson.services.access import AccessService
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from net_support import eventually, run
from tls_support import Authority

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "certificate-routes-password"
STATIONS = {
    "home-lowell-evse1": OcppVersion.V201,
    "biz-evse1": OcppVersion.V16,
    "depot-evse1": OcppVersion.V21,  # registered, never connected
    "depot-evse2": OcppVersion.V21,  # a raw socket that refuses every call
}


class Deployment:
    """A store with the stations and tokens, and the server over it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = Store(f"sqlite:///{folder / 'routes.db'}")
        for station_id, version in STATIONS.items():
            record = StationRecord(
                station_id, hash_password(PASSWORD), version.value, "negative-limit", 11.0
            )
            self.store.add_station(record)
        access = AccessService(self.store, SimClock(START))
        self.tokens = {
            "admin": access.issue("staff", "admin"),
            "owner": access.issue("lowell-owner", "owner", ["home-lowell"]),
            "utility": access.issue("national-grid", "utility", utility="national-grid"),
        }
        root = Authority(folder, "Operator Root")
        self.root = root.certificate
        self.root_file = folder / "root.pem"
        self.root_file.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        self.serial = format(self.root.serial_number, "x")
        (folder / "ca.key").write_bytes(
            root.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        signer = StationCertificateAuthority(root.path, folder / "ca.key")
        self.server = OperationsServer(
            load_program("example"),
            self.store,
            SimClock(START),
            http_port=0,
            csms_settings=CsmsSettings(port=0, response_timeout_s=5.0, station_ca=signer),
        )

    def station(self, station_id: str) -> EmulatedStation:
        return EmulatedStation(
            station_id,
            PASSWORD,
            STATIONS[station_id],
            self.server.csms.url,
            SimClock(START),
            {1: Evse(1, 11.0, 11.0)},
        )

    def cli(self, url: str, *arguments: str, role: str = "admin") -> Any:
        command = ["certificates", "--api", url, "--token", self.tokens[role], *arguments]
        return CliRunner().invoke(main, command)

    def audit(self) -> list[tuple[str, str, str, str]]:
        return [
            (r["who"], r["action"], r["target"], r["outcome"])
            for r in self.store.rows(db.audit_log)
        ]


def _http(url: str, token: str, method: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def _refusing_station(url: str, station_id: str, ready: asyncio.Event) -> None:
    """A charger that answers every call NotSupported (a 1.6 one without the extension
    would say NotImplemented)."""
    headers = {"Authorization": build_authorization_basic(station_id, PASSWORD)}
    async with connect(
        f"{url}/{station_id}", subprotocols=["ocpp2.1"], additional_headers=headers
    ) as ws:  # type: ignore[list-item]
        ready.set()
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] == 2:
                await ws.send(json.dumps([4, frame[1], "NotSupported", "not here", {}]))


def test_staff_install_list_and_delete_roots_from_the_cli(tmp_path: Path) -> None:
    """2.0.1: the root goes as CSMSRootCertificate; 1.6: the same type is sent as
    CentralSystemRootCertificate and listed one type at a time. A serial number is matched
    as a number (any case, leading zeros). Unknown, offline and refusing chargers, a type the
    version does not have and a file that is no certificate: one line each, exit 1."""
    deployment = Deployment(tmp_path)
    root_pem = deployment.root_file.read_text()
    serial = deployment.serial

    async def scenario() -> None:
        async with deployment.server.running() as server:
            new, old = deployment.station("home-lowell-evse1"), deployment.station("biz-evse1")
            tasks = [asyncio.create_task(s.run()) for s in (new, old)]
            refusing_ready = asyncio.Event()
            tasks.append(
                asyncio.create_task(
                    _refusing_station(server.csms.url, "depot-evse2", refusing_ready)
                )
            )
            try:
                await asyncio.wait_for(new.connected.wait(), 10)
                await asyncio.wait_for(old.connected.wait(), 10)
                await asyncio.wait_for(refusing_ready.wait(), 10)
                await eventually(lambda: "depot-evse2" in server.csms.sessions)
                await checks(server.url, new, old)
            finally:
                for station in (new, old):
                    await station.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def cli(url: str, *arguments: str) -> Any:
        return await asyncio.to_thread(deployment.cli, url, *arguments)

    async def checks(url: str, new: EmulatedStation, old: EmulatedStation) -> None:
        root_file = str(deployment.root_file)
        done = await cli(url, "install", "home-lowell-evse1", root_file)
        assert (done.exit_code, done.output) == (
            0,
            "home-lowell-evse1 CSMSRootCertificate: Accepted\n",
        )
        assert [c.serial_number for c in new.certificates.roots["CSMSRootCertificate"]] == [
            deployment.root.serial_number
        ]
        done = await cli(url, "install", "biz-evse1", root_file)
        assert done.output == "biz-evse1 CentralSystemRootCertificate: Accepted\n"
        assert old.session is not None
        sent = [json.loads(f) for f in old.session.received if '"InstallCertificate"' in f]
        assert sent[0][3] == {
            "certificateType": "CentralSystemRootCertificate",
            "certificate": root_pem,
        }

        listed = await cli(url, "list", "biz-evse1")
        assert listed.exit_code == 0
        assert listed.output.split()[:2] == ["CentralSystemRootCertificate", serial]
        asked = [json.loads(f)[3] for f in old.session.received if "GetInstalledCert" in f]
        assert asked == [
            {"certificateType": "CentralSystemRootCertificate"},
            {"certificateType": "ManufacturerRootCertificate"},
        ]
        listed = await cli(url, "list", "home-lowell-evse1", "--type", "CSMSRootCertificate")
        assert listed.output.split()[:2] == ["CSMSRootCertificate", serial]

        written = "00" + serial.upper()
        done = await cli(url, "delete", "home-lowell-evse1", written)
        assert (done.exit_code, done.output) == (0, f"home-lowell-evse1 {written}: Accepted\n")
        assert new.certificates.roots["CSMSRootCertificate"] == []
        listed = await cli(url, "list", "home-lowell-evse1")
        assert listed.output == "home-lowell-evse1 holds no certificate of these types\n"
        gone = await cli(url, "delete", "home-lowell-evse1", serial)
        assert gone.exit_code == 1
        assert "404: serial_number: station 'home-lowell-evse1' lists no certificate" in (
            gone.output
        )

        renewed = await cli(url, "renew", "biz-evse1")
        assert (renewed.exit_code, renewed.output) == (0, "biz-evse1: Accepted\n")
        chain = await eventually(lambda: old.certificates.chain_pem)
        assert x509.load_pem_x509_certificates(chain.encode())[1] == deployment.root

        failures = {
            ("list", "nope"): "404: station_id: no station 'nope'",
            ("list", "depot-evse1"): "409: station_id: station 'depot-evse1' is not connected",
            ("install", "depot-evse2", root_file): (
                "502: station_id: station 'depot-evse2' answered NotSupported: not here"
            ),
            ("install", "biz-evse1", root_file, "--type", "MORootCertificate"): (
                "422: certificate_type: an OCPP 1.6 charger takes CentralSystemRootCertificate,"
                " ManufacturerRootCertificate; got 'MORootCertificate'"
            ),
            ("install", "home-lowell-evse1", str(tmp_path / "routes.db")): (
                "422: certificate: must be one PEM certificate"
            ),
        }
        for arguments, message in failures.items():
            failed = await cli(url, *arguments)
            assert failed.exit_code == 1, arguments
            assert message in failed.output, (arguments, failed.output)

    try:
        run(scenario(), timeout_s=120)
        audit = deployment.audit()
        assert ("staff", "certificate-install", "home-lowell-evse1", "done") in audit
        assert ("staff", "certificate-install", "biz-evse1", "done") in audit
        assert ("staff", "certificates-list", "biz-evse1", "done") in audit
        assert ("staff", "certificate-delete", f"home-lowell-evse1/00{serial.upper()}", "done") in (
            audit
        )
        assert ("staff", "certificate-install", "depot-evse2", "refused") in audit
        assert ("staff", "certificates-list", "nope", "refused") in audit
        assert ("staff", "certificate-install", "biz-evse1", "refused") in audit
        assert ("staff", "certificate-renew", "biz-evse1", "done") in audit
    finally:
        deployment.store.close()


def test_owners_and_utilities_are_refused_alike_and_audited(tmp_path: Path) -> None:
    """403 to an owner or a utility, the same for their own charger, another one and an id
    that does not exist (nothing to learn by trying); nothing reaches the charger."""
    deployment = Deployment(tmp_path)
    root_pem = deployment.root_file.read_text()

    async def scenario() -> None:
        async with deployment.server.running() as server:
            station = deployment.station("home-lowell-evse1")
            task = asyncio.create_task(station.run())
            try:
                await asyncio.wait_for(station.connected.wait(), 10)
                answers = await asyncio.to_thread(calls, server.url)
                assert station.session is not None
                assert not any("Certificate" in f for f in station.session.received)
            finally:
                await station.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        assert {status for status, _ in answers} == {403}
        assert len({json.dumps(body) for _, body in answers}) == 2  # one per role
        assert answers[0][1] == {
            "errors": [{"field": "", "message": "the owner role may not manage certificates"}]
        }

    def calls(url: str) -> list[tuple[int, Any]]:
        answers = []
        body = {"certificate_type": "CSMSRootCertificate", "certificate": root_pem}
        for role in ("owner", "utility"):
            token = deployment.tokens[role]
            for station_id in ("home-lowell-evse1", "biz-evse1", "no-such-station"):
                path = f"{url}/api/stations/{station_id}/certificates"
                answers.append(_http(path, token, "GET"))
                answers.append(_http(path, token, "POST", body))
                answers.append(_http(f"{path}/{deployment.serial}", token, "DELETE"))
                answers.append(_http(f"{path}/renew", token, "POST", {}))
        return answers

    try:
        run(scenario(), timeout_s=120)
        refused = [a for a in deployment.audit() if a[0] in ("lowell-owner", "national-grid")]
        assert len(refused) == 24 and {a[3] for a in refused} == {"refused"}
        assert ("lowell-owner", "certificate-install", "no-such-station", "refused") in refused
        assert ("national-grid", "certificate-delete", "home-lowell-evse1", "refused") in refused
    finally:
        deployment.store.close()


def test_the_cli_says_what_is_missing_in_one_line() -> None:
    from net_support import free_port

    runner = CliRunner()
    no_token = runner.invoke(main, ["certificates", "list", "cs1"], env={"LIGHTSON_TOKEN": ""})
    assert no_token.exit_code == 1
    assert no_token.output == "Error: an admin token is needed: --token or $LIGHTSON_TOKEN\n"
    api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    down = runner.invoke(main, ["certificates", "--api", api, "--token", "t", "list", "cs1"])
    assert down.exit_code == 1
    assert down.output.startswith(f"Error: cannot reach the API at {api}: ")
    assert "Traceback" not in down.output


def test_without_a_charger_server_in_the_process_the_routes_say_so(tmp_path: Path) -> None:
    from test_app import World

    world = World(load_program("example"), tmp_path)
    try:
        del world.client.app.state.stations
        answer = world.call("admin", "GET", "/api/stations/depot-evse1/certificates")
        assert answer.status_code == 503
        assert answer.json() == {
            "errors": [{"field": "", "message": "no charging-station server runs in this process"}]
        }
        audit = [(r["action"], r["outcome"], r["detail"]) for r in world.store.rows(db.audit_log)]
        assert audit == [("certificates-list", "refused", {"status": 503})]
    finally:
        world.store.close()

"""The certificate routes of ``lightson api`` reach the charger through the gateway that
holds it, over the broker (``bus.stations``): real NATS and PostgreSQL on loopback, a
gateway and an API server in this process, an emulated OCPP 2.0.1 charger. The CLI's calls
give the same answers as against ``serve``; a charger no gateway holds is 409."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from lightson.bus.stations import StationCallServer
from lightson.cli import main
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.clock import AcceleratedClock
from lightson.csms.server import CsmsSettings
from lightson.csms.wire import OcppVersion
from lightson.emulator import EmulatedStation, Evse
from lightson.roles.api import ApiRole
from lightson.roles.gateway import GatewayRole
from lightson.services.access import AccessService
from lightson.store import StationRecord, Store
from lightson.store import schema as db
from nats_support import NatsServer
from net_support import eventually, run
from pg_support import fresh_database
from tls_support import Authority

PASSWORD = "api-certificates-password"
STATION = "home-lowell-evse1"
ABSENT = "biz-evse1"  # registered, never connected


def test_certificate_calls_from_the_api_role_go_through_the_gateway(
    nats_broker: NatsServer, postgres_cluster: str, tmp_path: Path
) -> None:
    store = Store(fresh_database(postgres_cluster))
    for station_id in (STATION, ABSENT):
        record = StationRecord(station_id, hash_password(PASSWORD), "2.0.1", "negative-limit", 11)
        store.add_station(record)
    clock = AcceleratedClock()
    token = AccessService(store, clock).issue("staff", "admin")
    root = Authority(tmp_path, "Operator Root").certificate
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    serial = format(root.serial_number, "x")
    program = load_program("example")
    gateway = GatewayRole(program, store, clock, nats_broker.url, CsmsSettings(port=0))
    api = ApiRole(program, store, clock, nats_broker.url, http_port=0)

    def cli(*arguments: str) -> Any:
        return CliRunner().invoke(
            main, ["certificates", "--api", api.url, "--token", token, *arguments]
        )

    async def scenario() -> None:
        async with gateway.running(), api.running():
            station = EmulatedStation(
                STATION,
                PASSWORD,
                OcppVersion.V201,
                gateway.csms.url,
                clock,
                {1: Evse(1, 11.0, 11.0)},
            )
            task = asyncio.create_task(station.run())
            try:
                await asyncio.wait_for(station.connected.wait(), 30)
                await eventually(lambda: _calls(gateway).subscriptions.get(STATION), 10)
                done = await asyncio.to_thread(cli, "install", STATION, str(root_file))
                assert (done.exit_code, done.output) == (
                    0,
                    f"{STATION} CSMSRootCertificate: Accepted\n",
                )
                held = station.certificates.roots["CSMSRootCertificate"]
                assert [c.serial_number for c in held] == [root.serial_number]
                listed = await asyncio.to_thread(cli, "list", STATION)
                assert listed.output.split()[:2] == ["CSMSRootCertificate", serial]
                gone = await asyncio.to_thread(cli, "delete", STATION, serial)
                assert (gone.exit_code, gone.output) == (0, f"{STATION} {serial}: Accepted\n")
                assert station.certificates.roots["CSMSRootCertificate"] == []
                offline = await asyncio.to_thread(cli, "list", ABSENT)
                assert offline.exit_code == 1
                assert f"409: station_id: station '{ABSENT}' is not connected" in offline.output
                # A body that is no call gets an error reply; the gateway goes on serving.
                assert api.bus is not None
                reply = await api.bus.client.request(f"lightson.station.{STATION}", b"[1]", 10)
                assert json.loads(reply.data)["error"]["status"] == 400
            finally:
                await station.stop()
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    try:
        run(scenario(), 120)
        audit = [(r["action"], r["target"], r["outcome"]) for r in store.rows(db.audit_log)]
        assert ("certificate-install", STATION, "done") in audit
        assert ("certificates-list", ABSENT, "refused") in audit
    finally:
        store.close()


def _calls(gateway: GatewayRole) -> StationCallServer:
    """The gateway's certificate-call server (kept on the role for tests)."""
    calls = gateway.calls
    assert calls is not None
    return calls

"""A request body over the limit is refused (413) before it is read, and before the token is
checked: a server that runs the chargers' connections must not read 300 MB into memory for a
caller without a token. Tested against the real server (uvicorn) on loopback with raw
sockets, so nothing buffers the body for it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from lightson.cli.serve import OperationsServer
from lightson.config import load_program
from lightson.csms.server import CsmsSettings
from lightson.domain.time import SimClock
from lightson.store import Store
from net_support import run

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PATH = "/api/sites/school-beverly/meter"


async def _exchange(port: int, head: str, body: bytes) -> tuple[int, dict[str, object]]:
    """Send ``head`` and as much of ``body`` as the server reads; the status and JSON."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        writer.write(body)
        try:
            async with asyncio.timeout(2):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # the server stopped reading: the answer is what counts
        answer = await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.decode().partition("\r\n")
    payload = rest.split("\r\n\r\n", 1)[1]
    return int(status_line.split()[1]), json.loads(
        payload.split("\r\n")[0] if "\r\n" in payload else payload
    )


def _server(tmp_path: Path) -> tuple[OperationsServer, Store]:
    store = Store(f"sqlite:///{tmp_path / 'limits.db'}")
    program = load_program("example")
    server = OperationsServer(
        program, store, SimClock(START), http_port=0, csms_settings=CsmsSettings(port=0)
    )
    return server, store


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    server, store = _server(tmp_path)

    async def scenario() -> None:
        async with server.running() as running:
            port = int(running.url.rsplit(":", 1)[1])
            head = (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
            )
            # 64 KiB of the 300 MB: the answer must come without the rest.
            status, answer = await _exchange(port, head, b" " * 65536)
            assert status == 413
            assert answer == {
                "errors": [
                    {"field": "body", "message": "the request body is larger than 1048576 bytes"}
                ]
            }

    try:
        run(scenario())
    finally:
        store.close()


def test_a_chunked_body_is_cut_off_at_the_limit_and_small_ones_reach_the_token_check(
    tmp_path: Path,
) -> None:
    server, store = _server(tmp_path)

    async def scenario() -> None:
        async with server.running() as running:
            port = int(running.url.rsplit(":", 1)[1])
            head = (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b" " * 65536
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(32))
            status, _ = await _exchange(port, head, chunks + b"0\r\n\r\n")  # 2 MiB
            assert status == 413
            small = b'{"readings": []}'
            head = (
                f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(small)}\r\n\r\n"
            )
            status, answer = await _exchange(port, head, small)
            assert status == 401, answer  # within the limit: the token is what is missing

    try:
        run(scenario())
    finally:
        store.close()


def test_health_is_degraded_while_the_database_cannot_be_written_or_the_loop_stalls(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from lightson.api.app import Operations, create_app
    from lightson.services.live import LiveControl
    from lightson.store import schema as db
    from live_support import FakeSink

    store = Store(f"sqlite:///{tmp_path / 'health.db'}")
    program = load_program("example")
    clock = SimClock(START)
    live = LiveControl(program, store, FakeSink(), clock)
    client = TestClient(create_app(Operations(program, store, clock, live)))
    signal = {"site_id": "school-beverly", "source": "meter", "signal": "lost", "at": START}

    def read_only(connection: object, _record: object) -> None:
        connection.execute("PRAGMA query_only = ON")  # type: ignore[attr-defined]

    try:
        assert client.get("/api/health").json()["status"] == "ok"  # not ticked yet: starting
        event.listen(store.engine, "connect", read_only)
        store.engine.dispose()  # every new connection is read-only, as on a read-only disk
        failed = store.write([(db.grid_signals, {**signal, "released_vehicles": []})])
        assert failed.exception(10) is not None
        answer = client.get("/api/health")
        assert answer.status_code == 503
        (problem,) = answer.json()["problems"]
        assert problem.startswith("the database cannot be written") and "readonly" in problem
        event.remove(store.engine, "connect", read_only)
        store.engine.dispose()
        store.write([(db.grid_signals, {**signal, "released_vehicles": []})]).result(10)
        assert client.get("/api/health").status_code == 200  # written again: healthy
        asyncio.run(live.tick("school-beverly"))
        clock.advance(3 * live.every)
        assert client.get("/api/health").status_code == 200  # three intervals: still due
        clock.advance(timedelta(seconds=1))
        answer = client.get("/api/health")
        assert answer.status_code == 503
        assert answer.json()["problems"] == [
            f"the control loop has not ticked since {START.isoformat()}"
        ]
    finally:
        store.close()

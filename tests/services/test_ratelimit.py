"""Rate limits by key (lightson.services.ratelimit), by hand and where they are used: a
token's writes and an address's failed authentications on the API, failed charger
handshakes on the CSMS."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.headers import build_authorization_basic

from lightson.api.app import Operations, create_app
from lightson.config import load_program
from lightson.csms.auth import hash_password
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.live import LiveControl
from lightson.services.ratelimit import Buckets
from lightson.store import StationRecord, Store
from live_support import FakeSink

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
PASSWORD = "rate-limit-password-01"


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_buckets_by_hand() -> None:
    clock = Clock()
    buckets = Buckets(per_second=0.5, burst=2, now=clock)
    assert buckets.take("a") == 0.0 and buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(2.0)  # empty: one more in 1 / 0.5 s
    assert buckets.take("b") == 0.0  # keys are apart
    clock.now_s += 1.0  # half a token back
    assert buckets.wait_s("a") == pytest.approx(1.0)
    clock.now_s += 1.0
    assert buckets.take("a") == 0.0
    clock.now_s += 100.0  # never more than the burst
    assert [buckets.take("a") for _ in range(3)][2] == pytest.approx(2.0)


def test_buckets_keep_at_most_max_keys_forgetting_the_idlest() -> None:
    clock = Clock()
    buckets = Buckets(per_second=0.001, burst=1, now=clock, max_keys=2)
    buckets.take("a")
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: it starts full again
    assert buckets.wait_s("c") > 0 and buckets.wait_s("a") == 0.0


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, Operations, str]:
    store = Store(f"sqlite:///{tmp_path / 'rate.db'}")
    program = load_program("example")
    clock = SimClock(START)
    live = LiveControl(program, store, FakeSink(), clock)
    token = AccessService(store, clock).issue("staff", "admin")
    ops = Operations(program, store, clock, live)
    yield TestClient(create_app(ops)), ops, token
    store.close()


def test_an_address_that_keeps_failing_is_refused_before_its_token_is_checked(
    api: tuple[TestClient, Operations, str],
) -> None:
    client, _, token = api
    for _ in range(10):
        assert client.get("/api/me", headers={"Authorization": "Bearer guess"}).status_code == 401
    refused = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "6"
    assert refused.json() == {
        "errors": [
            {
                "field": "Authorization",
                "message": "too many failed authentications from this address",
            }
        ]
    }


def test_a_token_that_writes_too_often_is_refused(
    api: tuple[TestClient, Operations, str],
) -> None:
    client, ops, token = api
    ops.writes = Buckets(per_second=0.01, burst=3)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"readings": [{"at": "2026-07-15T19:00:00Z", "load_kw": 40.0}]}
    answers = [
        client.post("/api/sites/school-beverly/meter", json=body, headers=headers).status_code
        for _ in range(4)
    ]
    assert answers[:3] == [200, 200, 200], answers
    assert answers[3] == 429
    assert client.get("/api/me", headers=headers).status_code == 200  # reads are not limited


def test_failed_charger_handshakes_from_one_address_are_refused_before_hashing(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    store.add_station(StationRecord("cs1", hash_password(PASSWORD), "2.0.1", "negative-limit", 11))
    settings = CsmsSettings(port=0, failed_handshakes_burst=3)

    async def status(password: str) -> int:
        headers = {"Authorization": build_authorization_basic("cs1", password)}
        try:
            async with connect(
                f"{server.url}/cs1",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                additional_headers=headers,
            ):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    async def scenario() -> list[int]:
        async with server:
            return [await status(p) for p in ("wrong-1", "wrong-2", "wrong-3", PASSWORD)]

    server = CsmsServer(store, SimClock(START), settings)
    try:
        assert asyncio.run(asyncio.wait_for(scenario(), 60)) == [401, 401, 401, 429]
    finally:
        store.close()

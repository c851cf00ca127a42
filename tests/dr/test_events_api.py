"""The events routes over HTTP (FastAPI's test client, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lightson.api.events import events_router
from lightson.domain.time import SimClock
from lightson.services.events import EventService
from lightson.store import Store

BODY = {
    "event_id": "ng-2030-07-16",
    "program_id": "cs-ci-daily",
    "start": "2030-07-16T19:00:00Z",
    "end": "2030-07-16T22:00:00Z",
}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    clock = SimClock(datetime(2030, 7, 15, 20, tzinfo=UTC))
    app = FastAPI()
    app.include_router(events_router(lambda: EventService(store, clock)))
    with TestClient(app) as test_client:
        yield test_client
    store.close()


def test_a_utility_posts_lists_and_cancels_an_event(client: TestClient) -> None:
    created = client.post("/events", json=BODY)
    assert created.status_code == 201
    assert created.json()["state"] == "announced"
    again = client.post("/events", json=BODY)
    assert again.status_code == 200 and again.json() == created.json()  # one event
    assert [e["event_id"] for e in client.get("/events").json()] == ["ng-2030-07-16"]
    opted = client.post("/events/ng-2030-07-16/opt-out/school-beverly")
    assert opted.json()["opt_outs"] == ["school-beverly"]
    cancelled = client.delete("/events/ng-2030-07-16")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"


def test_refusals_name_the_field(client: TestClient) -> None:
    noon = {"start": "2030-07-16T16:00:00Z", "end": "2030-07-16T18:00:00Z"}  # 12:00 in Boston
    late = client.post("/events", json={**BODY, **noon})
    assert late.status_code == 422
    assert late.json()["errors"][0]["field"] == "start"
    naive = client.post("/events", json={**BODY, "end": "2030-07-16T22:00:00"})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "end"
    missing = client.delete("/events/nothing")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "event_id"

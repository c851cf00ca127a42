"""The API as one router per resource (issue #18, "The code follows the roles"): every route
of the single ``create_app`` it was split from is still there, with the same methods, tags
and operation names; ``create_app`` only composes; a new resource is a module with a
``router`` and one entry in ``ROUTERS``."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from lightson.api import app as app_module
from lightson.api.app import ROUTERS, Operations, create_app
from lightson.api.deps import ADMIN, Ops, Who, require
from lightson.api.headers import CONTENT_SECURITY_POLICY
from lightson.config import load_program
from lightson.domain.time import SimClock
from lightson.services.access import AccessService
from lightson.services.live import LiveControl
from lightson.store import Store
from live_support import IN_EVENT, FakeSink

# (method, path, tags, endpoint name) of every route of app.py before the split, by hand.
BEFORE_THE_SPLIT = {
    ("GET", "/api/health", "program", "health"),
    ("GET", "/api/me", "program", "me"),
    ("GET", "/api/program", "program", "program"),
    ("GET", "/api/sites", "sites", "sites"),
    ("GET", "/api/sites/{site_id}", "sites", "site"),
    ("GET", "/api/sites/{site_id}/plan", "sites", "plan"),
    ("GET", "/api/sites/{site_id}/plans", "sites", "plans"),
    ("GET", "/api/sites/{site_id}/sessions", "sites", "site_sessions"),
    ("GET", "/api/sites/{site_id}/backup", "resilience", "backup"),
    ("GET", "/api/sites/{site_id}/telemetry", "sites", "telemetry"),
    ("POST", "/api/sites/{site_id}/outage", "resilience", "outage"),
    ("GET", "/api/completeness", "sites", "completeness"),
    ("GET", "/api/quarantine", "sites", "quarantine"),
    ("PUT", "/api/sites/{site_id}/vehicles/{vehicle_id}/departure", "sites", "set_departure_route"),
    (
        "DELETE",
        "/api/sites/{site_id}/vehicles/{vehicle_id}/departure",
        "sites",
        "clear_departure_route",
    ),
    ("POST", "/api/sites/{site_id}/meter", "sites", "meter"),
    ("GET", "/api/stations", "sites", "stations"),
    ("GET", "/api/events", "demand response", "events"),
    ("POST", "/api/events", "demand response", "submit"),
    ("DELETE", "/api/events/{event_id}", "demand response", "cancel"),
    ("POST", "/api/events/{event_id}/opt-out/{site_id}", "demand response", "opt_out"),
    ("GET", "/api/events/{event_id}/performance", "demand response", "performance"),
    ("GET", "/api/settlements", "demand response", "settlements"),
    ("GET", "/api/report", "program", "season_report"),
    ("GET", "/metrics", "program", "metrics"),
}
# Routes added after the split, each by its router module (overview.py, certificates.py).
ADDED_SINCE = {
    ("GET", "/api/overview", "program", "overview"),
    ("GET", "/api/sites/{site_id}/plan/status", "sites", "plan_status"),
    ("GET", "/api/stations/{station_id}/certificates", "certificates", "list_certificates"),
    ("POST", "/api/stations/{station_id}/certificates", "certificates", "install_certificate"),
    (
        "DELETE",
        "/api/stations/{station_id}/certificates/{serial_number}",
        "certificates",
        "delete_certificate",
    ),
    ("POST", "/api/stations/{station_id}/certificates/renew", "certificates", "renew_certificate"),
}
EVERY_ROUTE = BEFORE_THE_SPLIT | ADDED_SINCE


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Operations]:
    program = load_program("example")
    store = Store(f"sqlite:///{tmp_path / 'routers.db'}")
    clock = SimClock(IN_EVENT)
    yield Operations(program, store, clock, LiveControl(program, store, FakeSink(), clock, list))
    store.close()


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


def test_every_route_of_the_single_app_is_still_there(ops: Operations) -> None:
    app = create_app(ops)
    routes = {
        (method, r.path, tag, r.name)
        for r in _api_routes(app)
        for method in r.methods
        for tag in r.tags
    }
    assert routes == EVERY_ROUTE
    assert all(len(r.tags) == 1 and len(r.methods) == 1 for r in _api_routes(app))


def test_the_openapi_document_names_the_same_operations_and_tags(ops: Operations) -> None:
    """Operation ids are FastAPI's own (name, path, method): kept by keeping the names."""
    spec = TestClient(create_app(ops)).get("/api/openapi.json").json()
    operations = {
        (method.upper(), path, operation["tags"][0], operation["operationId"])
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    }
    assert operations == {
        (method, path, tag, re.sub(r"\W", "_", name + path) + "_" + method.lower())
        for method, path, tag, name in EVERY_ROUTE
    }
    assert spec["paths"]["/api/events"]["post"]["responses"].keys() == {"201", "422"}


def test_every_route_comes_from_a_resources_router_and_is_listed_itself(
    ops: Operations,
) -> None:
    """FastAPI 0.165 would list an included router as one opaque entry: ``_include`` adds
    each of its routes to ``app.routes``, where the access matrix finds them."""
    app = create_app(ops)
    assert all(isinstance(m.router, APIRouter) for m in ROUTERS)
    from_routers = {
        (r.path, frozenset(r.methods))
        for m in ROUTERS
        for r in m.router.routes
        if isinstance(r, APIRoute)
    }
    listed = {(r.path, frozenset(r.methods)) for r in _api_routes(app)}
    assert listed == from_routers and len(listed) == len(EVERY_ROUTE)
    names = {m.__name__ for m in ROUTERS}
    assert all(r.endpoint.__module__ in names for r in _api_routes(app))
    opaque = [r for r in app.routes if not hasattr(r, "path")]
    assert opaque == []


def test_create_app_only_composes() -> None:
    """No route is declared inside ``create_app`` (no decorator, no inner function), and it
    stays short."""
    source = textwrap.dedent(inspect.getsource(create_app))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    inner = [
        node
        for node in ast.walk(tree)
        if node is not tree
        and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    ]
    assert inner == []
    assert len(source.splitlines()) <= 25
    module = ast.parse(inspect.getsource(app_module))
    assert not [
        f.name for f in ast.walk(module) if isinstance(f, ast.FunctionDef) and f.decorator_list
    ]


def test_a_new_resource_is_a_module_with_a_router_and_one_entry(
    ops: Operations, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What another engineer's module gets from the composition: its routes listed, the
    caller and the operations as dependencies, the error shape and the security headers."""
    router = APIRouter(tags=["fleet"])

    @router.get("/api/fleet", status_code=203)
    def fleet(who: Who, ops: Ops) -> dict[str, Any]:
        require(ops, who, ADMIN)
        return {"who": who.name, "sites": len(ops.program.sites)}

    module = ModuleType("lightson.api.fleet")
    module.router = router  # type: ignore[attr-defined]
    monkeypatch.setattr(app_module, "ROUTERS", (*ROUTERS, module))
    app = create_app(ops)
    assert ("GET", "/api/fleet", "fleet", "fleet") in {
        (method, r.path, tag, r.name)
        for r in _api_routes(app)
        for method in r.methods
        for tag in r.tags
    }
    client = TestClient(app)
    access = AccessService(ops.store, ops.clock)
    staff, owner = access.issue("staff", "admin"), access.issue("o", "owner", ["home-lowell"])
    answer = client.get("/api/fleet", headers={"Authorization": f"Bearer {staff}"})
    assert answer.status_code == 203 and answer.json() == {"who": "staff", "sites": 3}
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    refused = client.get("/api/fleet", headers={"Authorization": f"Bearer {owner}"})
    assert refused.status_code == 403
    assert refused.json() == {
        "errors": [{"field": "", "message": "the owner role may not do this"}]
    }
    anonymous = client.get("/api/fleet")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/openapi.json").json()["paths"]["/api/fleet"]["get"]["tags"] == ["fleet"]


def test_a_resource_router_with_anything_but_api_routes_is_refused() -> None:
    router = APIRouter()
    router.add_route("/api/raw", lambda request: None)
    app = FastAPI()
    with pytest.raises(TypeError, match="only API routes"):
        app_module._include(app, router)

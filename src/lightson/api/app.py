"""The operations HTTP API and the dashboard that uses it (``docs/operations.md``).

Every route under ``/api`` takes a bearer token (``lightson token add``); what a token may
see and do depends on its role (``lightson.services.access``). Errors are mapped once
(``lightson.api.errors``): a refused body or rule is 422 with
``{"errors": [{"field", "message"}]}``, an unknown site or event 404, a missing or bad token
401, a role that may not 403. Every command (events, outages, opt-outs) is written to the
audit log, done or refused, before the answer. The OpenAPI document is at
``/api/openapi.json``; Prometheus metrics at ``/metrics``.

``create_app`` only composes: one ``APIRouter`` per resource, each in a module of its own
that exposes ``router`` (``ROUTERS``), over the dependencies of ``lightson.api.deps``.
Adding a resource is a module with a ``router`` and one entry in ``ROUTERS``.
"""

from __future__ import annotations

import threading
from importlib import resources
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from lightson.api import (
    certificates,
    event_routes,
    overview,
    program,
    reports,
    resilience,
    sites,
)
from lightson.api.deps import MIN_SITES_IN_AGGREGATES, Operations
from lightson.api.errors import add_error_handlers
from lightson.api.headers import SecurityHeaders
from lightson.api.limits import BodyLimit

__all__ = ["MIN_SITES_IN_AGGREGATES", "ROUTERS", "Operations", "create_app"]

# The resources, in the order their routes are matched (the dashboard comes after them all).
ROUTERS: tuple[ModuleType, ...] = (
    program,
    overview,
    sites,
    resilience,
    event_routes,
    reports,
    certificates,
)


def create_app(ops: Operations) -> FastAPI:
    app = FastAPI(
        title="Lights On",
        summary="Operations API of a V2X program",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs" if ops.api_docs else None,
        redoc_url=None,
    )
    app.state.operations = ops
    app.state.report_running = threading.Lock()  # one season report at a time
    app.add_middleware(BodyLimit, max_bytes=ops.max_body_bytes)  # before any other work
    app.add_middleware(SecurityHeaders)  # outermost: the 413 gets the headers too
    add_error_handlers(app)
    for module in ROUTERS:
        _include(app, module.router)
    static = resources.files("lightson.api") / "static"
    app.mount("/", StaticFiles(directory=str(static), html=True), name="dashboard")
    return app


def _include(app: FastAPI, router: APIRouter) -> None:
    """``app.include_router(router)``, with the router's routes added to ``app.routes``
    themselves. FastAPI 0.165 includes a router lazily, as one opaque entry in
    ``app.routes`` (its routes are resolved at request time): what enumerates the routes
    (the access matrix's test, route listings) would no longer see them. This adds each
    route as ``@app.get`` and the like did before the split, with the settings the router
    gave it (its tags, status code, response class, dependencies)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only API routes are expected in a resource's router")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=type(route),
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
        )

"""Errors mapped to HTTP in one place, in one documented shape.

Every error answer is ``{"errors": [{"field": ..., "message": ...}]}``:

- ``HttpError(status, message, field)`` raised by a route: its status; a 401 says
  ``WWW-Authenticate: Bearer``, a 429 ``Retry-After`` (whole seconds, rounded up);
- ``ConfigError`` (a body or an event the program's rules refuse): 422, one entry per
  ``(path, rule)``;
- a body or query the framework refuses (``RequestValidationError``): 422, one entry per
  field, the ``body`` prefix left out; a refused command (not a GET) by a known caller is
  written to the audit log first;
- the framework's own answers (no such path 404, a method a route does not take 405): their
  status, with ``field`` ``path`` or ``method``.
"""

from __future__ import annotations

import math
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as FrameworkHttpError

from lightson.domain.errors import ConfigError
from lightson.services.access import AccessService


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, field: str = "", retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s  # 429: when to try again (Retry-After)


class _Audited(Protocol):
    """What the handlers need of the app's operations (``lightson.api.deps.Operations``,
    which stands above this module)."""

    def access(self) -> AccessService: ...


def add_error_handlers(app: FastAPI) -> None:
    """Map every error the routes and the framework raise to the documented shape."""
    app.add_exception_handler(HttpError, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(FrameworkHttpError, _framework_error)  # type: ignore[arg-type]
    app.add_exception_handler(ConfigError, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_request)  # type: ignore[arg-type]


def _http_error(_: Request, error: HttpError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    if error.retry_after_s is not None:
        headers = {"Retry-After": str(math.ceil(error.retry_after_s))}
    return JSONResponse(
        status_code=error.status,
        content={"errors": [{"field": error.field, "message": error.message}]},
        headers=headers,
    )


def _framework_error(request: Request, error: FrameworkHttpError) -> JSONResponse:
    """The framework's own answers (no such path, a method a route does not take) in the
    documented shape."""
    field = "method" if error.status_code == 405 else "path"
    return JSONResponse(
        status_code=error.status_code,
        content={"errors": [{"field": field, "message": str(error.detail)}]},
        headers=error.headers,
    )


def _refused(_: Request, error: ConfigError) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={"errors": [{"field": path, "message": rule} for path, rule in error.issues]},
    )


def _bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
    issues = [
        {
            "field": ".".join(str(part) for part in issue["loc"] if part != "body"),
            "message": issue["msg"],
        }
        for issue in error.errors()
    ]
    if request.method != "GET":  # a refused command is audited like the others
        ops: _Audited = request.app.state.operations
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        who = ops.access().principal(credentials) if scheme.lower() == "bearer" else None
        if who is not None:
            ops.access().audit(who, request.method, request.url.path, "refused", {"status": 422})
    return JSONResponse(status_code=422, content={"errors": issues})

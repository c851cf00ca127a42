"""The ``lightson`` command: wiring only (``app`` holds the group, the submodules the
commands)."""

from lightson.cli import (
    api,
    certificates,
    demo,
    events,
    failures,
    forecast,
    gateway,
    ocpp,
    plan,
    report,
    serve,
    settle,
    simulate,
    site,
    worker,
)
from lightson.cli.app import main

__all__ = [
    "api",
    "certificates",
    "demo",
    "events",
    "failures",
    "forecast",
    "gateway",
    "main",
    "ocpp",
    "plan",
    "report",
    "serve",
    "settle",
    "simulate",
    "site",
    "worker",
]

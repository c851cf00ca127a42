"""The ``lightson`` command: wiring only (``app`` holds the group, the submodules the
commands)."""

from lightson.cli import events, ocpp, plan, serve, settle, simulate
from lightson.cli.app import main

__all__ = ["events", "main", "ocpp", "plan", "serve", "settle", "simulate"]

"""The ``lightson`` command: wiring only (``app`` holds the group, the submodules the
commands)."""

from lightson.cli import plan, simulate
from lightson.cli.app import main

__all__ = ["main", "plan", "simulate"]

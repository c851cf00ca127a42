"""Process trees on Linux, for the tests that kill a parent with SIGKILL and look for the
orphans it left (read from ``/proc``, no third-party library)."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import time
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now: its children, theirs, and so on."""
    found: list[int] = []
    below = [pid]
    while below:
        parent = below.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found += children
                below += children
    return found


def listening_ports(pids: list[int]) -> set[int]:
    """The ports named on the command lines of ``pids``: ``-p N`` (postgres, nats-server)
    and ``--port N`` (a gateway)."""
    ports = set()
    for pid in pids:
        words = command_line(pid)
        for flag, value in itertools.pairwise(words):
            if flag in ("-p", "--port") and re.fullmatch(r"\d+", value):
                ports.add(int(value))
    return ports


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def survivors(pids: list[int], timeout_s: float) -> list[str]:
    """The command lines of ``pids`` still alive after up to ``timeout_s`` (none: at once);
    the survivors are then killed, so that a failing test leaves nothing behind."""
    deadline = time.monotonic() + timeout_s
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    named = [" ".join(command_line(p)) or str(p) for p in left]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return named


__all__ = ["alive", "command_line", "descendants", "listening_ports", "port_free", "survivors"]

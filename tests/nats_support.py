"""A throwaway NATS server with JetStream for the broker tests, started from the machine's own
binary (Debian's ``nats-server``; ``make test`` installs it when missing).

The server listens on a free loopback port, keeps its JetStream files in a temporary folder,
and is killed at the end. ``NatsServer.kill`` and ``start`` let a test take the broker away
and bring it back on the same port and store, as a restart in the field would.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from net_support import free_port


def _binary() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found is None:
        raise RuntimeError("nats-server is missing: install Debian's nats-server")
    return found


class NatsServer:
    """One nats-server process with JetStream on 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        self.process = subprocess.Popen(
            [_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "server.log").open("ab"),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.folder / 'server.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL the server (the store on disk stays for the next ``start``)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def nats_server(folder: Path) -> Iterator[NatsServer]:
    """A started NATS server with JetStream in ``folder``; killed on exit."""
    server = NatsServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()

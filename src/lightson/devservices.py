"""Throwaway PostgreSQL and NATS servers on loopback, for ``lightson demo --distributed``,
the tests and the benchmarks.

Both come from the machine's own binaries (Debian's ``postgresql`` and ``nats-server``;
``make test`` installs them when missing): each runs in a folder the caller gives (a
temporary one), listens on 127.0.0.1 on a free port, gets a bounded time to start, and is
stopped on the way out. A missing binary is one :class:`DevServiceError` line naming it and
the Debian package. Not for production: PostgreSQL trusts every local connection.

Why not pytest-postgresql's process fixture: it runs ``initdb`` and ``pg_ctl`` as the current
user, and CI runs as root, which PostgreSQL refuses. Here the cluster runs as the
``postgres`` system user when we are root (as ourselves otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from lightson.domain.errors import LightsOnError

START_TIMEOUT_S = 60.0


class DevServiceError(LightsOnError):
    """A throwaway server could not start: its binary is missing, or it did not come up."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server started in another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: ``pg_config``'s, else Debian's newest."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    raise DevServiceError(
        "initdb (PostgreSQL's server) is missing: install Debian's postgresql package"
    )


@contextlib.contextmanager
def postgres_cluster(
    folder: Path, durable: bool = False, timeout_s: float = START_TIMEOUT_S
) -> Iterator[str]:
    """Start a cluster in ``folder`` (which must exist); yield a SQLAlchemy URL of its
    ``postgres`` database (user ``lightson``, trust authentication). ``durable``: fsync on,
    as a production server (the benchmarks); otherwise off, for speed. Stopped on exit."""
    bindir = postgres_bindir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()

    def run(*args: str) -> None:
        try:
            subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=timeout_s)
        except subprocess.CalledProcessError as error:
            why = (error.stderr or b"").decode(errors="replace").strip().splitlines()
            raise DevServiceError(
                f"{Path(args[0]).name} failed: {why[-1] if why else error} (log: {folder / 'log'})"
            ) from None
        except subprocess.TimeoutExpired:
            raise DevServiceError(f"{Path(args[0]).name} took over {timeout_s:g} s") from None

    run(
        str(bindir / "initdb"),
        *("-D", str(data), "-U", "lightson", "-A", "trust"),
        *(() if durable else ("--no-sync",)),
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    options += " -c fsync=on" if durable else " -F -c fsync=off"
    pg_ctl = str(bindir / "pg_ctl")
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://lightson@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(DevServiceError):  # already stopped (a signal reached it)
            run(pg_ctl, "-D", str(data), "-m", "fast" if durable else "immediate", "-w", "stop")


def fresh_database(cluster_url: str) -> str:
    """A new empty database in the cluster of ``cluster_url``; its URL."""
    import psycopg  # only where a cluster runs: the package works without PostgreSQL

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = cluster_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"


# --- NATS ---------------------------------------------------------------------------------


def nats_binary() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found is None:
        raise DevServiceError("nats-server is missing: install Debian's nats-server package")
    return found


class NatsServer:
    """One nats-server process with JetStream on 127.0.0.1, its store in ``folder``.
    ``kill`` and ``start`` take the broker away and bring it back on the same port and
    store, as a restart in the field would."""

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
        command = [nats_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "-sd", str(self.folder)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # a Ctrl-C in the terminal is for our caller
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DevServiceError(f"nats-server exited: see {self.folder / 'server.log'}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.kill()
        raise DevServiceError(f"nats-server did not listen within {timeout_s:g} s")

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


__all__ = [
    "DevServiceError",
    "NatsServer",
    "free_port",
    "fresh_database",
    "nats_binary",
    "nats_server",
    "postgres_bindir",
    "postgres_cluster",
]

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

No orphans: every server started here dies with the process that started it, even when that
one is killed with SIGKILL and runs no clean-up (on Linux). :func:`die_with_parent` arms the
kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG)``) in the child between ``fork`` and
``exec``; ``lightson demo --distributed`` gives it to its gateways and workers too. That is
the simplest robust way: the kernel delivers the signal, with no watchdog process that could
itself die or be killed, and nothing to poll. It needs the server to be our direct child, so
PostgreSQL's ``postgres`` (the postmaster) runs here in the foreground rather than through
``pg_ctl start``, which daemonizes it (re-parenting it to init, out of reach of the signal);
readiness is what ``pg_ctl -w`` reads, the ``ready`` status in ``postmaster.pid``. The
postmaster's signal is SIGQUIT, PostgreSQL's immediate shutdown, which stops its own children
(the backends, the checkpointer) before it exits; nats-server's is SIGKILL (its store is a
throwaway). Two limits: the kernel sends the signal when the *thread* that started the child
ends, so start servers from a thread that lives as long as they do (the main thread); and the
caller's folder stays after a SIGKILL, holding nothing but disk (the distributed demo's next
run removes its own).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from lightson.domain.errors import LightsOnError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0  # a server still running this long after its stop signal is killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DevServiceError(LightsOnError):
    """A throwaway server could not start: its binary is missing, or it did not come up."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server started in another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def die_with_parent(number: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that has the kernel send the child
    signal ``number`` when the calling thread (of the parent) ends, however it ends, SIGKILL
    included; ``None`` (nothing to arm) off Linux. Should the parent already be gone when the
    child arms it, the child exits at once. The function only calls ``prctl`` and
    ``getppid``: the C library is loaded here, before the fork, so that nothing is imported
    or loaded in the child (``preexec_fn`` runs between ``fork`` and ``exec``)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, int(number), 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)  # cannot arm, or the parent died already: start nothing

    return arm


def stop_process(process: subprocess.Popen[bytes], number: int, timeout_s: float) -> None:
    """Send ``number`` to ``process`` if it runs, and reap it; SIGKILL it after
    ``timeout_s``."""
    if process.poll() is None:
        process.send_signal(number)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


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
    as a production server (the benchmarks); otherwise off, for speed. Stopped on exit
    (fast shutdown when durable, immediate otherwise), and with the calling thread's end."""
    bindir = postgres_bindir()
    user: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        shutil.chown(folder, user, user)
    groups: list[str] | None = [] if user else None
    data, port, log = folder / "data", free_port(), folder / "log"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "lightson", "-A", "trust"]
    try:
        subprocess.run(
            [*initdb, *(() if durable else ("--no-sync",))],
            check=True,
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=die_with_parent(signal.SIGKILL),
            user=user,
            group=user,
            extra_groups=groups,
            cwd=folder,
        )
    except subprocess.CalledProcessError as error:
        why = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        raise DevServiceError(f"initdb failed: {why[-1] if why else error}") from None
    except subprocess.TimeoutExpired:
        raise DevServiceError(f"initdb took over {timeout_s:g} s") from None
    command = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
    command += ["-c", "listen_addresses=127.0.0.1"]
    command += ["-c", "fsync=on"] if durable else ["-F", "-c", "fsync=off"]
    with log.open("ab") as sink:
        postmaster = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal is for our caller
            preexec_fn=die_with_parent(signal.SIGQUIT),  # immediate shutdown
            user=user,
            group=user,
            extra_groups=groups,
            cwd=folder,
        )
    try:
        _wait_ready(postmaster, data / "postmaster.pid", log, timeout_s)
        yield f"postgresql+psycopg://lightson@127.0.0.1:{port}/postgres"
    finally:
        stop_process(postmaster, signal.SIGINT if durable else signal.SIGQUIT, STOP_TIMEOUT_S)


def _wait_ready(
    postmaster: subprocess.Popen[bytes], pid_file: Path, log: Path, timeout_s: float
) -> None:
    """Until the postmaster accepts connections: the status line (the 8th) of its
    ``postmaster.pid`` reads ``ready``, as ``pg_ctl -w`` waits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if postmaster.poll() is not None:
            raise DevServiceError(f"postgres exited ({postmaster.returncode}): see {log}")
        with contextlib.suppress(OSError):
            lines = pid_file.read_text().splitlines()
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
        time.sleep(0.05)
    raise DevServiceError(f"postgres did not start within {timeout_s:g} s: see {log}")


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
                preexec_fn=die_with_parent(signal.SIGKILL),
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
    "die_with_parent",
    "free_port",
    "fresh_database",
    "nats_binary",
    "nats_server",
    "postgres_bindir",
    "postgres_cluster",
    "stop_process",
]

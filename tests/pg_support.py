"""A throwaway PostgreSQL cluster for the storage tests, started from the machine's own
binaries (Debian's ``postgresql``; ``make test`` installs it when missing).

Why not pytest-postgresql's process fixture: it runs ``initdb`` and ``pg_ctl`` as the current
user, and CI runs as root, which PostgreSQL refuses. This starts the cluster as the
``postgres`` system user when we are root (as ourselves otherwise), on a free loopback port
with trust authentication, in a temporary folder, and stops it at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from net_support import free_port


def _bindir() -> Path:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    raise RuntimeError("PostgreSQL's server binaries are missing: install Debian's postgresql")


@contextlib.contextmanager
def throwaway_cluster(folder: Path) -> Iterator[str]:
    """Start a cluster in ``folder``; yield a SQLAlchemy URL of its ``postgres`` database."""
    bindir = _bindir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "lightson", "-A", "trust", "--no-sync")
    options = f"-F -p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(folder / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg://lightson@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")


def fresh_database(cluster_url: str) -> str:
    """A new empty database in the cluster; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = cluster_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster_url.rsplit("/", 1)[0] + f"/{name}"

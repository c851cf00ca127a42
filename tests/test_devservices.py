"""``lightson.devservices``: a missing server binary is one line naming it and the Debian
package; a started NATS server listens on loopback and is gone after its block; a cluster
answers SQL (the storage and broker tests use both through pg_support and nats_support); and
both die with the process that started them when it is killed with SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lightson import devservices
from lightson.devservices import DevServiceError
from process_support import alive, descendants, listening_ports, port_free, survivors


def test_a_missing_nats_server_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devservices.shutil, "which", lambda _name: None)
    monkeypatch.setattr(devservices.Path, "exists", lambda _self: False)
    with pytest.raises(DevServiceError) as error:
        devservices.nats_binary()
    assert str(error.value) == "nats-server is missing: install Debian's nats-server package"


def test_a_missing_postgresql_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pg_config(*_args: object, **_kwargs: object) -> None:
        raise FileNotFoundError("pg_config")

    monkeypatch.setattr(devservices.subprocess, "run", no_pg_config)
    monkeypatch.setattr(devservices.Path, "glob", lambda _self, _pattern: iter(()))
    with pytest.raises(DevServiceError) as error:
        devservices.postgres_bindir()
    message = str(error.value)
    assert message == "initdb (PostgreSQL's server) is missing: install Debian's postgresql package"
    assert "\n" not in message


def test_nats_listens_on_loopback_and_is_gone_after(tmp_path: Path) -> None:
    with devservices.nats_server(tmp_path / "nats") as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            assert connection.recv(4).startswith(b"INFO")  # the NATS greeting
        process = server.process
        assert process is not None
    assert process.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_the_cluster_answers_sql(postgres_cluster: str) -> None:
    database = devservices.fresh_database(postgres_cluster)
    plain = database.replace("postgresql+psycopg://", "postgresql://")
    import psycopg

    with psycopg.connect(plain) as connection:
        assert connection.execute("SELECT 6 * 7").fetchone() == (42,)


# Starts both servers, prints their ports, and waits to be killed.
STARTER = """
import sys, time
from pathlib import Path
from lightson.devservices import nats_server, postgres_cluster
folder = Path(sys.argv[1])
with postgres_cluster(folder / "pg") as url, nats_server(folder / "nats") as broker:
    print(url.rsplit(":", 1)[1].split("/")[0], broker.port, flush=True)
    time.sleep(600)
"""


def test_the_servers_die_with_their_starter_killed_with_sigkill() -> None:
    folder = Path(tempfile.mkdtemp(prefix="lightson-orphans-"))  # open to postgres, as root
    folder.chmod(0o711)
    (folder / "pg").mkdir()
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(folder)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    children: list[int] = []
    try:
        assert starter.stdout is not None
        ports = {int(p) for p in starter.stdout.readline().split()}  # the servers are up
        assert len(ports) == 2, ports
        children = descendants(starter.pid)
        # The postmaster with its own children (checkpointer, writers...), and nats-server.
        assert len(children) >= 3 and all(alive(p) for p in children)
        assert listening_ports(children) == ports
        assert not any(port_free(p) for p in ports)
        os.kill(starter.pid, signal.SIGKILL)  # no clean-up runs
        starter.wait(10)
        assert survivors(children, timeout_s=30) == []
        assert all(port_free(p) for p in ports)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        survivors(children, timeout_s=0)
        shutil.rmtree(folder, ignore_errors=True)

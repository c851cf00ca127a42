"""``lightson.devservices``: a missing server binary is one line naming it and the Debian
package; a started NATS server listens on loopback and is gone after its block; a cluster
answers SQL (the storage and broker tests use both through pg_support and nats_support)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lightson import devservices
from lightson.devservices import DevServiceError


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

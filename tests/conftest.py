from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def example_program():  # type: ignore[no-untyped-def]
    from lightson.config import load_program

    return load_program("example")


@pytest.fixture(scope="session")
def postgres_cluster():  # type: ignore[no-untyped-def]
    """One throwaway PostgreSQL cluster for the whole session (tests/pg_support.py), in a
    folder of its own (pytest's are closed to the postgres user)."""
    import shutil
    import tempfile

    from pg_support import throwaway_cluster

    folder = Path(tempfile.mkdtemp(prefix="lightson-pg-"))
    try:
        with throwaway_cluster(folder) as url:
            yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def nats_broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A NATS server with JetStream on loopback for one test (tests/nats_support.py)."""
    from nats_support import nats_server

    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    from pg_support import fresh_database

    return fresh_database(request.getfixturevalue("postgres_cluster"))

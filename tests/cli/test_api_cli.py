"""``lightson api``: its help, and one-line errors for a bad --bus, --db or TLS pair, and a
broker that does not answer, before anything listens."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lightson.cli import main
from net_support import free_port
from pg_support import fresh_database

BUS = "nats://127.0.0.1:4222"
DB = "postgresql+psycopg://lightson@127.0.0.1/lightson"


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(main, ["api", "--help"])
    assert result.exit_code == 0
    for option in ("PROGRAM", "--bus", "--db", "--host", "--port", "--every", "--tls-cert"):
        assert option in result.output
    for option in ("--tls-key", "--max-body-kb", "--utility-min-sites", "--api-docs"):
        assert option in result.output


def test_a_bus_that_is_not_a_nats_url_is_one_line() -> None:
    result = CliRunner().invoke(main, ["api", "example", "--bus", "http://x:4222", "--db", DB])
    assert result.exit_code == 2
    assert result.output == (
        "error: --bus: 'http://x:4222' is not a broker URL like nats://127.0.0.1:4222\n"
    )


def test_a_database_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/api.db"
    result = CliRunner().invoke(main, ["api", "example", "--bus", BUS, "--db", db])
    assert result.exit_code == 2
    assert result.output == (
        f"error: --db: API servers share the workers' PostgreSQL, got '{db}'\n"
    )


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not read")
    arguments = ["api", "example", "--bus", BUS, "--db", DB, "--tls-cert", str(cert)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2
    assert result.output == "error: --tls-key: --tls-cert and --tls-key go together\n"


def test_an_unreachable_bus_is_one_line(postgres_cluster: str) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    db = fresh_database(postgres_cluster)
    result = CliRunner().invoke(main, ["api", "example", "--bus", url, "--db", db])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith(
        f"error: --bus: cannot reach the broker at {url}"
    )

"""``lightson gateway``'s command line: its help, and one-line errors for a bad --bus/--db."""

from __future__ import annotations

from click.testing import CliRunner

from lightson.cli import main
from net_support import free_port


def test_help_names_the_broker_and_the_database() -> None:
    result = CliRunner().invoke(main, ["gateway", "--help"])
    assert result.exit_code == 0
    assert "PROGRAM" in result.output
    assert "--bus" in result.output and "--db" in result.output and "--tls-cert" in result.output


def test_a_bad_bus_url_is_one_line_on_stderr() -> None:
    result = CliRunner().invoke(
        main, ["gateway", "example", "--bus", "http://broker", "--db", "postgresql://h/db"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --bus: 'http://broker' is not a broker URL like nats://127.0.0.1:4222"
    ]


def test_a_database_that_is_not_postgresql_is_one_line_on_stderr() -> None:
    result = CliRunner().invoke(
        main, ["gateway", "example", "--bus", "nats://127.0.0.1:4222", "--db", "sqlite:///x.db"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --db: gateways share one PostgreSQL database, got 'sqlite:///x.db'"
    ]


def test_an_unreachable_database_is_one_line_on_stderr() -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"
    result = CliRunner().invoke(
        main, ["gateway", "example", "--bus", "nats://127.0.0.1:4222", "--db", url]
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open the database"), lines

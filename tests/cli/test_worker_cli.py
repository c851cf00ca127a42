"""``lightson worker``: its help, and a one-line error for a bad or unreachable --bus."""

from __future__ import annotations

from click.testing import CliRunner

from lightson.cli import main
from net_support import free_port


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(main, ["worker", "--help"])
    assert result.exit_code == 0
    for option in ("PROGRAM", "--bus", "--db", "--worker-id", "--lease-s", "--every", "--engine"):
        assert option in result.output


def test_a_bus_that_is_not_a_nats_url_is_one_line(tmp_path: object) -> None:
    result = CliRunner().invoke(main, ["worker", "example", "--bus", "http://127.0.0.1:4222"])
    assert result.exit_code == 2
    assert result.output == (
        "error: --bus: must be a NATS URL like nats://127.0.0.1:4222, not 'http://127.0.0.1:4222'\n"
    )


def test_an_unreachable_bus_is_one_line(tmp_path: object) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    db = f"sqlite:///{tmp_path}/w.db"
    result = CliRunner().invoke(main, ["worker", "example", "--bus", url, "--db", db])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --bus: cannot reach {url}: ")


def test_a_bad_worker_id_is_refused() -> None:
    result = CliRunner().invoke(
        main, ["worker", "example", "--bus", "nats://127.0.0.1:4222", "--worker-id", "a.b"]
    )
    assert result.exit_code == 2
    assert result.output == "error: --worker-id: letters, digits, '-', '_' and '=' only\n"


def test_an_unknown_engine_names_the_choices() -> None:
    result = CliRunner().invoke(
        main, ["worker", "example", "--bus", "nats://127.0.0.1:4222", "--engine", "dask"]
    )
    assert result.exit_code == 2
    assert "'dask' is not one of 'inline', 'ray'" in result.output

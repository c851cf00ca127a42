"""Ordinary errors end a command with one line on stderr and exit status 2, never a
traceback (#17): a ``--db`` that cannot be opened or is no database URL, a port already in
use (by a real listening socket), a read-only database (SQLite opened read-only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from net_support import free_port

SOURCE = str(Path(__file__).parents[2] / "src")


def lightson(*arguments: str, cwd: Path) -> tuple[int, list[str]]:
    """Run the real command in its own process; its exit status and its stderr lines, less
    the servers' log lines and the note about a left-out program."""
    path = os.pathsep.join(p for p in (SOURCE, os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, "-m", "lightson.cli", *arguments],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path, "LIGHTSON_STATION_PASSWORD": "x" * 20},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    lines = [
        line
        for line in done.stderr.splitlines()
        if " INFO " not in line and not line.startswith("note: ")
    ]
    return done.returncode, lines


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


UNOPENABLE = "sqlite:////nonexistent-folder/lightson.db"


@pytest.mark.parametrize(
    "arguments",
    [
        ("token", "add", "staff", "--role", "admin", "--db", UNOPENABLE),
        ("events", "list", "--db", UNOPENABLE),
        ("station", "add", "emu-", "--db", UNOPENABLE),
        ("settle", "example", "--db", UNOPENABLE, "--out", "out"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_db_that_cannot_be_opened_is_one_line(arguments: tuple[str, ...], tmp_path: Path) -> None:
    code, lines = lightson(*arguments, cwd=tmp_path)
    assert code == 2
    assert lines == [
        "error: cannot open the database sqlite:////nonexistent-folder/lightson.db: "
        "unable to open database file"
    ]


def test_a_db_that_is_no_database_url_is_one_line(tmp_path: Path) -> None:
    code, lines = lightson("events", "list", "--db", "lightson.db", cwd=tmp_path)
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith("error: --db: not a database URL (")
    assert lines[0].endswith("); e.g. sqlite:///lightson.db")


def test_a_read_only_database_is_one_line_and_stays_as_it_was(tmp_path: Path) -> None:
    code, _ = lightson("token", "add", "first", "--role", "admin", cwd=tmp_path)
    assert code == 0
    before = (tmp_path / "lightson.db").read_bytes()
    read_only = "sqlite:///file:lightson.db?mode=ro&uri=true"
    for arguments in (
        ("token", "add", "second", "--role", "admin", "--db", read_only),
        ("station", "add", "emu-", "--db", read_only),
        (
            "events",
            "add",
            "--program-id",
            "cs-ci-daily",
            "--start",
            "2027-07-15T15:00",
            "--end",
            "2027-07-15T18:00",
            "--db",
            read_only,
        ),
    ):
        code, lines = lightson(*arguments, cwd=tmp_path)
        assert code == 2, arguments
        assert lines == [
            "error: the database refused: attempt to write a readonly database (--db)"
        ], arguments
    assert (tmp_path / "lightson.db").read_bytes() == before


def test_csms_on_a_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    code, lines = lightson("csms", "--port", str(taken_port), cwd=tmp_path)
    assert code == 2
    assert lines == [
        f"error: error while attempting to bind on address ('127.0.0.1', {taken_port}): "
        "address already in use: another server is running there? choose another port"
    ]


def test_serve_on_an_http_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    code, lines = lightson(
        "serve", "--port", str(taken_port), "--csms-port", str(free_port()), cwd=tmp_path
    )
    assert code == 2
    assert lines == [
        f"error: cannot listen on 127.0.0.1:{taken_port} (--port): Address already in use: "
        "another server is running there? choose another port"
    ]


def test_serve_on_a_csms_port_in_use_is_one_line(taken_port: int, tmp_path: Path) -> None:
    code, lines = lightson(
        "serve", "--port", str(free_port()), "--csms-port", str(taken_port), cwd=tmp_path
    )
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith("error: error while attempting to bind on address")
    assert f"{taken_port}): address already in use" in lines[0]

"""``lightson token add`` issues tokens only for the program's own sites and utilities: a
misspelt site or utility would make a token that silently sees nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lightson.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_token_names_only_sites_and_utilities_of_the_program(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'tokens.db'}"
    code, _, err = run(
        "token", "add", "x", "--role", "owner", "--site", "home-nowhere", "--db", database
    )
    assert code == 2 and "--site" in err and "not sites of" in err and "home-nowhere" in err
    code, _, err = run(
        "token", "add", "x", "--role", "utility", "--utility", "unitil", "--db", database
    )  # Unitil serves ma-2026, not the example
    assert code == 2 and "--utility" in err and "'unitil' serves no site" in err
    code, out, _ = run(
        "token",
        "add",
        "u",
        "--role",
        "utility",
        "--utility",
        "unitil",
        "--program",
        "ma-2026",
        "--db",
        database,
    )
    assert code == 0 and len(out.strip()) >= 40
    code, out, _ = run(
        "token", "add", "o", "--role", "owner", "--site", "home-lowell", "--db", database
    )
    assert code == 0

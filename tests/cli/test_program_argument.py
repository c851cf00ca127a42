"""The program is given the same way on every command (#17): a positional PROGRAM, like
``plan`` and ``validate``; the old ``--program`` still works but warns; left out, the bundled
program used is said on stderr, never silently."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lightson.cli import main

COMMANDS = [
    ["plan"],
    ["validate"],
    ["simulate"],
    ["resilience"],
    ["settle"],
    ["report"],
    ["serve"],
    ["events", "add"],
    ["token", "add"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_the_program_as_a_positional_argument(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    usage = result.output.splitlines()[0]
    assert "PROGRAM" in usage, usage
    assert "--program " not in result.output  # the deprecated alias is not advertised


def _token(tmp_path: Path, *words: str) -> tuple[int, str, str]:
    database = f"sqlite:///{tmp_path / 'lightson.db'}"
    result = CliRunner().invoke(
        main, ["token", "add", *words, "--role", "owner", "--site", "home-lowell", "--db", database]
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_positional_program_is_used_without_a_word_on_stderr(tmp_path: Path) -> None:
    code, out, err = _token(tmp_path, "owner", "example")
    assert (code, err) == (0, "")
    assert len(out.strip()) >= 20  # the token


def test_the_deprecated_option_still_works_and_says_how_to_write_it_now(tmp_path: Path) -> None:
    code, out, err = _token(tmp_path, "owner", "--program", "example")
    assert code == 0
    assert out.strip()
    assert (
        err == "warning: --program is deprecated: give the program first, e.g. "
        "'lightson token add example ...'\n"
    )


def test_a_left_out_program_is_named_on_stderr(tmp_path: Path) -> None:
    code, _, err = _token(tmp_path, "owner")
    assert code == 0
    assert err == "note: no PROGRAM given: using the bundled 'example'\n"


def test_the_program_given_twice_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = _token(tmp_path, "owner", "example", "--program", "ma-2026")
    assert code == 2
    assert out == ""
    assert "give PROGRAM once, not also as --program" in err
    assert "Traceback" not in err


def test_resilience_names_the_program_it_studies_when_none_is_given(tmp_path: Path) -> None:
    # An unknown site fails right after the program is loaded: the note came first.
    result = CliRunner().invoke(main, ["resilience", "--site", "nowhere", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("note: no PROGRAM given: using the bundled 'example'\n")

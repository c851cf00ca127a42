"""``lightson events``: an operator announces, lists, opts a site out and cancels."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from lightson.cli import main


def test_operator_event_lifecycle(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'events.db'}"
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["events", *args, "--db", db])
        return result.exit_code, result.output

    code, out = run(
        "add",
        "--program-id",
        "cs-ci-daily",
        "--start",
        "2030-07-15T15:00",
        "--end",
        "2030-07-15T18:00",
        "--site",
        "school-beverly",
    )
    assert code == 0, out
    assert "cs-ci-daily-2030-07-15T1500" in out and "announced" in out
    assert "2030-07-15 15:00-18:00 EDT" in out  # the program's wall clock, its zone named
    # Posted again: the same event, still one.
    assert (
        run(
            "add",
            "--program-id",
            "cs-ci-daily",
            "--start",
            "2030-07-15T15:00",
            "--end",
            "2030-07-15T18:00",
            "--site",
            "school-beverly",
        )[0]
        == 0
    )
    code, out = run(
        "add",
        "--program-id",
        "cs-ci-daily",
        "--start",
        "2030-07-15T17:00",
        "--end",
        "2030-07-15T19:00",
        "--id",
        "late",
    )
    assert code == 2 and "start: overlaps event 'cs-ci-daily-2030-07-15T1500'" in out
    code, out = run(
        "add",
        "--program-id",
        "cs-ci-daily",
        "--start",
        "2030-07-16T12:00",
        "--end",
        "2030-07-16T14:00",
    )
    assert code == 2 and "within 15:00-20:00 local time" in out
    code, out = run(
        "add", "--program-id", "cs-ci-daily", "--start", "July 15", "--end", "2030-07-16T14:00"
    )
    assert code == 2 and "--start: must be a date and time" in out

    assert run("opt-out", "cs-ci-daily-2030-07-15T1500", "school-beverly")[0] == 0
    code, out = run("list")
    assert out.count("\n") == 1 and "opted out: school-beverly" in out
    assert run("cancel", "cs-ci-daily-2030-07-15T1500")[0] == 0
    assert "cancelled" in run("list")[1]


def _pilot_program(tmp_path: Path) -> Path:
    """The example program with a pilot DR program of its own (no rule file), in which
    the school is enrolled."""
    text = (resources.files("lightson") / "examples" / "example.yaml").read_text()
    text = text.replace(
        "events:\n",
        "dr_programs:\n"
        "  winter-pilot: {name: Winter pilot, rate_usd_per_kw_season: 20,"
        " expected_events: 4, expected_event_hours: 2}\n\nevents:\n",
        1,
    )
    text = text.replace("enrollments: [cs-ci-daily]", "enrollments: [cs-ci-daily, winter-pilot]")
    path = tmp_path / "pilot.yaml"
    path.write_text(text)
    return path


def test_a_program_files_own_dr_program_takes_events_outside_the_summer(
    tmp_path: Path,
) -> None:
    """A test event in January, for a DR program the program file defines: refused without
    the program file (no rules know it), accepted with it; a bundled program keeps its
    season even then."""
    db = f"sqlite:///{tmp_path / 'events.db'}"
    program = str(_pilot_program(tmp_path))
    runner = CliRunner()

    def add(*args: str) -> tuple[int, str]:
        result = runner.invoke(main, ["events", "add", "--db", db, *args])
        return result.exit_code, result.output

    january = ("--start", "2030-01-15T09:00", "--end", "2030-01-15T11:00")
    code, out = add("--program-id", "winter-pilot", *january)
    assert code == 2 and "program_id: unknown program 'winter-pilot'" in out
    code, out = add("--program", program, "--program-id", "winter-pilot", *january)
    assert code == 0, out
    assert "winter-pilot-2030-01-15T0900" in out and "announced" in out
    assert "2030-01-15 09:00-11:00 EST" in out  # January: standard time
    code, out = add("--program", program, "--program-id", "cs-ci-daily", *january)
    assert code == 2 and "outside every season of cs-ci-daily" in out
    code, out = add(
        "--program", program, "--program-id", "winter-pilot", "--site", "nowhere", *january
    )
    assert code == 2 and "--site: not in the program: nowhere" in out

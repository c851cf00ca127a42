"""``lightson events``: an operator announces, lists, opts a site out and cancels."""

from __future__ import annotations

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

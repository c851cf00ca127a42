"""``lightson site import-load``: the bundled sample into the meter history, the learned profile
written where the program file can name it (and then planned on), errors on stderr naming
the file, line and field with exit status 2."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.config import load_program
from lightson.datasets import read_load_profile
from lightson.services.site_meter import metered_load_kwh
from lightson.store import Store

DATA = Path(__file__).parents[1] / "data" / "greenbutton"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_bundled_sample_into_a_bundled_programs_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ("site", "import-load", "example", "--site", "home-lowell", "greenbutton-sample.csv")
    code, out, err = run(*args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        "read greenbutton-sample.csv: 292 intervals, 85.000 kWh delivered, 2025-11-01 00:00 to "
        "2025-11-04 00:00 (America/New_York)"
    )
    assert lines[1] == "stored 292 readings of home-lowell's meter in sqlite:///lightson.db"
    assert lines[2].startswith(f"wrote {tmp_path / 'home-lowell-load.csv'}: ")
    assert "from the months 10, 11 of its meter history (49 of 576" in lines[2]
    assert "building: {file: home-lowell-load.csv}" in lines[3]
    profile = read_load_profile(tmp_path / "home-lowell-load.csv")
    # A November weekday 16:00-19:59 EST: 2 kW; 03:00: 1 kW. The profile's calendar is 2023:
    # Monday 6 November is day 309 from 1 January.
    monday = 309 * 24
    assert profile.values[monday + 16] == 2.0 and profile.values[monday + 3] == 1.0
    assert run(*args)[0] == 0  # again: the same rows
    store = Store("sqlite:///lightson.db")
    try:
        energy, _, _ = metered_load_kwh(
            store,
            "home-lowell",
            datetime(2025, 11, 1, tzinfo=UTC),
            datetime(2025, 11, 5, tzinfo=UTC),
        )
    finally:
        store.close()
    assert energy == pytest.approx(85.0)


def test_a_program_file_plans_on_the_written_profile(tmp_path: Path) -> None:
    """The profile goes next to the program file, which then names it."""
    program_file = tmp_path / "program.yaml"
    example = Path(__file__).parents[2] / "src" / "lightson" / "examples" / "example.yaml"
    text = example.read_text()
    program_file.write_text(text)
    db = f"sqlite:///{tmp_path / 'x.db'}"
    code, _, err = run(
        "site", "import-load", str(program_file), str(DATA / "espi-hourly.xml"),
        "--site", "home-lowell", "--db", db,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "home-lowell-load.csv").is_file()
    program_file.write_text(
        text.replace(
            "building: {profile: residential-base}", "building: {file: home-lowell-load.csv}", 1
        )
    )
    site = next(s for s in load_program(program_file).sites if s.site_id == "home-lowell")
    values = site.building.load_profile.values
    # July weekdays, hours 14-17 EST (15:00-18:59 EDT): 3 kW; others 1.2 kW
    assert np.unique(values).tolist() == [1.2, 3.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "nowhere", "greenbutton-sample.csv"], "--site: no site 'nowhere' in"),
        (["--site", "home-lowell", "nothing.csv"], "nothing.csv: cannot read"),
    ],
)
def test_errors_exit_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("site", "import-load", "example", *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_bad_row_names_the_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "usage.csv"
    bad.write_text(
        "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"
        "Electric usage,2025-07-01,00:00,00:14,0.2,kWh,,\n"
        "Electric usage,2025-07-01,00:15,00:29,n/a,kWh,,\n"
    )
    code, _, err = run(
        "site", "import-load", "example", str(bad), "--site", "home-lowell",
        "--db", f"sqlite:///{tmp_path / 'x.db'}",
    )  # fmt: skip
    assert code == 2
    assert err.strip() == f"error: {bad}:3: USAGE: 'n/a' is not a number"

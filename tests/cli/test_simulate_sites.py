"""``simulate --site``: only the sites named, each in the same world as in a whole run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from lightson.cli import main

BASE = ["simulate", "example", "--start", "2026-07-15T12:00", "--days", "0.25", "--workers", "1"]


def test_only_the_sites_named_in_the_same_world(tmp_path: Path) -> None:
    one = CliRunner().invoke(main, [*BASE, "--site", "home-lowell", "--out", str(tmp_path / "a")])
    assert one.exit_code == 0, one.output
    whole = CliRunner().invoke(main, [*BASE, "--out", str(tmp_path / "b")])
    assert whole.exit_code == 0, whole.output
    alone = pd.read_csv(tmp_path / "a" / "kpis_sites.csv")
    assert list(alone["site_id"]) == ["home-lowell"]
    among = pd.read_csv(tmp_path / "b" / "kpis_sites.csv").set_index("site_id")
    assert len(among) == 3
    pd.testing.assert_series_equal(
        alone.set_index("site_id").loc["home-lowell"], among.loc["home-lowell"]
    )
    wrong = CliRunner().invoke(main, [*BASE, "--site", "nowhere", "--out", str(tmp_path / "c")])
    assert wrong.exit_code == 2
    assert "unknown site 'nowhere'; known: business-worcester, home-lowell" in wrong.output

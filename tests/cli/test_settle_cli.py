"""``lightson settle`` on a simulated run: the same event kW as the run's KPIs, paid by rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lightson.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--program",
            "example",
            "--controller",
            "v2x-mpc",
            "--start",
            "2026-07-14T00:00",
            "--days",
            "3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_settlement_matches_the_runs_event_kw_and_the_rates(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["settle", "--run", str(run_dir), "--participant-share", "0.75", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    lines = pd.read_csv(tmp_path / "settlement.csv").set_index("site_id")
    events = pd.read_csv(run_dir / "events.csv").set_index("site_id")
    for site_id, line in lines.iterrows():
        # One event in the example season: the average is that event's kW.
        assert line.events_called == 1
        assert line.season_average_kw == pytest.approx(events.loc[site_id, "delivered_kw"])
        rate = {"cs-ci-daily": 200.0, "cs-residential-battery": 275.0}[line.program_id]
        assert line.payment_usd == pytest.approx(rate * line.season_average_kw)
        assert line.participant_usd == pytest.approx(0.75 * line.total_usd)
    assert lines.loc["school-beverly", "season_average_kw"] > 50  # a bus discharged
    per_event = pd.read_csv(tmp_path / "settlement_events.csv")
    assert set(per_event.columns) >= {"net_discharge_kwh", "building_load_kwh", "credited_kw"}
    assert "program total" in result.output
    # Three days of a season: extrapolated, and the events' own share is simulate's DR share $.
    kpis = pd.read_csv(run_dir / "kpis_sites.csv").set_index("site_id")
    for site_id, line in lines.iterrows():
        assert line.extrapolated and line.season_events == 45
        assert line.events_payment_usd == pytest.approx(line.total_usd / 45)
        assert line.events_payment_usd == pytest.approx(kpis.loc[site_id, "dr_payment_usd"])
    assert "summer 2026*     1/45" in result.output
    assert "(extrapolated); these events' own share:" in result.output
    assert "* extrapolated: the data covers only part of the season" in result.output


def test_a_program_without_rules_is_named(run_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "mine.yaml"
    rules.write_text("program_id: x\n")
    result = CliRunner().invoke(
        main, ["settle", "--run", str(run_dir), "--rules", str(rules), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "mine.yaml:name" in result.output or "mine.yaml" in result.output


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["settle", "--run", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--run: not a simulation output folder" in result.output


def test_site_level_performance_against_an_unadjusted_baseline(tmp_path: Path) -> None:
    run = tmp_path / "fortnight"
    simulated = CliRunner().invoke(
        main,
        [
            *("simulate", "--program", "example", "--controller", "v2x-mpc"),
            *("--start", "2026-06-29T00:00", "--days", "17", "--out", str(run)),
        ],
    )
    assert simulated.exit_code == 0, simulated.output
    out = tmp_path / "settled"
    result = CliRunner().invoke(
        main,
        [
            *("settle", "--run", str(run), "--baseline", "highest-5-of-10-unadjusted"),
            *("--out", str(out)),
        ],
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "settlement_baseline.csv")
    # The business and the school, in the C&I event of 15 July (the home is not C&I).
    assert list(zip(table.site_id, table.event_id, strict=True)) == [
        ("business-worcester", "cs-daily-2026-07-15"),
        ("school-beverly", "cs-daily-2026-07-15"),
    ]
    row = next(table.itertuples())
    # By hand from the run: the 5 of the last 10 weekdays before 15 July (4 July is a
    # Saturday; the run has no holiday rule for baselines) with the highest mean net import
    # over 15:00-18:00, averaged.
    sites = pd.read_parquet(run / "sites.parquet")
    business = sites[sites.site_id == "business-worcester"].copy()
    local = pd.DatetimeIndex(business.time_utc).tz_convert("America/New_York")
    business["day"], business["hour"] = local.date, local.hour
    window = business[(business.hour >= 15) & (business.hour < 18)]
    by_day = window.groupby("day").net_kw.mean()
    days = [d for d in sorted(by_day.index, reverse=True) if str(d) < "2026-07-15"]
    weekdays = [d for d in days if d.weekday() < 5][:10]
    top = sorted(weekdays, key=lambda d: by_day[d], reverse=True)[:5]
    assert row.baseline_kw == pytest.approx(by_day[top].mean())
    actual = by_day[next(d for d in by_day.index if str(d) == "2026-07-15")]
    assert row.actual_kw == pytest.approx(actual)
    assert row.site_performance_kw == pytest.approx(max(row.baseline_kw - actual, 0.0))
    events = pd.read_csv(out / "settlement_events.csv").set_index("site_id")
    assert row.storage_rule_kw == pytest.approx(events.loc["business-worcester", "credited_kw"])


def test_an_unknown_baseline_is_named(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["settle", "--run", str(run_dir), "--baseline", "best-guess", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "--baseline" in result.output

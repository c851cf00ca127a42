"""The program report (lightson report): its numbers are the run's KPIs, grouped; its PDF
renders to pages with something on them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pypdfium2
import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.domain.errors import ConfigError
from lightson.reports.program_report import (
    Run,
    _program_events,
    event_site_groups,
    html_table,
    local_time,
    read_run,
    report_tables,
    shortfall_reason,
)


def simulate(folder: Path, controller: str, days: str = "3") -> Path:
    result = CliRunner().invoke(
        main,
        [
            *("simulate", "--program", "example", "--controller", controller),
            *("--start", "2026-07-14", "--days", days, "--workers", "1", "--out", str(folder)),
        ],
    )
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return simulate(root / "mpc", "v2x-mpc"), simulate(root / "unmanaged", "unmanaged")


def test_the_tables_are_the_runs_kpis_grouped(runs: tuple[Path, Path]) -> None:
    mpc, unmanaged = (read_run(folder) for folder in runs)
    tables = report_tables([mpc, unmanaged])
    overview = tables["overview"].set_index("kind")
    # The example program: a home (one F-150 on a 9.6 kW charger), a business (two EV9s on
    # 11.5 kW chargers) and a school (two buses on 60 kW chargers).
    assert overview["vehicles"].to_dict() == {"business": 2, "home": 1, "school": 2}
    assert overview["installed_discharge_kw"].sum() == pytest.approx(9.6 + 2 * 11.5 + 2 * 60)
    kpis_mpc = pd.read_csv(runs[0] / "kpis_sites.csv").set_index("site_id")
    kpis_base = pd.read_csv(runs[1] / "kpis_sites.csv").set_index("site_id")
    sites = tables["sites"].set_index("site_id")
    for site_id in kpis_mpc.index:
        expected = kpis_base.loc[site_id, "net_cost_usd"] - kpis_mpc.loc[site_id, "net_cost_usd"]
        assert sites.loc[site_id, "net_value_usd"] == pytest.approx(expected)
    # Pinned: what managing the school and the business was worth over these three days
    # (501 and 98 before the early-charging tie-breaker of 2026-11-29; the school 551 before
    # the plan valued the month's expected peak, --month-peak expected, 2026-12-06).
    assert sites.loc["school-beverly", "net_value_usd"] == pytest.approx(562, abs=2)
    assert sites.loc["business-worcester", "net_value_usd"] == pytest.approx(116, abs=2)
    school = tables["value_by_kind"].set_index("kind").loc["school"]
    assert school["net_value_usd_per_vehicle"] == pytest.approx(
        sites.loc["school-beverly", "net_value_usd"] / 2
    )
    events = tables["events"].set_index("event_id")
    per_site = pd.read_csv(runs[0] / "events.csv").groupby("event_id")["delivered_kw"].sum()
    assert events["program_kw"].to_dict() == pytest.approx(per_site.to_dict())
    assert events.loc["cs-daily-2026-07-15", "sites_called"] == 2
    # The residential and the C&I event of 15 July share their window: the program's kW in
    # it is both.
    total = events["program_kw"].sum()
    assert events["window_kw"].tolist() == pytest.approx([total] * len(events))
    controllers = tables["controllers"].set_index("controller")
    assert controllers.loc["unmanaged", "net_value_usd"] == 0.0
    assert controllers.loc["v2x-mpc", "net_value_usd"] == pytest.approx(
        sites["net_value_usd"].sum()
    )


def test_why_a_site_gave_less_than_its_chargers_could() -> None:
    assert shortfall_reason(0.0, 0.0, 120.0) == "vehicles away"
    assert shortfall_reason(110.0, 1.0, 120.0) == "delivered"  # 90 % or more
    assert shortfall_reason(50.0, 0.5, 120.0) == "vehicles away part of the event"
    assert shortfall_reason(50.0, 1.0, 120.0) == "held back (floor, no-export cap or plan)"
    assert shortfall_reason(0.0, 1.0, 0.0) == "no bidirectional charger"


def test_the_report_and_its_pdf_are_written(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "season" / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", "--run", str(runs[0]), "--compare", str(runs[1]), "--out", str(out), "--pdf"],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "Value by site kind" in html and "data:image/png;base64," in html
    assert "cs-daily-2026-07-15" in html
    # Event times in the program's time zone with their offset (July: EDT, -04:00), not UTC.
    assert "<td>2026-07-15 15:00-04:00</td>" in html and "UTC" not in html
    assert "from 2026-07-14 00:00-04:00" in html
    assert "<th>DR share $</th>" in html and "<th>battery credit $</th>" in html
    folder = tmp_path / "season" / "report_tables"
    for name in ("overview", "value_by_kind", "event_sites", "controllers"):
        parquet = pd.read_parquet(folder / f"{name}.parquet")
        csv = pd.read_csv(folder / f"{name}.csv")
        assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv) > 0
    assert pd.read_csv(folder / "overview.csv")["vehicles"].sum() == 5
    document = pypdfium2.PdfDocument(out.with_suffix(".pdf"))
    assert len(document) >= 2
    for index in range(len(document)):
        page = document[index].render(scale=0.5).to_pil().convert("L")
        dark = sum(page.histogram()[:128])
        assert dark > 200, f"page {index + 1} is blank"  # text and plots, not an empty page


def test_runs_of_different_worlds_are_refused(runs: tuple[Path, Path], tmp_path: Path) -> None:
    shorter = simulate(tmp_path / "short", "unmanaged", days="2")
    with pytest.raises(ConfigError, match="--compare: runs differ in steps"):
        report_tables([read_run(runs[0]), read_run(shorter)])
    (shorter / "site_list.csv").unlink()
    with pytest.raises(ConfigError, match=r"site_list\.csv: missing"):
        read_run(shorter)


def test_event_windows_chain_overlaps_and_count_a_site_once() -> None:
    def t(hour: float) -> pd.Timestamp:
        return pd.Timestamp("2026-07-15", tz="UTC") + pd.Timedelta(hours=hour)

    windows = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "program_id": ["daily", "targeted", "daily", "daily"],
            "start": [t(15), t(16), t(18.5), t(39)],
            "end": [t(18), t(19), t(20), t(42)],
        }
    )
    # b overlaps a and c, which do not overlap each other: a, b and c are one window.
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", "b", "c", "d"],
            "program_id": ["daily", "targeted", "targeted", "daily", "daily"],
            "site_id": ["school", "school", "depot", "depot", "school"],
            "delivered_kw": [100.0, 80.0, 50.0, 60.0, 90.0],
            "plugged_share": [1.0] * 5,
        }
    )
    document = {"program_kw_per_event": {"a": 100.0, "b": 130.0, "c": 60.0, "d": 90.0}}
    run = Run(Path(), document, pd.DataFrame(), events, windows)
    table = _program_events(run).set_index("event_id")
    assert table["window"].tolist() == [0, 0, 0, 1]
    # The school once (its larger kW, 100) and the depot once (60): 160 kW, not 290.
    assert table.loc["a", "window_kw"] == table.loc["c", "window_kw"] == 160.0
    assert table.loc["d", "window_kw"] == 90.0


def test_times_are_shown_in_the_program_zone_with_their_offset() -> None:
    from zoneinfo import ZoneInfo

    boston = ZoneInfo("America/New_York")
    july = pd.Timestamp("2026-07-15T19:00", tz="UTC")
    january = pd.Timestamp("2026-01-15T19:00", tz="UTC")
    assert local_time(july, boston) == "2026-07-15 15:00-04:00"
    assert local_time(january, boston) == "2026-01-15 14:00-05:00"
    assert local_time(pd.Timestamp("2026-07-15T19:00"), boston) == "2026-07-15 15:00-04:00"
    html = html_table(pd.DataFrame({"start": [july]}), boston)
    assert "<td>2026-07-15 15:00-04:00</td>" in html


def test_the_event_histogram_keeps_homes_apart_from_c_and_i() -> None:
    # 250 homes at 0 kW would swamp a histogram of 3 schools' hundreds of kW.
    events = pd.DataFrame(
        {
            "kind": ["home"] * 250 + ["school"] * 3 + ["business"] * 2,
            "delivered_kw": [0.0] * 250 + [400.0, 500.0, 600.0] + [20.0, 30.0],
        }
    )
    (homes, home_kinds, home_kw), (ci, ci_kinds, ci_kw) = event_site_groups(events)
    assert homes == "homes" and home_kinds == ["home"] and len(home_kw[0]) == 250
    assert ci.startswith("C&I") and ci_kinds == ["business", "school"]
    assert [sorted(v) for v in ci_kw] == [[20.0, 30.0], [400.0, 500.0, 600.0]]

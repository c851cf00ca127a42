"""The lightson command, end to end."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lightson.cli import main

BAD_PROGRAM = """
program: {name: bad}
sites:
  - id: home
    kind: home
    utility: national-grid
    service_limit_kw: 48
    tariff: ma-residential-flat
    building: {constant_kw: 1}
    chargers: [{id: evse, model: ford-charge-station-pro}]
    vehicles: [{id: truck, model: ford-f150-lightning-er, battery_kwh: 0}]
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_prints_an_hourly_table_with_objective_terms() -> None:
    code, out, _ = run("plan", "example", "--site", "school-beverly", "--start", "2026-07-15T00:00")
    assert code == 0, out
    assert "Plan for site school-beverly: optimal, 96 intervals of 15 min" in out
    assert out.count("    DR ") == 3  # the three event hours, 15:00-18:00
    assert "dr_revenue_usd" in out and "total_usd" in out
    assert "bus-7" in out and "needs met" in out


def test_plan_json_holds_the_inputs_and_a_plan_that_respects_them() -> None:
    code, out, _ = run(
        "plan", "example", "--site", "home-lowell", "--soc", "lightning=0.4", "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["schema"] == "lightson.plan/1"
    inputs, plan = document["inputs"], document["plan"]
    assert len(document["interval_starts_utc"]) == 96
    (vehicle_in,) = inputs["vehicles"]
    (vehicle_plan,) = plan["vehicles"]
    assert vehicle_in["initial_energy_kwh"] == pytest.approx(0.4 * 131)
    # Another tool can check the plan from the document alone: limits and no V2X export.
    for t in range(96):
        assert -vehicle_in["max_discharge_kw"][t] - 1e-6 <= vehicle_plan["power_kw"][t]
        assert vehicle_plan["power_kw"][t] <= vehicle_in["max_charge_kw"][t] + 1e-6
        pv_surplus_kw = max(inputs["pv_kw"][t] - inputs["load_kw"][t], 0.0)
        assert plan["site_net_power_kw"][t] >= -pv_surplus_kw - 1e-5  # only PV leaves
    assert sum(inputs["dr_value_usd_per_kwh"]) > 0


def test_plan_writes_a_figure(tmp_path: Path) -> None:
    figure = tmp_path / "plan.png"
    code, out, _ = run("plan", "example", "--site", "business-worcester", "--plot", str(figure))
    assert code == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure written to {figure}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["plan", "example", "--site", "nowhere"],
            "error: --site: unknown site 'nowhere'; known: business-worcester",
        ),
        (
            ["plan", "example", "--site", "home-lowell", "--soc", "truck=0.5"],
            "error: --soc: unknown vehicle 'truck'",
        ),
        (
            ["plan", "example", "--site", "home-lowell", "--soc", "lightning=1.5"],
            "must be between 0 and 1",
        ),
        (
            ["plan", "example", "--site", "home-lowell", "--start", "July 15"],
            "error: --start: must be a date",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_named_message(args: list[str], message: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err


def test_a_bad_program_file_names_the_field(tmp_path: Path) -> None:
    program = tmp_path / "bad.yaml"
    program.write_text(BAD_PROGRAM)
    code, _, err = run("validate", str(program))
    assert code == 2
    assert err.strip() == "error: sites[0].vehicles[0].battery_kwh: must be > 0.0"


def test_validate_and_catalog_summarise() -> None:
    code, out, _ = run("validate", "example")
    assert code == 0 and "Lights On example program: valid" in out
    code, out, _ = run("catalog")
    assert code == 0 and "thomas-jouley-226" in out and "cs-ci-daily" in out


def test_tour_plans_every_example_site(tmp_path: Path) -> None:
    code, out, _ = run("tour", "--out", str(tmp_path))
    assert code == 0
    assert out.count("Plan for site") == 3
    assert "Simulating 3 days from 2026-07-14" in out
    assert out.count("school-beverly") >= 2 and "unmanaged $" in out
    for site in ("home-lowell", "business-worcester", "school-beverly"):
        assert (tmp_path / f"{site}.png").exists()
        assert json.loads((tmp_path / f"{site}.json").read_text())["plan"]["status"] == "optimal"


def test_the_installed_command_keeps_stdout_clean_for_json() -> None:
    # highspy prints a banner from C++ on the first solver it makes (ERGO-Code/HiGHS#2749);
    # our solve layer keeps it off stdout, so the JSON parses as a whole.
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightson.cli",
            "plan",
            "example",
            "--site",
            "home-lowell",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "Running HiGHS" not in completed.stdout
    json.loads(completed.stdout)


def test_simulate_writes_parquet_and_kpis_and_prints_a_summary(tmp_path: Path) -> None:
    import pandas as pd

    code, out, err = run(
        "simulate",
        "--controller",
        "smart-charge",
        "--start",
        "2026-07-15T00:00",
        "--days",
        "1",
        "--sites",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    )
    assert code == 0, err
    assert "Controller smart-charge, 1 days." in out
    assert "home-lowell" in out and "business-worcester" in out and "school-beverly" not in out
    sites = pd.read_parquet(tmp_path / "sites.parquet")
    vehicles = pd.read_parquet(tmp_path / "vehicles.parquet")
    assert len(sites) == 2 * 96 and set(sites.site_id) == {"home-lowell", "business-worcester"}
    assert len(vehicles) == 3 * 96 and vehicles.power_kw.min() >= 0.0  # charge-only
    document = json.loads((tmp_path / "kpis.json").read_text())
    assert document["schema"] == "lightson.run/1" and len(document["sites"]) == 2
    assert (tmp_path / "kpis_sites.csv").read_text().startswith("site_id,kind,controller")


def test_simulate_refuses_an_end_before_the_start(tmp_path: Path) -> None:
    code, _, err = run(
        "simulate",
        "--start",
        "2026-07-15T00:00",
        "--end",
        "2026-07-14T00:00",
        "--out",
        str(tmp_path),
    )
    assert code == 2 and "error: --end: must be at least one step after --start" in err


def test_program_new_writes_a_valid_ma_2026_program(tmp_path: Path) -> None:
    code, out, _ = run("program", "new", "ma-2026", "--seed", "3")
    assert code == 0
    assert out.startswith("# lightson program new ma-2026 --seed 3")
    program_file = tmp_path / "program.yaml"
    program_file.write_text(out)
    code, summary, _ = run("validate", str(program_file))
    assert code == 0 and summary.count("home-") == 55


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "nan"], "must be a finite number"),
        (["--peak-so-far-kw", "inf"], "inf is not in the range"),
        (["--start", "0001-01-01T00:00"], "error: --start: must be a year between 1901 and 2199"),
        (["--plot", "plan.xyz"], "error: --plot: must end in one of .png, .svg, .pdf"),
    ],
)
def test_out_of_range_plan_options_are_refused_by_name(args: list[str], message: str) -> None:
    code, out, err = run("plan", "example", "--site", "home-lowell", *args)
    assert code == 2 and message in err
    assert "Traceback" not in out + err


def test_plan_times_in_the_json_are_utc_and_real_across_daylight_saving() -> None:
    from datetime import datetime

    code, out, _ = run(
        "plan",
        "example",
        "--site",
        "school-beverly",
        "--start",
        "2026-03-07T00:00",
        "--hours",
        "72",
        "--json",
    )
    assert code == 0
    starts = [datetime.fromisoformat(s) for s in json.loads(out)["interval_starts_utc"]]
    assert all(s.utcoffset().total_seconds() == 0 for s in starts)
    assert all((b - a).total_seconds() == 900 for a, b in itertools.pairwise(starts))


def test_resilience_reads_a_simulation_run_and_writes_the_table_and_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, _, err = run(
        "simulate",
        "--controller",
        "unmanaged",
        "--start",
        "2026-03-02T00:00",
        "--days",
        "5",
        "--sites",
        "3",
        "--workers",
        "1",
        "--out",
        str(run_dir),
    )
    assert code == 0, err
    code, out, err = run(
        "resilience",
        "--site",
        "school-beverly",
        "--run",
        str(run_dir),
        "--max-hours",
        "24",
        "--out",
        str(tmp_path / "res"),
    )
    assert code == 0, err
    assert "Outage survival at school-beverly: 97 outage starts" in out  # 5 days less 24 h, hourly
    assert "critical" in out and "P(≥24 h)" in out
    rows = (tmp_path / "res" / "survival.csv").read_text().splitlines()
    assert rows[0] == "start_utc,critical_hours,essential_hours,full_hours" and len(rows) == 98
    for name in ("survival.png", "backup-by-start.png"):
        assert (tmp_path / "res" / name).read_bytes()[:4] == b"\x89PNG"


def test_resilience_names_a_run_without_the_site(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run(
        "simulate",
        "--controller",
        "unmanaged",
        "--days",
        "1",
        "--sites",
        "1",
        "--workers",
        "1",
        "--out",
        str(run_dir),
    )
    code, _, err = run(
        "resilience",
        "--site",
        "school-beverly",
        "--run",
        str(run_dir),
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 2 and "error: --run: no data for site 'school-beverly'" in err


def test_compare_puts_runs_side_by_side_and_computes_value_captured(tmp_path: Path) -> None:
    for controller in ("unmanaged", "v2x-mpc", "perfect-foresight"):
        code, _, err = run(
            "simulate",
            "--controller",
            controller,
            "--start",
            "2026-07-15T00:00",
            "--days",
            "1",
            "--sites",
            "3",
            "--workers",
            "1",
            "--out",
            str(tmp_path / controller),
        )
        assert code == 0, err
    documents = {
        c: json.loads((tmp_path / c / "kpis.json").read_text())
        for c in ("unmanaged", "v2x-mpc", "perfect-foresight")
    }
    net = {c: sum(s["net_cost_usd"] for s in d["sites"]) for c, d in documents.items()}
    code, out, _ = run("compare", *(str(tmp_path / c) for c in documents))
    assert code == 0
    captured = (net["unmanaged"] - net["v2x-mpc"]) / (net["unmanaged"] - net["perfect-foresight"])
    assert f"Value captured by v2x-mpc: {captured:.0%}" in out
    assert f"{net['v2x-mpc'] - net['unmanaged']:+,.0f} $" in out


def test_compare_refuses_runs_of_different_worlds(tmp_path: Path) -> None:
    for seed in ("1", "2"):
        run(
            "simulate",
            "--controller",
            "unmanaged",
            "--days",
            "1",
            "--sites",
            "1",
            "--workers",
            "1",
            "--seed",
            seed,
            "--out",
            str(tmp_path / seed),
        )
    code, _, err = run("compare", str(tmp_path / "1"), str(tmp_path / "2"))
    assert code == 2 and "runs differ in seed: 1, 2" in err


def test_an_unreadable_program_file_or_database_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "program.yaml"
    binary.write_bytes(b"sites:\n  - id: \xff\xfe\n")
    code, _, err = run("validate", str(binary))
    assert code == 2
    assert err == f"error: {binary}: not a UTF-8 text file (byte 15): is it a program file?\n"
    database = f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}"
    code, _, err = run("token", "add", "staff", "example", "--role", "admin", "--db", database)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"error: cannot open the database {database}: unable to open")
    assert err.count("\n") == 1

"""The simulate summary names its money figures apart: the battery-energy credit has its own
column and line, and net cost is the sum the legend says (hand-computed)."""

from __future__ import annotations

from dataclasses import fields

from lightson.reports.run_views import battery_credit_line, run_table
from lightson.sim.kpis import SiteKpis


def _kpis(site_id: str, **values: float) -> SiteKpis:
    zero: dict[str, object] = {
        f.name: 0.0 if f.type == "float" else 0 for f in fields(SiteKpis) if f.name != "site_id"
    }
    zero.update(kind="home", controller="v2x-mpc", days=3.0)
    zero.update(values)
    return SiteKpis(site_id=site_id, **zero)  # type: ignore[arg-type]


def _site(site_id: str, bill: float, wear: float, dr: float, kwh: float, rate: float) -> SiteKpis:
    credit = kwh * rate
    return _kpis(
        site_id,
        bill_usd=bill,
        degradation_usd=wear,
        dr_payment_usd=dr,
        stored_energy_change_kwh=kwh,
        stored_energy_value_usd=credit,
        net_cost_usd=bill + wear - dr - credit,
    )


def test_the_battery_credit_is_its_own_column_and_line() -> None:
    # 40 kWh more at the end, valued at 0.25 $/kWh: a 10 $ credit; 100 + 5 - 20 - 10 = 75 $.
    table = run_table([_site("home-a", 100.0, 5.0, 20.0, 40.0, 0.25)], [])
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("site"))
    assert header.split() == [
        "site", "kind", "charged", "disch.", "to", "grid", "bill", "$", "wear", "$", "DR",
        "kW", "DR", "share", "$", "batt.", "kWh", "batt.", "$", "net", "cost", "$", "short",
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith("home-a")).split()
    # bill, wear, DR kW, DR share, batt. kWh, batt. $, net cost, short
    assert row[5:] == ["100", "5.0", "0.0", "20", "40", "10", "75", "0"]
    assert "net cost $ = bill $ + wear $ - DR share $ - batt. $" in " ".join(table.split())
    assert (
        "Battery-energy credit: the batteries end the run holding 40.0 kWh more than they "
        "started; at 0.2500 $/kWh (what putting it back costs) that is 10.00 $, taken off net "
        "cost" in table
    )


def test_the_program_credit_is_the_sites_kwh_times_their_rates() -> None:
    # 40 kWh at 0.25 and 20 kWh at 0.40: 10 + 8 = 18 $ for 60 kWh, 0.30 $/kWh on average.
    kpis = [_site("a", 0, 0, 0, 40.0, 0.25), _site("b", 0, 0, 0, 20.0, 0.40)]
    line = battery_credit_line(kpis)
    assert "holding 60.0 kWh more" in line
    assert "at 0.3000 $/kWh" in line
    assert "that is 18.00 $, taken off net cost" in line
    totals = next(r for r in run_table(kpis, []).splitlines() if r.startswith("program"))
    assert totals.split()[-4:] == ["60", "18", "-18", "0"]  # batt. kWh, batt. $, net, short


def test_batteries_left_emptier_add_to_net_cost() -> None:
    line = battery_credit_line([_site("a", 0, 0, 0, -12.0, 0.25)])
    assert "holding 12.0 kWh less than they started" in line
    assert "that is 3.00 $, added to net cost" in line

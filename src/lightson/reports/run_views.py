"""A simulation run as a readable summary table.

The money columns are named apart from the other commands' figures (``docs/reports.md``):

- ``DR share $``: what the run's own events add to a season's payment (each event's kW ×
  rate ÷ the season's expected events), not the season's payment (``lightson settle``);
- ``batt. $``: the battery-energy credit, the energy the batteries hold at the end beyond
  what they held at the start (``batt. kWh``) at what it costs to put back (mean import price
  ÷ charge efficiency);
- ``net cost $`` = ``bill $`` + ``wear $`` − ``DR share $`` − ``batt. $``.
"""

from __future__ import annotations

import textwrap

from lightson.sim.kpis import EventPerformance, SiteKpis

_COLUMNS = (
    ("site", "site_id", "<22", ""),
    ("kind", "kind", "<9", ""),
    ("charged", "charged_kwh", ">9", ".0f"),
    ("disch.", "discharged_kwh", ">8", ".0f"),
    ("to grid", "discharged_to_grid_kwh", ">8", ".0f"),
    ("bill $", "bill_usd", ">9", ".0f"),
    ("wear $", "degradation_usd", ">8", ".1f"),
    ("DR kW", "dr_average_kw", ">7", ".1f"),
    ("DR share $", "dr_payment_usd", ">11", ".0f"),
    ("batt. kWh", "stored_energy_change_kwh", ">10", ".0f"),
    ("batt. $", "stored_energy_value_usd", ">9", ".0f"),
    ("net cost $", "net_cost_usd", ">11", ".0f"),
    ("short", "departures_below_target", ">6", "d"),
)

LEGEND = (
    "Energy in kWh. DR kW = average event performance; DR share $ = what these events add to "
    "a season's payment (kW x rate / the season's expected events; 'lightson settle' gives "
    "the season's payment); batt. kWh = energy the batteries hold at the end beyond the "
    "start, batt. $ = its credit (kWh x mean import price / charge efficiency); net cost $ = "
    "bill $ + wear $ - DR share $ - batt. $; short = departures below their target."
)


def run_table(kpis: list[SiteKpis], events: list[EventPerformance]) -> str:
    """Per-site KPIs (energy in kWh), program totals, the battery-energy credit on a line of
    its own, and the program's kW in each event."""
    if not kpis:
        return "no sites simulated"
    first = kpis[0]
    lines = [
        textwrap.fill(f"Controller {first.controller}, {first.days:g} days. {LEGEND}", 100),
        "",
        "".join(f"{title:{fmt}}" for title, _, fmt, _ in _COLUMNS),
    ]
    for k in kpis:
        lines.append(
            "".join(f"{getattr(k, field):{fmt}{spec}}" for _, field, fmt, spec in _COLUMNS)
        )
    totals = {field: sum(getattr(k, field) for k in kpis) for _, field, _, spec in _COLUMNS if spec}
    lines.append(
        "".join(
            f"{'program':{fmt}}"
            if field == "site_id"
            else f"{'':{fmt}}"
            if field == "kind" or field == "dr_average_kw"
            else f"{totals[field]:{fmt}{spec}}"
            for _, field, fmt, spec in _COLUMNS
        )
    )
    lines += ["", battery_credit_line(kpis)]
    per_event: dict[str, float] = {}
    for e in events:
        per_event[e.event_id] = per_event.get(e.event_id, 0.0) + e.delivered_kw
    if per_event:
        lines += ["", "Program kW delivered per event:"]
        lines += [f"  {event_id:<32}{kw:>9.1f} kW" for event_id, kw in per_event.items()]
    return "\n".join(lines)


def battery_credit_line(kpis: list[SiteKpis]) -> str:
    """The battery-energy credit of the run, said in words: kWh × the rate it is valued at
    (a mean over the sites, weighted by kWh, when their rates differ)."""
    kwh = sum(k.stored_energy_change_kwh for k in kpis)
    usd = sum(k.stored_energy_value_usd for k in kpis)
    rate = usd / kwh if abs(kwh) > 1e-9 else 0.0
    held, effect = ("more", "taken off") if kwh >= 0 else ("less", "added to")
    return (
        f"Battery-energy credit: the batteries end the run holding {abs(kwh):,.1f} kWh {held} "
        f"than they started; at {rate:.4f} $/kWh (what putting it back costs) that is "
        f"{abs(usd):,.2f} $, {effect} net cost (not part of the bill or of any payment)."
    )

"""A simulation run as a readable summary table."""

from __future__ import annotations

from lightson.sim.kpis import EventPerformance, SiteKpis

_COLUMNS = (
    ("site", "site_id", "<22", ""),
    ("kind", "kind", "<9", ""),
    ("charged", "charged_kwh", ">9", ".0f"),
    ("disch.", "discharged_kwh", ">8", ".0f"),
    ("to grid", "discharged_to_grid_kwh", ">8", ".0f"),
    ("bill $", "bill_usd", ">9", ".0f"),
    ("DR kW", "dr_average_kw", ">7", ".1f"),
    ("DR $", "dr_payment_usd", ">7", ".0f"),
    ("wear $", "degradation_usd", ">7", ".1f"),
    ("net $", "net_cost_usd", ">9", ".0f"),
    ("short", "departures_below_target", ">6", "d"),
)


def run_table(kpis: list[SiteKpis], events: list[EventPerformance]) -> str:
    """Per-site KPIs (energy in kWh), program totals, and the program's kW in each event."""
    if not kpis:
        return "no sites simulated"
    first = kpis[0]
    lines = [
        f"Controller {first.controller}, {first.days:g} days. Energy in kWh; DR kW = average "
        "event performance; DR $ = what these events add to the season's payment; short = "
        "departures below their target.",
        "",
        "".join(f"{title:{fmt}}" for title, _, fmt, _ in _COLUMNS),
    ]
    for k in kpis:
        lines.append(
            "".join(f"{getattr(k, field):{fmt}{spec}}" for _, field, fmt, spec in _COLUMNS)
        )
    totals = {field: sum(getattr(k, field) for k in kpis) for _, field, _, spec in _COLUMNS if spec}
    totals["dr_average_kw"] = float("nan")
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
    per_event: dict[str, float] = {}
    for e in events:
        per_event[e.event_id] = per_event.get(e.event_id, 0.0) + e.delivered_kw
    if per_event:
        lines += ["", "Program kW delivered per event:"]
        lines += [f"  {event_id:<32}{kw:>9.1f} kW" for event_id, kw in per_event.items()]
    return "\n".join(lines)

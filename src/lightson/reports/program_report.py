"""The program report: what V2X is worth, for whom, and what gets in the way, from simulation
runs (``docs/reports.md``).

Every figure comes from the KPIs the simulator wrote (``lightson.sim.kpis``, the functions the
run summary, ``lightson compare`` and settlement use); this module only groups and plots them.
``report_tables`` gives the tables (each also exported as CSV and Parquet), ``write_report``
the HTML page with its plots and, on request, a PDF of it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from lightson.domain.errors import ConfigError
from lightson.domain.failures import CAUSES, FailureCause, cause_label
from lightson.reports.compare import check_comparable, controller_totals, value_captured

DEFAULT_TIMEZONE = "America/New_York"  # the program file's default (docs/program-file.md)
MEASURED = "measured"  # the controller name of a live season's run (services.measured)
EXPECTED_EVENT_KW = 1000.0  # the program expects more than 1 MW in each event (DOMAIN.md)
RUN_FILES = ("kpis.json", "kpis_sites.csv", "events.csv", "site_list.csv", "event_list.csv")
CONDITIONS_FILE = "event_conditions.csv"  # written for a live season (services.measured)
KINDS = ("home", "business", "school")
KIND_COLORS = {"home": "#2a7ab0", "business": "#e08a1e", "school": "#3b9b4a"}


@dataclass(frozen=True)
class Run:
    """One ``lightson simulate`` output folder, read."""

    folder: Path
    document: Mapping[str, Any]  # kpis.json
    sites: pd.DataFrame  # kpis_sites.csv joined with site_list.csv
    events: pd.DataFrame  # events.csv: one row per site and event
    windows: pd.DataFrame  # event_list.csv: each event's program and window
    # event_conditions.csv, a live season's only: per site-event, opted out, chargers
    # faulted and chargers silent (None: a simulation, which has none of these)
    conditions: pd.DataFrame | None = None

    @property
    def controller(self) -> str:
        return str(self.document["controller"])

    @property
    def timezone(self) -> ZoneInfo:
        """The program's time zone (a run written before 2026-12-06 does not name it: the
        program's default, America/New_York)."""
        return ZoneInfo(str(self.document.get("timezone", DEFAULT_TIMEZONE)))

    @property
    def days(self) -> float:
        return float(self.document["steps"]) * float(self.document["step_minutes"]) / 1440


def read_run(folder: Path) -> Run:
    """Read a run folder; a missing or unreadable file is named."""
    for name in RUN_FILES:
        if not (folder / name).is_file():
            hint = " (written by lightson simulate since 2026-11-29: run it again)"
            raise ConfigError.at(
                str(folder / name),
                "missing: not a simulation output folder"
                + (hint if name == "site_list.csv" else ""),
            )
    try:
        document = json.loads((folder / "kpis.json").read_text())
        kpis = pd.read_csv(folder / "kpis_sites.csv")
        site_list = pd.read_csv(folder / "site_list.csv")
        events = pd.read_csv(folder / "events.csv")
        windows = pd.read_csv(folder / "event_list.csv")
    except (OSError, ValueError) as error:
        raise ConfigError.at(str(folder), f"cannot read the run ({error})") from None
    sites = kpis.merge(site_list.drop(columns=["kind"]), on="site_id", how="left")
    windows["start"] = pd.to_datetime(windows["start"], utc=True)
    windows["end"] = pd.to_datetime(windows["end"], utc=True)
    conditions = None
    if (folder / CONDITIONS_FILE).is_file():
        conditions = pd.read_csv(folder / CONDITIONS_FILE)
    return Run(folder, document, sites, events, windows, conditions)


# --- tables ------------------------------------------------------------------------------------


def report_tables(
    runs: Sequence[Run], season: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, pd.DataFrame]:
    """The report's tables. ``runs[0]`` is the one reported on; with more runs of the same
    world, the controllers are compared and an ``unmanaged`` run is the baseline for savings.
    ``season``: a live season's own tables (``services.season_report``), added as they are."""
    main = runs[0]
    if len(runs) > 1:
        _check_comparable(runs)
    baseline = next((r for r in runs if r.controller == "unmanaged"), None)
    tables = {
        "overview": _overview(main),
        "sites": _site_values(main, baseline),
        "value_by_kind": _value_by_kind(main, baseline),
        "events": _program_events(main),
        "event_sites": _event_sites(main),
        "backup": _backup(main),
        "drivers": _drivers(main),
    }
    if len(runs) > 1:
        tables["controllers"] = _controllers(runs)
    for name, table in (season or {}).items():
        tables["called_events" if name == "events" else name] = table
    return tables


def _overview(run: Run) -> pd.DataFrame:
    sites = run.sites
    rows = []
    for (kind, utility), group in sites.groupby(["kind", "utility"], sort=True):
        rows.append(
            {
                "kind": kind,
                "utility": utility,
                "sites": len(group),
                "vehicles": int(group["vehicles"].sum()),
                "v2x_vehicles": int(group["v2x_vehicles"].sum()),
                "chargers": int(group["chargers"].sum()),
                "installed_discharge_kw": float(group["installed_discharge_kw"].sum()),
                "charged_kwh": float(group["charged_kwh"].sum()),
                "discharged_kwh": float(group["discharged_kwh"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _site_values(run: Run, baseline: Run | None) -> pd.DataFrame:
    """Per site, over the run: payments, costs and the net value against ``unmanaged``. Not
    scaled to a year: a few days' demand-response payment does not scale to a season's."""
    sites = run.sites
    frame = pd.DataFrame(
        {
            "site_id": sites["site_id"],
            "kind": sites["kind"],
            "vehicles": sites["vehicles"],
            "dr_payment_usd": sites["dr_payment_usd"],
            "bill_usd": sites["bill_usd"],
            "demand_cost_usd": sites["demand_cost_usd"],
            "degradation_usd": sites["degradation_usd"],
            "battery_credit_usd": sites["stored_energy_value_usd"],
            "net_cost_usd": sites["net_cost_usd"],
        }
    )
    if baseline is not None and baseline is not run:
        base = baseline.sites.set_index("site_id")
        ids = frame["site_id"]
        frame["bill_saving_usd"] = (
            base.loc[ids, "bill_usd"].to_numpy() - sites["bill_usd"].to_numpy()
        )
        frame["demand_saving_usd"] = (
            base.loc[ids, "demand_cost_usd"].to_numpy() - sites["demand_cost_usd"].to_numpy()
        )
        frame["net_value_usd"] = (
            base.loc[ids, "net_cost_usd"].to_numpy() - sites["net_cost_usd"].to_numpy()
        )
        frame["net_value_usd_per_vehicle"] = frame["net_value_usd"] / frame["vehicles"].where(
            frame["vehicles"] > 0
        )
    return frame


def _value_by_kind(run: Run, baseline: Run | None) -> pd.DataFrame:
    values = _site_values(run, baseline)
    rows = []
    for kind in [k for k in KINDS if k in set(values["kind"])]:
        group = values[values["kind"] == kind]
        row: dict[str, Any] = {
            "kind": kind,
            "sites": len(group),
            "vehicles": int(group["vehicles"].sum()),
            "dr_payment_usd_per_site": group["dr_payment_usd"].mean(),
            "degradation_usd_per_site": group["degradation_usd"].mean(),
            "battery_credit_usd_per_site": group["battery_credit_usd"].mean(),
            "net_cost_usd_per_site": group["net_cost_usd"].mean(),
        }
        if "net_value_usd" in group:
            value = group["net_value_usd"]
            row |= {
                "bill_saving_usd_per_site": group["bill_saving_usd"].mean(),
                "demand_saving_usd_per_site": group["demand_saving_usd"].mean(),
                "net_value_usd_per_site": value.mean(),
                "net_value_usd_per_vehicle": value.sum() / max(int(group["vehicles"].sum()), 1),
                "net_value_min_usd": value.min(),
                "net_value_median_usd": value.median(),
                "net_value_max_usd": value.max(),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def _program_events(run: Run) -> pd.DataFrame:
    """The program's kW in each event (the sum over the sites it called), and in each event
    window: the residential and C&I events called for the same hours add up, and the program
    expects more than 1 MW in a window."""
    per_event = run.document.get("program_kw_per_event", {})
    windows = run.windows.set_index("event_id")
    rows = []
    for event_id, kw in per_event.items():
        called = run.events[run.events["event_id"] == event_id]
        window = windows.loc[event_id] if event_id in windows.index else None
        rows.append(
            {
                "event_id": event_id,
                "program_id": called["program_id"].iloc[0] if len(called) else "",
                "start": window["start"] if window is not None else pd.NaT,
                "end": window["end"] if window is not None else pd.NaT,
                "sites_called": len(called),
                "program_kw": float(kw),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=["event_id", "program_id", "start", "end", "sites_called", "program_kw"],
    )
    table["window"] = _windows(table)
    # In a window, a site called by two overlapping events counts once (its larger kW).
    per_site = run.events.merge(table[["event_id", "window"]], on="event_id")
    window_kw = per_site.groupby(["window", "site_id"])["delivered_kw"].max().groupby("window")
    table["window_kw"] = table["window"].map(window_kw.sum()).fillna(0.0)
    table["expected_kw"] = EXPECTED_EVENT_KW
    return table


def _windows(table: pd.DataFrame) -> list[int]:
    """Events grouped into windows: runs of events that overlap in time, one after another
    (an event with no known window is a window of its own)."""
    order = table.sort_values("start", na_position="last").index
    labels = {}
    window, reach = -1, None
    for index in order:
        start, end = table.at[index, "start"], table.at[index, "end"]
        if pd.isna(start) or reach is None or start >= reach:
            window += 1
            reach = end if pd.notna(end) else None
        else:
            reach = max(reach, end)
        labels[index] = window
    return [labels[i] for i in table.index]


def shortfall_reason(
    delivered_kw: float,
    plugged_share: float,
    capacity_kw: float,
    opted_out: bool = False,
    faulted: bool = False,
    silent: bool = False,
) -> str:
    """Why a site delivered less than its equipment could: the owner opted out, a charger
    faulted or stopped communicating (a live season's records only), the vehicles away for
    all or part of the event, or there and held back (battery floor, the no-export cap, or a
    plan that found it not worth it)."""
    if capacity_kw <= 0:
        return "no bidirectional charger"
    if opted_out:
        return cause_label(FailureCause.OPT_OUT)
    if delivered_kw >= 0.9 * capacity_kw:
        return "delivered"
    if faulted:
        return cause_label(FailureCause.FAULT)
    if silent:
        return cause_label(FailureCause.COMMS)
    if plugged_share <= 0:
        return "vehicles away"
    if plugged_share < 0.999:
        return "vehicles away part of the event"
    return "held back (floor, no-export cap or plan)"


def _event_sites(run: Run) -> pd.DataFrame:
    capacity = run.sites.set_index("site_id")["installed_discharge_kw"]
    kinds = run.sites.set_index("site_id")["kind"]
    events = run.events.copy()
    events["kind"] = [kinds.get(s, "") for s in events["site_id"]]
    events["capacity_kw"] = [float(capacity.get(s, 0.0)) for s in events["site_id"]]
    if run.conditions is not None:
        events = events.merge(run.conditions, on=["event_id", "site_id"], how="left")
        events[["faulted_chargers", "silent_chargers"]] = (
            events[["faulted_chargers", "silent_chargers"]].fillna(0).astype(int)
        )
        events["opted_out"] = events["opted_out"].astype("boolean").fillna(False).astype(bool)
    else:
        events = events.assign(opted_out=False, faulted_chargers=0, silent_chargers=0)
    events["reason"] = [
        shortfall_reason(d, p, c, bool(o), f > 0, q > 0)
        for d, p, c, o, f, q in zip(
            events["delivered_kw"],
            events["plugged_share"],
            events["capacity_kw"],
            events["opted_out"],
            events["faulted_chargers"],
            events["silent_chargers"],
            strict=True,
        )
    ]
    if run.conditions is None:
        events = events.drop(columns=["opted_out", "faulted_chargers", "silent_chargers"])
    return events


def _backup(run: Run) -> pd.DataFrame:
    sites = run.sites
    hit = sites[sites["outage_hours"] > 0]
    return pd.DataFrame(
        {
            "site_id": hit["site_id"],
            "kind": hit["kind"],
            "outage_hours": hit["outage_hours"],
            "hours_full_load": hit["outage_hours_full_load"],
            "load_shed_kwh": hit["load_shed_kwh"],
            "critical_unserved_kwh": hit["critical_unserved_kwh"],
        }
    )


def _drivers(run: Run) -> pd.DataFrame:
    rows = []
    kind_of = run.sites.set_index("site_id")["kind"]
    called = run.events.assign(kind=[kind_of.get(s, "") for s in run.events["site_id"]])
    for kind in [k for k in KINDS if k in set(run.sites["kind"])]:
        group = run.sites[run.sites["kind"] == kind]
        shares = called.loc[called["kind"] == kind, "plugged_share"]
        rows.append(
            {
                "kind": kind,
                "vehicles": int(group["vehicles"].sum()),
                "departures_below_target": int(group["departures_below_target"].sum()),
                "departure_shortfall_kwh": float(group["departure_shortfall_kwh"].sum()),
                "unserved_trip_kwh": float(group["unserved_trip_kwh"].sum()),
                # over the site-events called, not sites never called
                "event_plugged_share": float(shares.mean()) if len(shares) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _check_comparable(runs: Sequence[Run]) -> None:
    problems = check_comparable([r.document for r in runs])
    sites = {tuple(sorted(r.sites["site_id"])) for r in runs}
    if len(sites) > 1:
        problems.append("runs simulate different sites (use the same --sites)")
    if problems:
        raise ConfigError([("--compare", p) for p in problems])


def _controllers(runs: Sequence[Run]) -> pd.DataFrame:
    totals = controller_totals([r.document for r in runs])
    frame = pd.DataFrame([{"controller": c, **t} for c, t in totals.items()])
    base = totals.get("unmanaged")
    if base is not None:
        frame["net_value_usd"] = base["net_cost_usd"] - frame["net_cost_usd"]
    return frame


# --- the page -----------------------------------------------------------------------------------


def write_report(
    runs: Sequence[Run],
    out: Path,
    pdf: bool = False,
    season: Mapping[str, pd.DataFrame] | None = None,
    files: bool = True,
) -> list[Path]:
    """Write ``out`` (HTML), its tables under ``<out stem>_tables/`` as CSV and Parquet
    (unless not ``files``: the page alone, naming no folder), and with ``pdf`` the same page
    as a PDF next to it. ``season``: a live season's own tables (events called, equipment,
    data completeness, settlement). Returns the paths written."""
    tables = report_tables(runs, season)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if files:
        folder = out.with_name(out.stem + "_tables")
        folder.mkdir(exist_ok=True)
        for name, table in tables.items():
            table.to_csv(folder / f"{name}.csv", index=False)
            table.to_parquet(folder / f"{name}.parquet", index=False)
            written += [folder / f"{name}.csv", folder / f"{name}.parquet"]
    html = render_html(runs, tables, files)
    out.write_text(html, encoding="utf-8")
    written.insert(0, out)
    if pdf:
        import weasyprint

        path = out.with_suffix(".pdf")
        weasyprint.HTML(string=html, base_url=str(out.parent)).write_pdf(path)
        written.insert(1, path)
    return written


def render_html(runs: Sequence[Run], tables: Mapping[str, pd.DataFrame], files: bool = True) -> str:
    main = runs[0]
    page = jinja2.Environment(
        loader=jinja2.FunctionLoader(template), autoescape=True, undefined=jinja2.StrictUndefined
    ).get_template("report.html.j2")
    value_captured_share = None
    if len(runs) > 1:
        value_captured_share = value_captured(controller_totals([r.document for r in runs]))
    figures = {
        "events": figure_uri(partial(_plot_events, tz=main.timezone), tables["events"]),
        "value": figure_uri(_plot_value, tables["sites"]),
        "event_sites": figure_uri(_plot_event_sites, tables["event_sites"], panels=2),
        "backup": figure_uri(_plot_backup, tables["backup"]) if len(tables["backup"]) else None,
        "controllers": (
            figure_uri(_plot_controllers, tables["controllers"])
            if "controllers" in tables
            else None
        ),
        "equipment": (
            figure_uri(_plot_equipment, tables["equipment"])
            if len(tables.get("equipment", ()))
            else None
        ),
    }
    reasons = (
        tables["event_sites"].groupby("reason").size().sort_values(ascending=False).to_dict()
        if len(tables["event_sites"])
        else {}
    )
    return page.render(
        program=main.document["program"],
        controller=main.controller,
        start=local_time(pd.Timestamp(main.document["start"]), main.timezone),
        timezone=main.timezone.key,
        days=main.days,
        seed=main.document.get("seed"),
        totals=main.document["program_totals"],
        baseline=any(r.controller == "unmanaged" for r in runs[1:])
        or main.controller == "unmanaged",
        tables={name: html_table(t, main.timezone) for name, t in tables.items()},
        figures=figures,
        reasons=reasons,
        events_over_1mw=_windows_over(tables["events"], EXPECTED_EVENT_KW),
        event_count=_windows_over(tables["events"], -1.0),
        value_captured=value_captured_share,
        runs=[(r.controller, str(r.folder)) for r in runs],
        measured=main.controller == MEASURED,
        # a simulation with failures (lightson.sim.failures): kW lost by cause
        lost=_lost_by_label(main.document.get("event_kw_lost_by_cause"))
        if main.conditions is not None
        else None,
        season="equipment" in tables,
        files=files,
    )


def _lost_by_label(lost: dict[str, float] | None) -> dict[str, float] | None:
    """``event_kw_lost_by_cause`` (keyed by ``FailureCause`` value) keyed by each cause's
    label and category (``domain.failures.CAUSES``)."""
    if lost is None:
        return None
    named = {FailureCause(key): kw for key, kw in lost.items()}
    return {
        f"{CAUSES[cause].label} ({CAUSES[cause].category.value})": kw for cause, kw in named.items()
    }


def _windows_over(events: pd.DataFrame, kw: float) -> int:
    """How many event windows the program delivered more than ``kw`` in."""
    if not len(events):
        return 0
    windows = events.drop_duplicates(subset=["window"])
    return int((windows["window_kw"] > kw).sum())


def template(name: str) -> str:
    return (resources.files("lightson.reports") / "templates" / name).read_text()


def local_time(value: pd.Timestamp, tz: ZoneInfo) -> str:
    """An instant as the program's wall clock with its UTC offset, ``2026-07-15 15:00-04:00``
    (a naive one is taken as UTC, as the tables store them)."""
    aware = value if value.tzinfo is not None else value.tz_localize("UTC")
    return str(aware.tz_convert(tz).isoformat(sep=" ", timespec="minutes"))


def html_table(table: pd.DataFrame, tz: ZoneInfo) -> str:
    """A table as HTML: instants in the program's time zone ``tz``."""

    def cell(value: Any) -> str:
        if isinstance(value, pd.Timestamp):
            return local_time(value, tz)
        if isinstance(value, float):
            if math.isnan(value):
                return "–"
            return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
        return str(value)

    shown = table.rename(columns=_label)
    formatters = {c: cell for c in shown.columns}
    html: str = shown.to_html(index=False, formatters=formatters, border=0, classes="table")
    return html


# Money named as in 'lightson simulate' and 'lightson settle' (docs/nomenclature.md).
LABELS = {
    "dr_payment_usd": "DR share $",
    "dr_payment_usd_per_site": "DR share $ per site",
}


def _label(column: str) -> str:
    """A column name as a header people read (the exported tables keep the names)."""
    if column in LABELS:
        return LABELS[column]
    words = column.split("_")
    units = {"usd": "$", "kwh": "kWh", "kw": "kW", "dr": "DR", "v2x": "V2X", "id": ""}
    return " ".join(units.get(w, w) for w in words).strip()


def figure_uri(
    plot: Callable[[Any, pd.DataFrame], None], table: pd.DataFrame, panels: int = 1
) -> str:
    """A plot as a PNG data URI (the HTML file stands alone, and WeasyPrint reads it); with
    ``panels`` > 1, ``plot`` gets that many axes side by side."""
    figure = Figure(figsize=(7.5, 3.2), dpi=110)  # no pyplot: no global figure state
    plot(figure.subplots(1, panels) if panels > 1 else figure.subplots(), table)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plot_events(axis: Any, events: pd.DataFrame, tz: ZoneInfo) -> None:
    if not len(events):
        axis.text(0.5, 0.5, "no events in this run", ha="center", transform=axis.transAxes)
        return
    dated = events.dropna(subset=["start"])
    bottom: dict[Any, float] = {}  # events of one window stack
    for program_id, group in dated.groupby("program_id"):
        days = list(group["start"].dt.tz_convert(tz).dt.tz_localize(None).dt.floor("D"))
        below = [bottom.get(day, 0.0) for day in days]
        axis.bar(days, group["program_kw"], width=0.8, bottom=below, label=program_id)
        for day, kw in zip(days, group["program_kw"], strict=True):
            bottom[day] = bottom.get(day, 0.0) + float(kw)
    axis.axhline(EXPECTED_EVENT_KW, color="#c0392b", linestyle="--", label="1 MW expected")
    axis.set_ylabel("program kW in the event")
    axis.legend(loc="upper left", fontsize=7)
    axis.tick_params(axis="x", labelsize=7)


def _plot_value(axis: Any, sites: pd.DataFrame) -> None:
    column = "net_value_usd" if "net_value_usd" in sites else "dr_payment_usd"
    kinds = [k for k in KINDS if k in set(sites["kind"])]
    for i, kind in enumerate(kinds):
        values = sites.loc[sites["kind"] == kind, column]
        axis.scatter([i] * len(values), values, color=KIND_COLORS[kind], alpha=0.7, s=18)
        axis.hlines(values.median(), i - 0.3, i + 0.3, color="black", linewidth=1)
    axis.set_xticks(range(len(kinds)), kinds)
    axis.axhline(0, color="grey", linewidth=0.6)
    axis.set_ylabel(
        "net value vs unmanaged, $"
        if column == "net_value_usd"
        else "ConnectedSolutions payment, $"
    )


EVENT_SITE_PANELS = (("homes", ("home",)), ("C&I (businesses, schools)", ("business", "school")))


def event_site_groups(events: pd.DataFrame) -> list[tuple[str, list[str], list[pd.Series]]]:
    """The site-events' kW apart for homes and for C&I: each panel's title, its kinds
    present, and their kW (a home's few kW and a school's hundreds on one axis hide both)."""
    groups = []
    for title, kinds in EVENT_SITE_PANELS:
        present = [k for k in kinds if k in set(events["kind"])]
        groups.append(
            (title, present, [events.loc[events["kind"] == k, "delivered_kw"] for k in present])
        )
    return groups


def _plot_event_sites(axes: Any, events: pd.DataFrame) -> None:
    for axis, (title, kinds, values) in zip(axes, event_site_groups(events), strict=True):
        axis.set_title(title, fontsize=9)
        if not kinds:
            axis.text(0.5, 0.5, "no site-events", ha="center", transform=axis.transAxes)
            continue
        axis.hist(
            values,
            bins=20,
            stacked=True,
            color=[KIND_COLORS[k] for k in kinds],
            label=[f"{k} ({len(v)})" for k, v in zip(kinds, values, strict=True)],
        )
        axis.set_xlabel("kW a site delivered in an event", fontsize=8)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("site-events")


def _plot_backup(axis: Any, backup: pd.DataFrame) -> None:
    positions = range(len(backup))
    axis.bar(positions, backup["outage_hours"], color="#bbbbbb", label="islanded")
    axis.bar(positions, backup["hours_full_load"], color="#3b9b4a", label="whole building served")
    axis.set_xticks(positions, backup["site_id"], rotation=45, ha="right", fontsize=7)
    axis.set_ylabel("hours")
    axis.legend(fontsize=8)


def _plot_equipment(axis: Any, equipment: pd.DataFrame) -> None:
    labels = [
        f"{row.vehicle_model} / {row.charger_model} ({row.protocol})"
        for row in equipment.itertuples()
    ]
    axis.barh(range(len(equipment)), equipment["followed_share"].fillna(0.0), color="#3b9b4a")
    axis.set_yticks(range(len(equipment)), labels, fontsize=6)
    axis.set_xlim(0, 1)
    axis.set_xlabel("share of readings within 1 kW of the setpoint")


def _plot_controllers(axis: Any, controllers: pd.DataFrame) -> None:
    axis.bar(controllers["controller"], controllers["net_cost_usd"], color="#2a7ab0")
    axis.set_ylabel("net cost of the run, $")

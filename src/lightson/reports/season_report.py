"""A live season's report from the tables ``lightson.services.season_report`` reads out of
the operations database: events and what the sites delivered, the equipment matrix, data
completeness and the settlement, with plots (``docs/reports.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from lightson.reports.program_report import EXPECTED_EVENT_KW, figure_uri, html_table, template


def write_season_report(
    program: str,
    since: datetime,
    now: datetime,
    tables: Mapping[str, pd.DataFrame],
    out: Path,
    pdf: bool = False,
) -> list[Path]:
    """``out`` (HTML), the tables as CSV and Parquet under ``<out stem>_tables/``, and with
    ``pdf`` a PDF of the page. Returns the paths written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.with_name(out.stem + "_tables")
    folder.mkdir(exist_ok=True)
    written = [out]
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)
        table.to_parquet(folder / f"{name}.parquet", index=False)
        written += [folder / f"{name}.csv", folder / f"{name}.parquet"]
    page = jinja2.Environment(
        loader=jinja2.FunctionLoader(template), autoescape=True, undefined=jinja2.StrictUndefined
    ).get_template("season.html.j2")
    events = tables["events"]
    html = page.render(
        program=program,
        since=since.isoformat(timespec="minutes"),
        now=now.isoformat(timespec="minutes"),
        events_count=len(events),
        events_over=int((events["program_kw"] > EXPECTED_EVENT_KW).sum()) if len(events) else 0,
        figures={
            "events": figure_uri(_plot_events, events) if len(events) else None,
            "equipment": figure_uri(_plot_equipment, tables["equipment"])
            if len(tables["equipment"])
            else None,
        },
        tables={name: html_table(table) for name, table in tables.items()},
    )
    out.write_text(html)
    if pdf:
        import weasyprint

        path = out.with_suffix(".pdf")
        weasyprint.HTML(string=html, base_url=str(out.parent)).write_pdf(path)
        written.insert(1, path)
    return written


def _plot_events(axis: Any, events: pd.DataFrame) -> None:
    axis.bar(range(len(events)), events["program_kw"], color="#2a7ab0")
    axis.axhline(EXPECTED_EVENT_KW, color="#c0392b", linestyle="--", label="1 MW expected")
    axis.set_xticks(range(len(events)), events["event_id"], rotation=45, ha="right", fontsize=6)
    axis.set_ylabel("kW the sites delivered")
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

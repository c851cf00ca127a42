"""``lightson forecast score``: each forecaster scored on held-out weeks of a site's load,
from the twin or from the operations database's site meter (#16)."""

from __future__ import annotations

from datetime import timedelta

import click
import numpy as np

from lightson.cli.app import friendly_errors, main, parse_start, program_argument
from lightson.config import load_program
from lightson.domain.errors import ConfigError
from lightson.domain.time import TimeGrid
from lightson.forecast.history import LEVELS, History
from lightson.forecast.scoring import Score, score


@main.group("forecast")
def forecast_group() -> None:
    """Load and PV forecasters (profile, recent-days, learned)."""


@forecast_group.command("score")
@program_argument()
@click.option("--site", "site_id", required=True, help="Site id in the program file.")
@click.option("--db", default=None, help="The operations database (its site meter history).")
@click.option(
    "--days",
    type=click.IntRange(9, 366),
    default=None,
    help="Instead of --db: this many days of the twin's truth before --end.",
)
@click.option(
    "--end",
    default="2026-08-01T00:00",
    show_default=True,
    help="End of the history (program-local; with --db, default: now).",
)
@click.option("--weeks", type=click.IntRange(1, 52), default=2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--truth-shift-hours",
    type=float,
    default=0.0,
    show_default=True,
    help="With --days: a building of its own (the true load is the profile read later).",
)
@friendly_errors
def score_command(
    program_file: str,
    site_id: str,
    db: str | None,
    days: int | None,
    end: str,
    weeks: int,
    seed: int,
    truth_shift_hours: float,
) -> None:
    """Score each forecaster on the last --weeks of a site's load: MAE and pinball loss
    (10/50/90 %), retrained before each held-out day."""
    program = load_program(program_file)
    site = program.site(site_id)
    if (db is None) == (days is None):
        raise ConfigError.at("--db", "give either --db URL or --days N")
    last = parse_start(end, program, "--end")
    if db is not None:
        from lightson.services.forecasts import meter_history
        from lightson.store import Store

        history = meter_history(Store(db), program, site.site_id, last)
    else:
        from lightson.sim.world import WorldOptions, build_world

        n = int(days or 0) * round(timedelta(days=1) / program.step)
        first = last - n * program.step
        world = build_world(
            program, site, first, n, 1, seed, WorldOptions("profile", truth_shift_hours)
        )
        history = History(TimeGrid(first, n, program.step), world.load_kw[:n], np.full(n, np.nan))
    click.echo(_table(score(program, site, history, weeks)))


def _table(scores: list[Score]) -> str:
    head = f"{'forecaster':<12} {'days':>4} {'MAE kW':>8}" + "".join(
        f" {'pinball ' + format(q, '.0%'):>12}" for q in LEVELS
    )
    lines = [head]
    for s in scores:
        lines.append(
            f"{s.forecaster:<12} {s.days:>4} {s.mae_kw:>8.2f}"
            + "".join(f" {s.pinball_kw[q]:>12.2f}" for q in LEVELS)
        )
    return "\n".join(lines)

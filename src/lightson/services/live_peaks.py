"""A site's billing-month import peak as the live loop knows it (``services.live``): what a
demand charge is billed on, read from what was recorded (``services.measured``) one
interval at a time, so the plan does not buy a new peak above one already paid for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from lightson.domain.assets import Program, Site
from lightson.domain.time import TimeGrid
from lightson.services.measured import measured_net_kw
from lightson.store import Store

LOGGER = logging.getLogger("lightson.live")


@dataclass
class MonthPeak:
    """A site's billing-month import peak: the highest 15-minute net import among the
    month's intervals that ended before ``through``."""

    month: tuple[int, int]  # (year, month), program time
    kw: float
    through: datetime


def month_peak(
    store: Store,
    program: Program,
    site: Site,
    known: MonthPeak | None,
    now: datetime,
    done: datetime,
) -> MonthPeak:
    """``known`` brought up to the intervals that ended by ``done`` (the month's first one
    in a new month, or with nothing known yet: a restart reads the whole month so far). A
    failed reading keeps what was known, to be tried again at the next tick: the peak must
    not stop the site's control."""
    local = now.astimezone(program.timezone)
    peak = known
    if peak is None or peak.month != (local.year, local.month):
        first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        peak = MonthPeak((local.year, local.month), 0.0, first.astimezone(UTC))
    if done > peak.through:
        step = program.step
        grid = TimeGrid(peak.through, int((done - peak.through) / step), step)
        try:
            net_kw = measured_net_kw(store, program, site, grid)
        except Exception as error:  # the peak must not stop the site's control
            LOGGER.warning("%s: month's peak not read: %s", site.site_id, error)
            return peak
        peak.kw = max(peak.kw, float(net_kw.max(initial=0.0)))
        peak.through = done
    return peak

"""The live season's report over HTTP (``GET /api/report``; ``docs/reports.md``), made in a
process of its own, one at a time: the app's ``state.report_running`` lock is held while
one is being made."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from lightson.api.deps import ADMIN, Ops, Who, require
from lightson.api.errors import HttpError
from lightson.services.season_report import season_report_bytes

REPORT_TIMEOUT_S = 600.0  # the demo's database takes about 6 s; a season of readings more
MAX_REPORT_DAYS = 400  # a season and then some: GET /api/report reads every reading in it

router = APIRouter(tags=["program"])


@router.get("/api/report", response_class=HTMLResponse)
def season_report(
    request: Request,
    who: Who,
    ops: Ops,
    days: Annotated[int, Query(ge=1, le=MAX_REPORT_DAYS)] = 30,
    season: Annotated[int | None, Query(ge=1901, le=2199)] = None,
    as_: Annotated[Literal["html", "pdf"], Query(alias="format")] = "html",
) -> Response:
    """The live season's report (``lightson report --db``): the last ``days`` of program
    time, or the calendar year ``season``, as one HTML page with its figures inside, or as
    a PDF (admin: it names every site and vehicle). Made in a process of its own, one at a
    time (429 while one is being made), so that reading a season of readings takes no
    time or memory from the chargers' connections and the control loop."""
    require(ops, who, ADMIN)
    now = ops.clock.now()
    since = now - timedelta(days=days)
    if season is not None:
        since = datetime(season, 1, 1, tzinfo=ops.program.timezone)
        now = min(now, datetime(season + 1, 1, 1, tzinfo=ops.program.timezone))
    events = ops.events()
    rules = {r.program_id: r for r in events.rules}
    running: threading.Lock = request.app.state.report_running
    if not running.acquire(blocking=False):
        raise HttpError(429, "a report is being made; ask again when it is done")
    try:
        # A pool's exit terminates its worker: a report that hangs (a locked database)
        # is stopped at the timeout rather than holding the lock for good.
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            made = pool.apply_async(
                season_report_bytes,
                (ops.store.url, ops.program, events.book(), rules, since, now, as_ == "pdf"),
            )
            try:
                content = made.get(timeout=REPORT_TIMEOUT_S)
            except multiprocessing.TimeoutError:
                raise HttpError(
                    504, f"the report took over {REPORT_TIMEOUT_S:.0f} s; ask for fewer days"
                ) from None
    finally:
        running.release()
    if as_ == "pdf":
        return Response(content, media_type="application/pdf")
    return HTMLResponse(content.decode("utf-8"))

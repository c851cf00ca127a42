"""The live report and settlement read the 15-minute rollups (store.rollups): the figures are
the ones the raw samples give, before and after the rollups are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from lightson.config import load_program
from lightson.domain.time import SimClock
from lightson.services.events import EventService
from lightson.services.measured import held_average, measured_season
from lightson.services.settlement import _raw_discharge_kwh, called_events, metered_from_store
from lightson.store import Store, rollups
from lightson.store import schema as db

T = datetime(2026, 7, 15, 19, tzinfo=UTC)  # 15:00 EDT: the event starts
EVENT = "cs-daily-2026-07-15"
STATIONS = ("depot-evse1", "depot-evse2")


def _irregular_day(store: Store) -> None:
    """Both depot chargers from 12:00 to 22:00 EDT, a reading every 5 s to 20 min (gaps
    longer than the 15-minute hold included), powers -60 to 60 kW, a SoC now and then."""
    EventService(store, SimClock(T - timedelta(days=1))).submit(
        {
            "event_id": EVENT,
            "program_id": "cs-ci-daily",
            "start": T.isoformat(),
            "end": (T + timedelta(hours=3)).isoformat(),
        }
    )
    rng = np.random.default_rng(18)
    rows = []
    for station in STATIONS:
        at = T - timedelta(hours=3)
        while at < T + timedelta(hours=7):
            soc = round(float(rng.uniform(0.2, 0.9)), 3) if rng.random() < 0.2 else None
            kw = round(float(rng.uniform(-60, 60)), 2) if rng.random() < 0.9 else None
            row = {"station_id": station, "evse_id": 1, "at": at, "power_kw": kw, "soc": soc}
            rows.append((db.meter_samples, row))
            at += timedelta(seconds=int(rng.choice([5, 10, 60, 300, 1200])))
    store.write(rows).result(60)


def _raw_power_kw(store: Store, station: str, edges: np.ndarray) -> np.ndarray:
    """The held power per interval straight from the samples (the pre-rollup reading)."""
    samples = db.meter_samples
    start = datetime.fromtimestamp(edges[0], UTC) - rollups.HOLD
    with store.engine.connect() as connection:
        frame = pd.read_sql(
            select(samples.c.at, samples.c.power_kw)
            .where(samples.c.station_id == station, samples.c.at >= start)
            .where(samples.c.power_kw.is_not(None))
            .order_by(samples.c.at),
            connection,
        )
    at_s = pd.to_datetime(frame["at"], utc=True).map(lambda t: t.timestamp()).to_numpy(float)
    average, _ = held_average(at_s, frame["power_kw"].to_numpy(float), edges, 900.0)
    return average


def _kept(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(db.meter_rollups)) or 0)


def test_report_and_settlement_from_rollups_equal_the_raw_samples(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = load_program("example")
    store = Store(database_url)
    try:
        _irregular_day(store)
        book = EventService(store, SimClock(T + timedelta(days=1))).book()
        since, until = T - timedelta(hours=3), T + timedelta(hours=7)
        called = called_events(book.events.values(), until)
        with monkeypatch.context() as patch:
            patch.setattr(rollups, "SEAL_AFTER", timedelta(days=10**6))  # nothing sealed
            unkept = measured_season(store, program, book, since, until)
            unkept_metered = metered_from_store(store, program, called)
        assert _kept(store) == 0
        first = measured_season(store, program, book, since, until)  # computes and keeps
        assert _kept(store) > 0
        kept = measured_season(store, program, book, since, until)  # reads the kept ones
        metered = metered_from_store(store, program, called)
        depot = next(s for s in program.sites if s.site_id == "school-beverly")
        raw_kwh = _raw_discharge_kwh(store, [c.evse_id for c in depot.chargers], called[0], [])
        run = next(r for r in first.run.runs if r.site_id == "school-beverly")
        edges = np.array([(run.start + k * run.step).timestamp() for k in range(run.n_steps + 1)])
        raw_power = [_raw_power_kw(store, station, edges) for station in run.evse_ids]
    finally:
        store.close()
    key = ("school-beverly", EVENT)
    assert raw_kwh is not None and abs(raw_kwh) > 1.0
    assert metered[key].net_discharge_kwh == pytest.approx(raw_kwh, rel=1e-9)
    assert unkept_metered[key].net_discharge_kwh == pytest.approx(raw_kwh, rel=1e-9)
    runs = [
        next(r for r in season.run.runs if r.site_id == "school-beverly")
        for season in (unkept, first, kept)
    ]
    assert len(raw_power) == 2 and np.abs(raw_power).max() > 1.0
    for i, power in enumerate(raw_power):
        assert runs[0].power_kw[i] == pytest.approx(power, rel=1e-12, abs=1e-12)
    same = {"rel": 1e-12, "abs": 1e-9}  # the same figures, to the last bits of a float sum
    for run in runs[1:]:
        assert run.power_kw == pytest.approx(runs[0].power_kw, **same)
        assert np.array_equal(run.energy_kwh, runs[0].energy_kwh)
        assert run.net_kw == pytest.approx(runs[0].net_kw, **same)
    for season in (first, kept):
        assert [k.discharged_kwh for k in season.kpis] == pytest.approx(
            [k.discharged_kwh for k in unkept.kpis], **same
        )
        assert [e.delivered_kw for e in season.events] == pytest.approx(
            [e.delivered_kw for e in unkept.events], **same
        )

"""Green Button intervals into a site's meter history: quarter-hour readings whose kWh are the
file's (hand sums in tests/data/greenbutton/README.md), the same rows when imported again (on
SQLite and PostgreSQL), nothing stored from a file with an implausible or unfinished
interval, and the profile learned from the stored history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lightson.datasets.greenbutton import GreenButtonData, IntervalEnergy, read_green_button
from lightson.domain.assets import Program, Site
from lightson.domain.errors import DataError
from lightson.services.load_import import import_load, site_profile, stored_intervals
from lightson.services.site_meter import metered_load_kwh
from lightson.store import Store
from lightson.store import schema as db

DATA = Path(__file__).parents[1] / "data" / "greenbutton"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def home(example_program: Program) -> Site:
    return next(s for s in example_program.sites if s.site_id == "home-lowell")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'import.db'}")
    yield opened
    opened.close()


def _rows(store: Store) -> list[tuple[str, datetime, float]]:
    return [(r["site_id"], r["at"], r["load_kw"]) for r in store.rows(db.site_meter)]


def test_importing_twice_writes_the_same_rows(database_url: str, home: Site) -> None:
    store = Store(database_url)
    try:
        data = read_green_button(DATA / "eversource-15min.csv")
        done = import_load(store, home, data, NOW)
        first = _rows(store)
        again = import_load(store, home, data, NOW + timedelta(hours=1))
        assert done.readings == again.readings == len(first) == 292
        assert _rows(store) == first
        start, end = datetime(2025, 11, 1, 4, tzinfo=UTC), datetime(2025, 11, 4, 5, tzinfo=UTC)
        energy, _, covered_h = metered_load_kwh(store, "home-lowell", start, end)
        assert energy == pytest.approx(85.0, abs=1e-9)
        assert covered_h == pytest.approx(73.0)  # 3 days of 24 h and the repeated hour
    finally:
        store.close()


def test_an_hourly_file_becomes_four_quarter_hour_readings_an_hour(
    store: Store, home: Site
) -> None:
    data = read_green_button(DATA / "national-grid-hourly.csv")
    done = import_load(store, home, data, NOW)
    assert done.readings == 71 * 4
    rows = _rows(store)
    assert rows[:4] == [
        ("home-lowell", datetime(2025, 3, 8, 5, tzinfo=UTC) + timedelta(minutes=15 * q), 1.0)
        for q in range(4)
    ]
    energy, _, _ = metered_load_kwh(
        store, "home-lowell", datetime(2025, 3, 8, tzinfo=UTC), datetime(2025, 3, 12, tzinfo=UTC)
    )
    assert energy == pytest.approx(83.0, abs=1e-9)
    assert sum(i.energy_kwh for i in stored_intervals(store, "home-lowell")) == pytest.approx(83.0)


def test_an_implausible_interval_stores_nothing(store: Store, home: Site) -> None:
    """home-lowell's service is 48 kW: an hour of 80 kWh (80 kW) is more than 1.5 × that
    (a file in Wh read as kWh, or another site's)."""
    start = datetime(2025, 7, 1, 4, tzinfo=UTC)
    data = GreenButtonData(
        "big.csv",
        (
            IntervalEnergy(start, timedelta(hours=1), 2.0),
            IntervalEnergy(start + timedelta(hours=1), timedelta(hours=1), 80.0),
        ),
    )
    with pytest.raises(DataError, match=r"big\.csv: the interval at 2025-07-01T05:00:00\+00:00"):
        import_load(store, home, data, NOW)
    assert _rows(store) == []


def test_an_interval_not_over_is_refused(store: Store, home: Site) -> None:
    data = GreenButtonData("x.xml", (IntervalEnergy(NOW, timedelta(minutes=15), 1.0),))
    with pytest.raises(DataError, match="is not over yet"):
        import_load(store, home, data, NOW + timedelta(minutes=10))
    assert _rows(store) == []


def test_an_interval_of_20_minutes_cannot_be_quarter_hours(store: Store, home: Site) -> None:
    data = GreenButtonData(
        "x.xml", (IntervalEnergy(datetime(2025, 1, 1, tzinfo=UTC), timedelta(minutes=20), 1.0),)
    )
    with pytest.raises(DataError, match="not a multiple of 15 minutes"):
        import_load(store, home, data, NOW)


def test_the_profile_is_learned_from_the_whole_stored_history(store: Store, home: Site) -> None:
    """Both CSV samples, binned in standard time (EST): the first hour of 1 November (00:00
    EDT) is 31 October's last, so October has data too."""
    import_load(store, home, read_green_button(DATA / "eversource-15min.csv"), NOW)
    import_load(store, home, read_green_button(DATA / "national-grid-hourly.csv"), NOW)
    learned = site_profile(store, home, "home-lowell-load")
    assert learned.months_with_data == [3, 10, 11]
    # November, weekday (Monday 3rd), 16:00 EST: 0.5 kWh a quarter = 2 kW; 03:00: 1 kW
    assert learned.mean_kw[10, 0, 16] == pytest.approx(2.0)
    assert learned.mean_kw[10, 0, 3] == pytest.approx(1.0)
    # March, weekday (Monday 10th, EDT): 17:00-20:59 EDT is 16:00-19:59 EST at 2 kW
    assert learned.mean_kw[2, 0, 16] == pytest.approx(2.0)
    assert learned.mean_kw[2, 0, 20] == pytest.approx(1.0)
    assert learned.profile.name == "home-lowell-load"

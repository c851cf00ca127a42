"""Green Button reading: the hand-made samples of tests/data/greenbutton (README.md there has
the hand sums), daylight-saving days in local clock time, and errors that name the file, the
line or element, and the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightson.datasets.greenbutton import (
    parse_espi_xml,
    parse_green_button_csv,
    read_green_button,
)
from lightson.domain.errors import DataError

DATA = Path(__file__).parents[1] / "data" / "greenbutton"
HEADER = "TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_eversource_15_minute_csv_with_the_fall_back_hour_twice() -> None:
    data = read_green_button(DATA / "eversource-15min.csv")
    assert len(data.intervals) == 292  # 3 × 96 + the 4 repeated quarter-hours
    assert data.energy_kwh == pytest.approx(85.0, abs=1e-9)  # 28 + 29 + 28
    assert data.skipped == {}
    assert data.intervals[0].start == utc(2025, 11, 1, 4)  # 00:00 EDT
    assert all(i.duration == timedelta(minutes=15) for i in data.intervals)
    starts = [i.start for i in data.intervals]
    # 01:00 EDT is 05:00 UTC, the second 01:00 (EST) is 06:00 UTC: 8 quarter-hours, in order
    assert starts[starts.index(utc(2025, 11, 2, 5)) :][:8] == [
        utc(2025, 11, 2, 5) + timedelta(minutes=15 * q) for q in range(8)
    ]
    assert starts == sorted(set(starts))
    assert data.intervals[-1].start == utc(2025, 11, 4, 4, 45)  # 23:45 EST on Monday


def test_national_grid_hourly_csv_skips_the_empty_spring_forward_hour() -> None:
    data = read_green_button(DATA / "national-grid-hourly.csv")
    assert len(data.intervals) == 71
    assert data.energy_kwh == pytest.approx(83.0, abs=1e-9)  # 28 + 27 + 28
    assert data.skipped == {"in the spring-forward gap": 1}
    starts = [i.start for i in data.intervals]
    # Sunday 9 March: 1:00 EST (06:00 UTC) is followed by 3:00 EDT (07:00 UTC)
    assert utc(2025, 3, 9, 6) + timedelta(hours=1) == utc(2025, 3, 9, 7)
    assert starts[starts.index(utc(2025, 3, 9, 6)) + 1] == utc(2025, 3, 9, 7)
    evening = [i.energy_kwh for i in data.intervals if i.start == utc(2025, 3, 8, 22)]
    assert evening == [2.0]  # 17:00 EST on Saturday


def test_espi_feed_reads_delivered_energy_and_leaves_export_out() -> None:
    data = read_green_button(DATA / "espi-hourly.xml")
    assert len(data.intervals) == 48
    assert data.energy_kwh == pytest.approx(72.0, abs=1e-9)  # 2 × (20 × 1.2 + 4 × 3)
    assert data.skipped == {"reverse flow (export)": 3}
    assert data.intervals[0].start == utc(2025, 7, 14, 4)
    assert data.intervals[15].energy_kwh == pytest.approx(3.0)  # 15:00 EDT
    assert data.intervals[14].energy_kwh == pytest.approx(1.2)


def _feed(reading_types: str, blocks: str) -> bytes:
    return f"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">
{reading_types}{blocks}</feed>""".encode()


def _reading_type(href: str, uom: int = 72, multiplier: int = 0, flow: int = 1) -> str:
    return f"""<entry><link rel="self" href="{href}"/><content><espi:ReadingType>
<espi:flowDirection>{flow}</espi:flowDirection><espi:intervalLength>900</espi:intervalLength>
<espi:powerOfTenMultiplier>{multiplier}</espi:powerOfTenMultiplier><espi:uom>{uom}</espi:uom>
</espi:ReadingType></content></entry>"""


def _block(href: str, readings: str) -> str:
    return f"""<entry><link rel="self" href="{href}"/><content><espi:IntervalBlock>
{readings}</espi:IntervalBlock></content></entry>"""


def _reading(start: int, value: str, duration: str = "<espi:duration>900</espi:duration>") -> str:
    return (
        f"<espi:IntervalReading><espi:timePeriod>{duration}<espi:start>{start}</espi:start>"
        f"</espi:timePeriod><espi:value>{value}</espi:value></espi:IntervalReading>"
    )


def test_espi_multiplier_and_the_reading_types_interval_length() -> None:
    """value × 10^powerOfTenMultiplier Wh: 2500 at −3 is 2.5 Wh; a reading without a
    duration lasts the ReadingType's intervalLength (900 s)."""
    feed = _feed(
        _reading_type("/rt/1", multiplier=-3),
        _block("/mr/1/ib/1", _reading(1735689600, "2500") + _reading(1735690500, "500000", "")),
    )
    data = parse_espi_xml(feed, "x.xml")
    assert [i.energy_kwh for i in data.intervals] == pytest.approx([0.0025, 0.5])
    assert [i.duration for i in data.intervals] == [timedelta(minutes=15)] * 2
    assert data.intervals[0].start == utc(2025, 1, 1)


def test_espi_blocks_follow_their_meter_readings_reading_type() -> None:
    """Two ReadingTypes: each block takes the one its MeterReading links to (its address is
    under the MeterReading's)."""
    meter = """<entry><link rel="self" href="/up/MeterReading/{0}"/>
<link rel="related" href="/rt/{0}"/><content><espi:MeterReading/></content></entry>"""
    feed = _feed(
        _reading_type("/rt/a", multiplier=3) + _reading_type("/rt/b", uom=38),
        meter.format("a")
        + meter.format("b")
        + _block("/up/MeterReading/b/IntervalBlock/1", _reading(1735689600, "7"))
        + _block("/up/MeterReading/a/IntervalBlock/1", _reading(1735689600, "2")),
    )
    data = parse_espi_xml(feed, "x.xml")
    assert [i.energy_kwh for i in data.intervals] == [2.0]  # 2 × 10^3 Wh
    assert data.skipped == {"uom 38 (not Wh)": 1}


def test_a_reading_type_inside_its_meter_reading_counts() -> None:
    """Some feeds nest the ReadingType in the MeterReading entry instead of linking it."""
    meter = """<entry><link rel="self" href="/up/MeterReading/{0}"/><content><espi:MeterReading>
<espi:ReadingType><espi:powerOfTenMultiplier>{1}</espi:powerOfTenMultiplier>
<espi:uom>72</espi:uom></espi:ReadingType></espi:MeterReading></content></entry>"""
    feed = _feed(
        meter.format("a", 0) + meter.format("b", 3),
        _block("/up/MeterReading/b/IntervalBlock/1", _reading(1735689600, "2"))
        + _block("/up/MeterReading/a/IntervalBlock/1", _reading(1735690500, "500")),
    )
    data = parse_espi_xml(feed, "x.xml")
    assert [i.energy_kwh for i in data.intervals] == [2.0, 0.5]


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (
            _feed(_reading_type("/rt/1"), _block("/ib/1", _reading(1735689600, "12x"))),
            "x.xml: entry 2 (IntervalBlock /ib/1), IntervalReading 1: value: '12x' is not an "
            "integer",
        ),
        (
            _feed(_reading_type("/rt/1"), _block("/ib/1", "<espi:IntervalReading/>")),
            "IntervalReading 1: timePeriod/start: missing",
        ),
        (
            _feed(_reading_type("/rt/1") + _reading_type("/rt/2"), _block("/ib/1", "")),
            "x.xml: entry 3 (IntervalBlock /ib/1): cannot tell its espi:ReadingType",
        ),
        (_feed(_reading_type("/rt/1"), ""), "x.xml: no espi:IntervalBlock"),
        (
            _feed(_reading_type("/rt/1", flow=19), _block("/ib/1", _reading(1735689600, "1"))),
            "no interval of energy delivered to the premises (1 reverse flow (export))",
        ),
        (b'<!DOCTYPE feed [<!ENTITY a "b">]><feed/>', "declares a DOCTYPE or ENTITY"),
        (b"<feed><entry></feed>", "x.xml:1:"),
    ],
)
def test_espi_errors_name_the_element_and_field(feed: bytes, message: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_espi_xml(feed, "x.xml")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("Electric usage,2025-07-01,00:00,00:14,abc,kWh,,\n", "u.csv:2: USAGE: 'abc' is not"),
        ("Electric usage,2025-07-01,00:00,00:14,1,therms,,\n", "u.csv:2: UNITS: 'therms'"),
        ("Electric usage,2025-13-01,00:00,00:14,1,kWh,,\n", "u.csv:2: DATE: '2025-13-01'"),
        ("Electric usage,2025-07-01,0:7,00:14,1,kWh,,\n", "u.csv:2: START TIME: '0:7'"),
        ("Electric usage,2025-07-01,00:00,23:59,1,kWh,,\n", "u.csv:2: END TIME: 00:00-23:59"),
        (
            "Electric usage,2025-03-09,02:00,02:59,0.4,kWh,,\n",
            "u.csv:2: START TIME: 2025-03-09 02:00 does not exist in America/New_York",
        ),
        (
            "Electric usage,2025-07-01,00:00,00:14,1,kWh,,\n" * 2,
            "u.csv:3: START TIME: 2025-07-01 00:00 appears more than it can",
        ),
        ("", "no interval of energy delivered"),
    ],
)
def test_csv_errors_name_the_line_and_field(rows: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        parse_green_button_csv(HEADER + rows, "u.csv")
    assert message in str(caught.value)


def test_csv_header_without_usage_is_refused_naming_the_column() -> None:
    with pytest.raises(DataError, match=r"u.csv:3: header: no column USAGE"):
        parse_green_button_csv("Name,X\n\nTYPE,DATE,START TIME,END TIME,UNITS\n", "u.csv")
    with pytest.raises(DataError, match="no header line"):
        parse_green_button_csv("Date,kWh\n2025-01-01,3\n", "u.csv")


def test_csv_usage_column_with_unit_exclusive_end_times_and_export() -> None:
    """``USAGE (kWh)`` carries the unit; an END TIME of 01:00 ends the hour; a negative usage
    (export) and a gas row are left out, counted."""
    text = (
        "TYPE,DATE,START TIME,END TIME,USAGE (kWh),COST,NOTES\n"
        "Electric usage,2025-07-01,00:00,01:00,1.5,$0.4,\n"
        "Electric usage,2025-07-01,01:00,02:00,-0.5,$0.0,\n"
        "Natural gas usage,2025-07-01,00:00,23:59,3,$2,\n"
        'Electric usage,2025-07-01,23:00,00:00,"1,000.25",$1,\n'
    )
    data = parse_green_button_csv(text, "u.csv")
    assert [(i.start, i.duration, i.energy_kwh) for i in data.intervals] == [
        (utc(2025, 7, 1, 4), timedelta(hours=1), 1.5),
        (utc(2025, 7, 2, 3), timedelta(hours=1), 1000.25),
    ]
    assert data.skipped == {"negative usage (export)": 1, "type 'Natural gas usage'": 1}


def test_watt_hours_are_read_as_kwh() -> None:
    data = parse_green_button_csv(HEADER + "Electric usage,7/1/25,0:00,0:14,250,Wh,,\n", "u.csv")
    assert data.energy_kwh == pytest.approx(0.25)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv: cannot read"):
        read_green_button(tmp_path / "missing.csv")


def test_the_bundled_sample_is_the_tests_sample() -> None:
    bundled = resources.files("lightson") / "examples" / "greenbutton-sample.csv"
    assert bundled.read_bytes() == (DATA / "eversource-15min.csv").read_bytes()


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(["2025-03-08", "2025-03-09", "2025-06-30", "2025-11-01", "2025-11-02"]),
    st.integers(min_value=1, max_value=3),
    st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=300),
)
def test_any_local_clock_series_reads_back_its_instants_and_energy(
    first_day: str, days: int, centi_kwh: list[int]
) -> None:
    """Quarter-hours written as a utility writes them (local clock times, the fall-back hour
    twice, the spring-forward hour absent) read back as the same UTC instants, in order,
    with the same energy."""
    tz = ZoneInfo("America/New_York")
    start = datetime.fromisoformat(first_day).replace(tzinfo=tz).astimezone(UTC)
    end = (datetime.fromisoformat(first_day) + timedelta(days=days)).replace(tzinfo=tz)
    instants, rows = [], []
    at = start
    while at < end.astimezone(UTC):
        local = at.astimezone(tz)
        kwh = centi_kwh[len(instants) % len(centi_kwh)] / 100
        finish = local + timedelta(minutes=14)
        rows.append(f"Electric usage,{local:%Y-%m-%d},{local:%H:%M},{finish:%H:%M},{kwh},kWh,,")
        instants.append((at, kwh))
        at += timedelta(minutes=15)
    data = parse_green_button_csv(HEADER + "\n".join(rows) + "\n", "u.csv", tz)
    assert [(i.start, i.energy_kwh) for i in data.intervals] == [(t, kwh) for t, kwh in instants]

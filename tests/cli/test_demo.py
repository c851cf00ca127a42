"""``lightson demo`` end to end, fast: the ma-2026 fleet over OCPP on loopback, two simulated
hours a second, through the start of the ConnectedSolutions event."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lightson.store import Store
from lightson.store import schema as db


def test_the_demo_runs_the_fleet_into_the_event(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--hours", "4.5"),
            *("--speed", "1800", "--port", "0", "--csms-port", "0", "--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    dashboard = next((line for line in out.splitlines() if "dashboard:" in line), out[:400])
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/#token=\S{40,}", out), dashboard
    assert "62 sites, 100 chargers as emulated OCPP stations" in out
    event_lines = [line for line in out.splitlines() if "ConnectedSolutions event" in line]
    assert event_lines, out
    delivered = re.search(
        r"Event: (\d+) of the 100 emulated chargers discharged\. The vehicles gave ([\d,]+) kWh",
        out,
    )
    assert delivered is not None, out
    assert int(delivered.group(1)) > 10 and int(delivered.group(2).replace(",", "")) > 100
    # What the story says came from the stations through the CSMS into the database.
    store = Store(f"sqlite:///{tmp_path / 'lightson-demo.db'}")
    try:
        sent = store.rows(db.setpoints_sent)
        assert any(row["power_kw"] < 0 and row["status"] == "Accepted" for row in sent)
        events = store.rows(db.transaction_events)
        assert len({row["station_id"] for row in events}) > 30
        # From the event on (the loop has timed a pass by then), a plugged vehicle's setpoint
        # never ran out before the next came: a gap is only ever a vehicle that left.
        by_station: dict[str, list[dict[str, object]]] = {}
        event_start = datetime(2026, 7, 15, 19, tzinfo=UTC)  # 15:00 EDT
        for row in sorted(sent, key=lambda r: r["sent_at"]):
            if row["sent_at"] < event_start:
                continue
            by_station.setdefault(row["station_id"], []).append(row)
        # Every vehicle plugged in all through the first hour of the event got setpoints in it.
        first_hour = (event_start, event_start + timedelta(hours=1))
        for station in {e["station_id"] for e in events}:
            mine = [e for e in events if e["station_id"] == station]
            started = [e["at"] for e in mine if e["event_type"] == "Started"]
            ended = [e["at"] for e in mine if e["event_type"] == "Ended"]
            there = any(t < first_hour[0] for t in started) and not any(
                first_hour[0] - timedelta(hours=6) < t < first_hour[1] for t in ended
            )
            if there:
                assert any(
                    first_hour[0] <= row["sent_at"] < first_hour[1]
                    for row in by_station.get(station, [])
                ), station
        for station, rows in by_station.items():
            for before, after in itertools.pairwise(rows):
                if after["sent_at"] > before["valid_until"]:
                    assert any(
                        e["station_id"] == station
                        and e["event_type"] == "Ended"
                        and before["sent_at"] <= e["at"] <= after["sent_at"]
                        for e in events
                    ), (station, before, after)
    finally:
        store.close()
    assert (tmp_path / "lightson-demo.log").exists()

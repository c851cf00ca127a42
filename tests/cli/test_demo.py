"""``lightson demo`` end to end, fast: the ma-2026 fleet over OCPP on loopback, two simulated
hours a second, through the start of the ConnectedSolutions event."""

from __future__ import annotations

import re
import subprocess
import sys
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
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/#token=\S{40,}", out)
    assert "62 sites, 100 chargers as emulated OCPP stations" in out
    event_lines = [line for line in out.splitlines() if "ConnectedSolutions event" in line]
    assert event_lines, out
    delivered = re.search(r"Event: the vehicles delivered ([\d,]+) kWh", out)
    assert delivered is not None and int(delivered.group(1).replace(",", "")) > 100
    # What the story says came from the stations through the CSMS into the database.
    store = Store(f"sqlite:///{tmp_path / 'lightson-demo.db'}")
    try:
        sent = store.rows(db.setpoints_sent)
        assert any(row["power_kw"] < 0 and row["status"] == "Accepted" for row in sent)
        assert len({row["station_id"] for row in store.rows(db.transaction_events)}) > 30
    finally:
        store.close()
    assert (tmp_path / "lightson-demo.log").exists()

"""``bench/bench_scale.py``'s machinery (#18), not its speed: a tiny run on loopback (one
gateway, five stations, a few seconds) exits 0 and says all five booted; with one station's
password wrong it exits non-zero and names how many booted, and prints no table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nats_support import NatsServer

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_scale.py"


def _bench(postgres_cluster: str, bus: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, str(BENCH), "--db", postgres_cluster, "--bus", bus),
            *("--stations", "5", "--gateways", "1", "--seconds", "5", "--period", "1"),
            *("--repeats", "1", "--sites", "0", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_a_tiny_run_boots_every_station_and_reports_its_point(
    nats_broker: NatsServer, postgres_cluster: str
) -> None:
    done = _bench(postgres_cluster, nats_broker.url)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "5 of 5 stations booted" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 | 5 | 1 |")]
    assert len(rows) == 1, done.stdout
    # 5 stations, one message a second for 5 s each, from a random phase: 4 to 5 each.
    messages = int(rows[0].split("|")[4])
    assert 20 <= messages <= 25, rows[0]


def test_a_station_that_cannot_connect_fails_the_run_and_names_the_count(
    nats_broker: NatsServer, postgres_cluster: str
) -> None:
    done = _bench(postgres_cluster, nats_broker.url, "--bad-passwords", "1")
    assert done.returncode == 1, done.stdout
    assert "FAILED: only 4 of 5 stations connected and booted (1 failed" in done.stderr
    assert "| gateways |" not in done.stdout  # no table for a smaller fleet than labelled

"""``lightson worker --engine ray`` as a process: it starts its own Ray on loopback in a
folder of its own, controls its sites, and on SIGTERM stops Ray and removes the folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nats_support import NatsServer

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout_s: float) -> list[str]:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s  # a bound on the wait, not a timed assertion
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} in the worker's output: {''.join(seen)[-2000:]}")


def test_a_ray_worker_starts_ray_and_stops_it_on_sigterm(
    nats_broker: NatsServer, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    # Short: Ray's socket paths live under TMPDIR and must fit in 107 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="lw-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": SRC}
    command = [sys.executable, "-m", "lightson.cli", "worker", "example"]
    command += ["--bus", nats_broker.url, "--db", f"sqlite:///{tmp_path / 'w.db'}"]
    command += ["--engine", "ray", "--ray-cpus", "1", "--lease-s", "3"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        _wait_for_line(process, "site LPs solved on Ray", 240.0)
        folders = [p.name for p in scratch.iterdir() if p.name.startswith("lightson-ray-")]
        assert len(folders) == 1  # Ray's session lives here, not in the shared /tmp/ray
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output[-2000:]
        assert "its leases given back" in output
        # Ray's own SIGTERM handler is off: it armed a 3-second alarm that aborted (SIGABRT)
        # a stop taking longer (services/engines.py); it announces itself when it is on.
        assert "SIGTERM received" not in output, output[-2000:]
        assert not [p for p in scratch.iterdir() if p.name.startswith("lightson-ray-")]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)

"""``lightson demo --keep-open``: after the story the clock stops with the fleet, so the
dashboard keeps showing the story's end rather than chargers silent for hours."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from net_support import free_port


def get(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{url}/api{path}", headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(request, timeout=30) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:  # /health's 503 "degraded" has a body too
        return json.load(error)


def test_the_clock_stops_with_the_story(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--hours", "1", "--keep-open"),
            *("--speed", "3600", "--port", str(free_port()), "--csms-port", "0"),
            *("--out", str(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "Still serving" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(240), "".join(lines)[-2000:]
        out = "".join(lines)
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/#token=(\S+)", out)
        assert found is not None, out
        stopped = re.search(r"with the clock stopped at (\d\d:\d\d) EDT", out)
        assert stopped is not None and stopped.group(1) >= "13:00", out  # an hour from 12:00
        url, token = found.groups()
        first = get(url, token, "/health")["now"]
        time.sleep(3)  # three simulated hours, were the clock running
        assert get(url, token, "/health")["now"] == first
        reasons = [s["status"]["reason"] for s in get(url, token, "/sites")]
        assert not [r for r in reasons if re.search(r"no meter values from \S+ for [2-9]\d", r)]
        demo.send_signal(signal.SIGINT)  # Ctrl-C ends the kept-open demo, cleanly
        assert demo.wait(60) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)


def test_ctrl_c_stops_the_story_on_its_way(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--hours", "12", "--speed", "60"),
            *("--port", "0", "--csms-port", "0", "--out", str(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # the first hour's line: the fleet is connected, time runs
            if re.match(r"12:\d\d EDT", line):
                break
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=60)
        assert demo.returncode == 0
        assert "Stopped (Ctrl-C)." in out and "Event:" not in out
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)

"""Screenshots of the dashboard during ``lightson demo``, for docs/operations.md.

Runs the demo (the ma-2026 fleet over OCPP on loopback) and, with Debian's Chromium, takes
at 15:40 program time (the ConnectedSolutions event running) the overview and a school
depot's site page, and at 20:00 (the storm: the depot islanded) the overview and the
islanded depot's page. About three minutes on two cores::

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SHOTS = (  # program time to wait for, and what to take then
    ("15:40", (("overview-event.png", "#/"), ("site-school.png", "#/site/{school}"))),
    ("20:00", (("overview-storm.png", "#/"), ("site-islanded.png", "#/site/{school}"))),
)


def get(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{url}/api{path}", headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as error:  # /health's 503 has a body too
        return json.load(error)


def local(now: datetime) -> str:
    return f"{now.astimezone(ZoneInfo('America/New_York')):%H:%M}"


def start_demo(out: Path) -> tuple[subprocess.Popen[str], str, str]:
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--hours", "8", "--keep-open"),
            *("--speed", "360", "--port", "0", "--csms-port", "0", "--out", str(out)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    found = threading.Event()
    address: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            match = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/#token=(\S+)", line)
            if match:
                address.extend(match.groups())
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(180):
        demo.kill()
        raise SystemExit("the demo did not start")
    return demo, address[0], address[1]


def take(page: Page, url: str, school: str, shots: tuple[tuple[str, str], ...], out: Path) -> None:
    for name, route in shots:
        page.goto(f"{url}/{route.format(school=school)}")
        page.wait_for_selector("[data-testid=program-name], [data-testid=site-name]")
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / name), full_page=True)
        print(f"{out / name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        demo, url, token = start_demo(Path(folder))
        try:
            # The demo's storm takes the program's first school down.
            first_school = next(
                s["site_id"] for s in get(url, token, "/sites") if s["kind"] == "school"
            )
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/#token={token}")
                for at, shots in SHOTS:
                    while local(datetime.fromisoformat(get(url, token, "/health")["now"])) < at:
                        time.sleep(0.5)
                    take(page, url, first_school, shots, args.out)
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(60)


if __name__ == "__main__":
    main()

"""Shared by the browser tests: Debian's Chromium, its flags, and the API asked directly."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [  # as root, on a machine with no way out (docs/operations.md)
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def kw(value: float) -> str:
    return f"{value:.1f}"


async def api(url: str, token: str, path: str, body: Any = None) -> Any:
    """What the API answers (from a thread: the server runs on this event loop); with a
    ``body``, a POST."""

    def get() -> Any:
        request = urllib.request.Request(
            f"{url}/api{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        with opener.open(request, timeout=30) as answer:
            return json.load(answer)

    return await asyncio.to_thread(get)

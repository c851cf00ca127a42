"""A fleet reconnecting at once after our restart: connections the server has not accepted
yet wait in the listener's backlog (4096, the kernel's usual cap) instead of being dropped at
asyncio's default of 100 (``bench_csms.py`` lost 50 of 200 stations to it)."""

from __future__ import annotations

import selectors
import socket
from datetime import UTC, datetime
from pathlib import Path

from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.domain.time import SimClock
from lightson.store import Store
from net_support import run

START = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
FLEET = 300


def _connections_completed(port: int, count: int, wait_s: float) -> int:
    """Open ``count`` TCP connections while the caller blocks the server's event loop (so
    none is accepted): how many the kernel completed, i.e. found room in the backlog."""
    selector = selectors.DefaultSelector()
    sockets = []
    try:
        for _ in range(count):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", port))
            selector.register(client, selectors.EVENT_WRITE)
            sockets.append(client)
        completed: set[socket.socket] = set()
        while len(completed) < count:
            ready = selector.select(timeout=wait_s)  # a dropped SYN is retried after 1 s
            if not ready:
                break
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    completed.add(sock)
                selector.unregister(sock)
        return len(completed)
    finally:
        selector.close()
        for client in sockets:
            client.close()


def test_a_reconnecting_fleet_waits_in_the_backlog(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'backlog.db'}")

    async def completed(backlog: int) -> int:
        settings = CsmsSettings(port=0, backlog=backlog)
        async with CsmsServer(store, SimClock(START), settings) as server:
            # Called without awaiting: the loop that would accept is held for the while.
            return _connections_completed(server.port, FLEET, wait_s=0.5)

    try:
        assert run(completed(CsmsSettings().backlog)) == FLEET
        # The check itself can fail: asyncio's default backlog holds about 100 of them.
        assert run(completed(100)) < FLEET / 2
    finally:
        store.close()

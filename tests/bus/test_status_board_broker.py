"""The status board of an API server over a real NATS server: what a worker publishes
arrives; the broker killed (SIGKILL) and started again on the same port and store, the
board follows the bucket again and a record published after the restart arrives too."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import nats

from lightson.bus.connection import connect_bus
from lightson.bus.status import StatusBoard, StatusPublisher, StatusRecord, open_status_bucket
from lightson.services.live_status import SiteStatus
from nats_support import NatsServer
from net_support import eventually, run

AT = datetime(2026, 7, 15, 19, 30, tzinfo=UTC)


def test_the_board_follows_the_bucket_across_a_broker_restart(nats_broker: NatsServer) -> None:
    async def scenario() -> None:
        bus = await connect_bus(nats_broker.url, "test-api")
        bucket, ttl_s = await open_status_bucket(bus.jetstream, 30.0)
        assert ttl_s == 30.0
        board = StatusBoard(ttl_s)
        await board.watch(bucket)
        worker = await nats.connect(
            nats_broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5
        )
        statuses, _ = await open_status_bucket(worker.jetstream(), 30.0)
        publisher = StatusPublisher(statuses, "w1", 30.0)
        try:
            await publisher.publish(SiteStatus("school-beverly", AT, "grid", "first"), 1)
            first = await eventually(lambda: board.get("school-beverly"), 10)
            assert first.status.reason == "first"

            nats_broker.kill()
            await asyncio.sleep(1.0)
            nats_broker.start()
            deadline = time.monotonic() + 30
            while True:  # a write goes through once the worker has reconnected
                try:
                    await statuses.put("school-beverly", _record("second"))
                    break
                except Exception:
                    assert time.monotonic() < deadline, "the worker never reconnected"
                    await asyncio.sleep(0.5)
            second = await eventually(
                lambda: (r := board.get("school-beverly")) and r.status.reason == "second" and r,
                30,
            )
            assert second.worker == "w1"
        finally:
            await board.stop()
            await worker.close()
            await bus.close()

    run(scenario(), 90)


def _record(reason: str) -> bytes:
    status = SiteStatus("school-beverly", AT, "grid", reason)
    return StatusRecord(status, "w1", 2, time.time(), 30.0).encode()

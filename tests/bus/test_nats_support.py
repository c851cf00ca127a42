"""The broker fixture itself: JetStream keeps a published message across a kill and restart."""

from __future__ import annotations

import asyncio

import nats

from nats_support import NatsServer


def test_jetstream_keeps_a_message_across_a_broker_kill(nats_broker: NatsServer) -> None:
    async def publish() -> None:
        client = await nats.connect(nats_broker.url)
        stream = client.jetstream()
        await stream.add_stream(name="probe", subjects=["probe.>"])
        await stream.publish("probe.one", b"kept")
        await client.close()

    async def read() -> bytes:
        client = await nats.connect(nats_broker.url)
        message = await client.jetstream().get_last_msg("probe", "probe.one")
        await client.close()
        return message.data or b""

    asyncio.run(publish())
    nats_broker.kill()
    nats_broker.start()
    assert asyncio.run(read()) == b"kept"

"""Connecting a role to the broker: one NATS connection with JetStream, reconnecting on its
own within bounds, refused at once with a one-line reason when the URL is wrong or no server
answers at start (a role that cannot reach its broker must not look as if it runs)."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from lightson.domain.errors import LightsOnError

LOGGER = logging.getLogger("lightson.bus")

# A broker restart takes seconds; a role keeps trying for about two minutes (60 x 2 s) and
# then gives up, so a broker gone for good shows as a stopped role, not a silent one.
RECONNECT_WAIT_S = 2
MAX_RECONNECT_ATTEMPTS = 60
CONNECT_TIMEOUT_S = 5


class BrokerError(LightsOnError):
    """The broker cannot be reached, or its URL is not a NATS URL; retrying may help once
    the broker is back."""

    retryable = True


@dataclass
class Bus:
    """A role's connection to the broker and its JetStream context."""

    client: Client
    jetstream: JetStreamContext

    async def close(self) -> None:
        if not self.client.is_closed:
            await self.client.drain()


def check_url(url: str) -> str:
    """``url`` if it is a ``nats://`` or ``tls://`` URL with a host; else :class:`BrokerError`
    naming what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise BrokerError(f"--bus: {url!r} is not a broker URL like nats://127.0.0.1:4222")
    return url


async def connect_bus(url: str, name: str) -> Bus:
    """Connect to the NATS server at ``url`` as ``name`` (shown in the server's monitoring),
    with bounded reconnection: every :data:`RECONNECT_WAIT_S` seconds, at most
    :data:`MAX_RECONNECT_ATTEMPTS` times in a row."""
    check_url(url)

    async def disconnected() -> None:
        LOGGER.warning("%s: lost the broker; reconnecting", name)

    async def reconnected() -> None:
        LOGGER.info("%s: the broker is back", name)

    async def error(exception: Exception) -> None:
        LOGGER.warning("%s: broker: %s", name, exception)

    parts = urllib.parse.urlsplit(url)
    try:
        # nats-py spends its whole reconnect budget on a first connection that fails: a
        # broker that is not there at start is told at once instead.
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 4222), CONNECT_TIMEOUT_S
        )
        writer.close()
        client = await nats.connect(
            url,
            name=name,
            connect_timeout=CONNECT_TIMEOUT_S,
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=MAX_RECONNECT_ATTEMPTS,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
    except Exception as failure:  # nats-py raises NoServersError, OSError, TimeoutError...
        reason = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
        raise BrokerError(f"--bus: cannot reach the broker at {url}: {reason}") from None
    return Bus(client, client.jetstream())


async def flushed(client: Client, timeout_s: int = 10) -> None:
    """Return once the server has processed everything already sent on ``client`` (a
    subscription made just before, for instance, so that a request from another connection
    now finds it).

    nats-py's own ``flush()`` does not promise that: it writes its PING straight to the
    socket while the commands before it (SUB, PUB) wait in the client's buffer for its
    flusher task, so the PONG can come back before the server has read a SUB made just
    before (nats-py 2.16; the defect nats.py2 fixed in its pull request 24). The first flush
    lets the flusher write the buffer out; the second PING then follows it on the same TCP
    stream, and its PONG comes after the server has read the buffer.
    """
    await client.flush(timeout=timeout_s)
    await client.flush(timeout=timeout_s)


__all__ = ["BrokerError", "Bus", "check_url", "connect_bus", "flushed"]

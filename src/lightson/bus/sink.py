"""``BusSink``: the live loop's setpoint sink for a control worker, by NATS request to the
gateway that holds the station (``lightson.cmd.<station_id>``).

Each call becomes one :class:`~lightson.bus.subjects.Command` carrying the fence of the
station's site (the worker's lease revision). The outcomes are what the live loop already
handles when the local CSMS fails (``services.live``: an exception is "not sent" and tried
again at the next tick; a status other than ``Accepted`` is "not accepted"):

=============================  ============================================================
the bus says                   the sink
=============================  ============================================================
a reply                        returns its ``status`` (``Accepted``, ``Rejected``, ...)
no responders (no gateway      raises :class:`StationOfflineError`, as the local CSMS does
holds the station)             for a station with no session
no reply in ``timeout_s``      returns ``"Timeout"``, as the CSMS does for a silent station
reply ``error="offline"``      raises :class:`StationOfflineError`
reply ``error="fenced"``       calls ``on_fenced(site_id)`` (a newer lease holds the site:
                               this worker stops controlling it) and raises
                               :class:`FencedError`
no lease on the site now       raises :class:`NotLeasedError`; nothing is sent
=============================  ============================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from lightson.bus.subjects import (
    Command,
    CommandOp,
    CommandReply,
    command_subject,
    setpoint_args,
)
from lightson.domain.plan import Setpoint

LOGGER = logging.getLogger("lightson.sink")
# Above the gateway's own wait for a station's answer (CsmsSettings.response_timeout_s, 30 s).
DEFAULT_TIMEOUT_S = 35.0


class StationOfflineError(Exception):
    """No gateway holds the station's connection now."""


class NotLeasedError(Exception):
    """This worker holds no lease on the station's site: nothing was sent."""


class FencedError(Exception):
    """The gateway refused the command: a newer lease holder controls the site."""


class Requester(Protocol):
    """What the sink uses of a NATS client (``nats.aio.client.Client.request``)."""

    async def request(self, subject: str, payload: bytes = b"", timeout: float = 0.5) -> Any: ...


class BusSink:
    """A ``SetpointSink`` over the bus. ``site_of(station)`` names the station's site (or
    ``None``: not ours to command); ``fence_of(site)`` the lease's fence while held."""

    def __init__(
        self,
        client: Requester,
        site_of: Callable[[str], str | None],
        fence_of: Callable[[str], int | None],
        on_fenced: Callable[[str], None] = lambda _site: None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.site_of, self.fence_of, self.on_fenced = site_of, fence_of, on_fenced
        self.timeout_s = timeout_s

    async def send_setpoint(
        self,
        station_id: str,
        evse_id: int,
        setpoint: Setpoint,
        transaction_id: str | None = None,
        *,
        max_offline_s: int | None = None,
    ) -> str:
        args = setpoint_args(evse_id, setpoint, transaction_id, max_offline_s)
        return await self._request("send_setpoint", station_id, args)

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str:
        return await self._request("clear_profiles", station_id, {"evse_id": evse_id})

    async def install_default(self, station_id: str) -> str:
        return await self._request("install_default", station_id, {})

    async def _request(self, op: CommandOp, station_id: str, args: dict[str, Any]) -> str:
        site_id = self.site_of(station_id)
        fence = None if site_id is None else self.fence_of(site_id)
        if site_id is None or fence is None:
            raise NotLeasedError(f"no lease on the site of station {station_id!r}: not sent")
        command = Command(op, station_id, site_id, fence, args)
        try:
            message = await self.client.request(
                command_subject(station_id), command.encode(), timeout=self.timeout_s
            )
        except NoRespondersError:
            raise StationOfflineError(f"station {station_id!r} is not connected") from None
        except (NatsTimeoutError, TimeoutError):
            return "Timeout"
        reply = CommandReply.decode(message.data)
        if reply.error == "fenced":
            LOGGER.warning("%s: fenced by a newer lease holder; control stops here", site_id)
            self.on_fenced(site_id)
            raise FencedError(f"site {site_id!r} is controlled by a newer lease holder")
        if reply.error == "offline":
            raise StationOfflineError(f"station {station_id!r} is not connected")
        return reply.status

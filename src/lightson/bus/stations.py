"""Calls to a station that control no site (its certificates), from an API server to the
gateway that holds the station's connection, over ``lightson.station.<station_id>``.

An API server (``lightson api``) has no charger connection: its certificate routes use a
:class:`BusStations`, the routes' :class:`~lightson.api.certificates.StationCommands` over
NATS request/reply. The gateway subscribes to the subject while the station is connected
(:class:`StationCallServer`) and runs the call on its own CSMS. No lease or fence: these
calls change no setpoint, and only staff may make them (the routes check).

Request ``{"op": ..., "args": {...}}``, ops and args:

- ``install_certificate``: ``certificate_type`` (str), ``pem`` (str);
- ``installed_certificates``: ``certificate_types`` (list of str);
- ``delete_certificate``: ``hash_data`` (the station's ``certificateHashData``);
- ``request_station_certificate``: none.

Reply ``{"result": ...}`` (the station's status, or the list of held certificates), or
``{"error": {"status": int, "code": str, "message": str}}``, the HTTP answer the routes
give (409 offline, 502 refused, 504 no answer). No gateway holds the station: NATS answers
"no responders" at once, which is 409 ``Offline`` as with ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from lightson.api.station_calls import StationCallError, StationCommands
from lightson.bus.connection import Bus
from lightson.bus.subjects import station_call_subject

LOGGER = logging.getLogger("lightson.stations")
# Above the CLI's own wait: the CSMS waits 30 s for a charger; deleting asks twice.
CALL_TIMEOUT_S = 65.0
OPS = (
    "install_certificate",
    "installed_certificates",
    "delete_certificate",
    "request_station_certificate",
)


class BusStations:
    """The certificate routes' ``StationCommands`` over the broker (an API server's).
    ``ocpp_version`` reads the station's registration from the database."""

    def __init__(
        self,
        bus: Bus,
        version_of: Callable[[str], str | None],
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.bus, self.version_of, self.timeout_s = bus, version_of, timeout_s

    def ocpp_version(self, station_id: str) -> str | None:
        return self.version_of(station_id)

    async def install_certificate(self, station_id: str, certificate_type: str, pem: str) -> str:
        args = {"certificate_type": certificate_type, "pem": pem}
        return str(await self._call("install_certificate", station_id, args))

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str]
    ) -> list[dict[str, Any]]:
        args = {"certificate_types": list(certificate_types)}
        held = await self._call("installed_certificates", station_id, args)
        return [dict(entry) for entry in held]

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str:
        args = {"hash_data": dict(hash_data)}
        return str(await self._call("delete_certificate", station_id, args))

    async def request_station_certificate(self, station_id: str) -> str:
        return str(await self._call("request_station_certificate", station_id, {}))

    async def _call(self, op: str, station_id: str, args: dict[str, Any]) -> Any:
        body = json.dumps({"op": op, "args": args}).encode()
        try:
            message = await self.bus.client.request(
                station_call_subject(station_id), body, timeout=self.timeout_s
            )
        except NoRespondersError:
            raise StationCallError(
                409, "Offline", f"station '{station_id}' is not connected"
            ) from None
        except (NatsTimeoutError, TimeoutError):
            raise StationCallError(
                504, "Timeout", f"station '{station_id}' did not answer in time"
            ) from None
        reply = json.loads(message.data)
        error = reply.get("error")
        if error is not None:
            raise StationCallError(int(error["status"]), str(error["code"]), str(error["message"]))
        return reply["result"]


class StationCallServer:
    """A gateway's side: while a station is connected here, its calls run on ``commands``
    (the CSMS's ``StationCommands``). Call :meth:`station_connected` and
    :meth:`station_lost` from the CSMS's hooks, on the event loop."""

    def __init__(
        self, bus: Bus, commands: StationCommands, is_connected: Callable[[str], bool]
    ) -> None:
        self.bus, self.commands, self.is_connected = bus, commands, is_connected
        self.subscriptions: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def station_connected(self, station_id: str) -> None:
        self._spawn(self._subscribe(station_id))

    def station_lost(self, station_id: str) -> None:
        self._spawn(self._unsubscribe(station_id))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self, station_id: str) -> None:
        if station_id in self.subscriptions or not self.is_connected(station_id):
            return

        async def handler(message: Msg) -> None:
            reply = await self.answer(station_id, message.data)
            if message.reply:
                await message.respond(json.dumps(reply).encode())

        subscription = await self.bus.client.subscribe(station_call_subject(station_id), cb=handler)
        if self.is_connected(station_id) and station_id not in self.subscriptions:
            self.subscriptions[station_id] = subscription
        else:  # it dropped (or subscribed twice) while we waited for the broker
            await subscription.unsubscribe()

    async def _unsubscribe(self, station_id: str) -> None:
        if self.is_connected(station_id):
            return  # it came back meanwhile
        subscription = self.subscriptions.pop(station_id, None)
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def answer(self, station_id: str, data: bytes) -> dict[str, Any]:
        """The reply to one request body for ``station_id`` (never raises)."""
        try:
            body = json.loads(data)
            op, args = body["op"], dict(body.get("args") or {})
            if op not in OPS:
                raise ValueError(f"op {op!r} is not one of {', '.join(OPS)}")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return _error(400, "BadRequest", f"not a station call: {error}")
        try:
            return {"result": await self._run(op, station_id, args)}
        except StationCallError as error:
            return _error(error.status, error.code, error.message)
        except (KeyError, TypeError, ValueError) as error:
            return _error(400, "BadRequest", f"{op}: bad arguments: {error}")
        except Exception as error:  # the gateway goes on serving whatever one call does
            LOGGER.exception("%s: %s failed", station_id, op)
            return _error(502, "Failed", f"{op} failed at the gateway: {error}")

    async def _run(self, op: str, station_id: str, args: dict[str, Any]) -> Any:
        commands = self.commands
        if op == "install_certificate":
            return await commands.install_certificate(
                station_id, str(args["certificate_type"]), str(args["pem"])
            )
        if op == "installed_certificates":
            types = [str(t) for t in args.get("certificate_types") or []]
            return await commands.installed_certificates(station_id, types)
        if op == "delete_certificate":
            return await commands.delete_certificate(station_id, dict(args["hash_data"]))
        return await commands.request_station_certificate(station_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in self.subscriptions.values():
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        self.subscriptions.clear()


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message}}


__all__ = ["BusStations", "StationCallServer"]

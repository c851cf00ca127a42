"""The gateway's side of the broker: commands in for the stations it holds, wake-ups out.

While a station is connected here the gateway subscribes to ``lightson.cmd.<station_id>``
and runs each :class:`~lightson.bus.subjects.Command` as the local CSMS call, after checking
its fence against the shared floors (:mod:`lightson.bus.floors`). It unsubscribes when the
station drops, so a command for a station no gateway holds gets NATS "no responders" at once.

The reply is the station's own answer (``Accepted``, ``Rejected``, ``Timeout``...) or
``CommandReply("Rejected", error)`` with ``error`` one of :data:`FENCED`, :data:`OFFLINE`,
:data:`BAD_COMMAND` or :data:`FAILED`. A message that cannot be read gets a reply too; no
message stops the gateway. An empty request is a presence probe (:func:`held_elsewhere`):
it is answered ``CommandReply("Connected")`` and runs nothing.

The ``args`` of each op (JSON):

- ``send_setpoint``: ``evse_id`` (int, the connector), ``setpoint``: {``power_kw`` (float,
  + charges the vehicle), ``valid_until`` (ISO 8601 with an offset)} (or those two flat in
  ``args``), optional ``transaction_id`` (str) and ``max_offline_s`` (int).
- ``clear_profiles``: optional ``evse_id`` (int; none: every EVSE).
- ``install_default``: none (the gateway reads whether the site is islanded from the
  database, as the worker stored it, before it installs charge-only or 0 W).

Wake-ups: after a station's message is durable in the database, the gateway publishes
``lightson.site.<site_id>.<kind>`` (``meter``, ``needs``, ``connected``) with the body
``{"station_id": ...}``, at most once per site, kind and station per turn of the event loop
(a MeterValues message with twenty samples wakes its worker once).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

from lightson.bus.connection import BrokerError, Bus, flushed
from lightson.bus.floors import FenceFloors
from lightson.bus.subjects import (
    Command,
    CommandReply,
    SiteEventKind,
    command_subject,
    site_subject,
)
from lightson.domain.plan import Setpoint
from lightson.services.live_sinks import SetpointSink

LOGGER = logging.getLogger("lightson.bus")
FENCED = "fenced"  # a newer lease holds the site
OFFLINE = "offline"  # the station is not connected here (it just dropped)
BAD_COMMAND = "bad_command"  # the message is not a Command this gateway can run
FAILED = "failed"  # the broker or the call failed; retrying may help
PROBE_TIMEOUT_S = 2.0


class BadCommandError(ValueError):
    """A command's body or arguments cannot be run; the message names the field."""


class BusGateway:
    """Subscriptions for the stations connected here, and the wake-ups their messages send.

    ``is_connected``: whether a station's session is open here now. ``site_of``: a station's
    site (``None``: unknown, then no wake-up is sent and no site is checked).
    ``before_default``: awaited before ``install_default`` (the gateway refreshes the site's
    grid state from the database there)."""

    def __init__(
        self,
        bus: Bus,
        floors: FenceFloors,
        calls: SetpointSink,  # the CSMS: its setpoint, clear and default calls
        is_connected: Callable[[str], bool],
        site_of: Callable[[str], str | None],
        before_default: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.floors = floors
        self.calls = calls
        self.is_connected = is_connected
        self.site_of = site_of
        self.before_default = before_default
        self.subscriptions: dict[str, Subscription] = {}
        self._due: set[tuple[str, SiteEventKind, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- stations coming and going ----------------------------------------------------------

    def station_connected(self, station_id: str) -> None:
        """Subscribe to the station's commands and wake its site (called on the loop)."""
        self._spawn(self._subscribe(station_id))
        self.wake(station_id, "connected")

    def station_lost(self, station_id: str) -> None:
        """Unsubscribe: from now on a command for it gets "no responders" here."""
        self._spawn(self._unsubscribe(station_id))

    async def _subscribe(self, station_id: str) -> None:
        if station_id in self.subscriptions or not self.is_connected(station_id):
            return
        subject = command_subject(station_id)

        async def handler(message: Msg) -> None:
            await self.on_command(station_id, message)

        subscription = await self.bus.client.subscribe(subject, cb=handler)
        if self.is_connected(station_id) and station_id not in self.subscriptions:
            self.subscriptions[station_id] = subscription
            await flushed(self.bus.client)  # the server knows it before we say we are ready
        else:  # it dropped (or subscribed twice) while we waited for the broker
            await subscription.unsubscribe()

    async def _unsubscribe(self, station_id: str) -> None:
        if self.is_connected(station_id):
            return  # it came back meanwhile
        subscription = self.subscriptions.pop(station_id, None)
        if subscription is not None:
            await subscription.unsubscribe()

    # --- commands ---------------------------------------------------------------------------

    async def on_command(self, station_id: str, message: Msg) -> None:
        reply = await self.answer(station_id, message.data)
        if message.reply:
            await message.respond(reply.encode())

    async def answer(self, station_id: str, data: bytes) -> CommandReply:
        """The reply to one command body received for ``station_id``."""
        if not data:
            return CommandReply("Connected" if self.is_connected(station_id) else "Rejected")
        try:
            command = _read(data, station_id)
            site = self.site_of(station_id)
            if site is not None and command.site_id != site:
                raise BadCommandError(f"site_id: {station_id} is at {site}, not {command.site_id}")
        except BadCommandError as error:
            LOGGER.warning("%s: command refused: %s", station_id, error)
            return CommandReply("Rejected", f"{BAD_COMMAND}: {error}"[:300])
        if not self.is_connected(station_id):
            return CommandReply("Rejected", OFFLINE)
        try:
            if not await self.floors.admit(command.site_id, command.fence):
                LOGGER.warning("%s: fence %d refused", command.site_id, command.fence)
                return CommandReply("Rejected", FENCED)
            return CommandReply(await self._run(command))
        except BadCommandError as error:
            return CommandReply("Rejected", f"{BAD_COMMAND}: {error}"[:300])
        except BrokerError as error:
            return CommandReply("Rejected", f"{FAILED}: {error}"[:300])
        except Exception as error:  # the station dropped mid-call, the database failed...
            if not self.is_connected(station_id):
                return CommandReply("Rejected", OFFLINE)
            LOGGER.exception("%s: %s failed", station_id, command.op)
            return CommandReply("Rejected", f"{FAILED}: {type(error).__name__}"[:300])

    async def _run(self, command: Command) -> str:
        args, station = command.args, command.station_id
        if command.op == "send_setpoint":
            evse_id = _integer(args, "evse_id")
            # The worker's sink nests them as "setpoint" (subjects.setpoint_args, #18's
            # worker branch); flat is taken too.
            inner = args.get("setpoint", args)
            if not isinstance(inner, dict):
                raise BadCommandError(f"args.setpoint: an object is needed, got {inner!r}")
            setpoint = Setpoint(station, _number(inner, "power_kw"), _moment(inner, "valid_until"))
            transaction = args.get("transaction_id")
            offline_s = args.get("max_offline_s")
            return await self.calls.send_setpoint(
                station,
                evse_id,
                setpoint,
                None if transaction is None else str(transaction),
                max_offline_s=None if offline_s is None else _integer(args, "max_offline_s"),
            )
        if command.op == "clear_profiles":
            evse = None if args.get("evse_id") is None else _integer(args, "evse_id")
            return await self.calls.clear_profiles(station, evse)
        if self.before_default is not None:
            await self.before_default(station)
        return await self.calls.install_default(station)

    # --- wake-ups ---------------------------------------------------------------------------

    def wake(self, station_id: str, kind: SiteEventKind) -> None:
        """Tell the site's worker (once per turn of the loop) that ``station_id`` sent news."""
        site = self.site_of(station_id)
        if site is None:
            return
        first = not self._due
        self._due.add((site, kind, station_id))
        if first:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        due, self._due = self._due, set()
        for site, kind, station_id in sorted(due):
            body = json.dumps({"station_id": station_id}).encode()
            self._spawn(self.bus.client.publish(site_subject(site, kind), body))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:  # the broker is away: it reconnects; the next message wakes
                LOGGER.exception("broker call failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Unsubscribe from every station (the stations stay connected to the CSMS)."""
        for station_id in list(self.subscriptions):
            subscription = self.subscriptions.pop(station_id)
            if not self.bus.client.is_closed:
                await subscription.unsubscribe()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)


async def held_elsewhere(bus: Bus, station_id: str) -> bool | None:
    """Whether some gateway holds ``station_id``'s connection now: it answers the empty
    probe on the station's subject. NATS says "no responders" at once when none does;
    ``None`` when the broker cannot say (away, or no answer in :data:`PROBE_TIMEOUT_S`)."""
    try:
        reply = await bus.client.request(command_subject(station_id), b"", PROBE_TIMEOUT_S)
    except NoRespondersError:
        return False
    except (NatsError, TimeoutError):
        return None
    try:
        return CommandReply.decode(reply.data).status == "Connected"
    except (ValueError, KeyError, TypeError):
        return None


def _read(data: bytes, station_id: str) -> Command:
    try:
        command = Command.decode(data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadCommandError(f"not a command: {type(error).__name__}: {error}") from None
    if command.op not in ("send_setpoint", "clear_profiles", "install_default"):
        raise BadCommandError(
            f"op: {command.op!r} is not one of send_setpoint, clear_profiles, install_default"
        )
    if command.station_id != station_id:
        raise BadCommandError(f"station_id: {command.station_id!r} sent to {station_id}")
    return command


def _integer(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadCommandError(f"args.{name}: an integer is needed, got {value!r}")
    return value


def _number(args: dict[str, Any], name: str) -> float:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadCommandError(f"args.{name}: a number is needed, got {value!r}")
    return float(value)


def _moment(args: dict[str, Any], name: str) -> datetime:
    value = args.get(name)
    try:
        moment = datetime.fromisoformat(str(value)) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadCommandError(f"args.{name}: an ISO 8601 time with an offset, got {value!r}")
    return moment


__all__ = [
    "BAD_COMMAND",
    "FAILED",
    "FENCED",
    "OFFLINE",
    "BusGateway",
    "held_elsewhere",
]

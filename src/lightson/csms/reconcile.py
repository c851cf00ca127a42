"""No dead session steers a plan: a station's open transactions are reconciled with what the
station says, and closed (with the reason) when it says nothing.

Paths (``lightson.store.transactions`` has the storage rule and the trigger names):

- **BootNotification, OCPP 1.6**: the station's open transactions are closed (``CsmsBoot``)
  before the boot is answered. A 1.6 station does not resume a transaction across a reboot;
  one it kept sends its queued ``StopTransaction`` (its own end wins) or meter values for it
  (which reopen it).
- **BootNotification, OCPP 2.x**: the open transactions are noted before the answer; after it,
  the station is asked ``GetTransactionStatus`` for each (use case E14). Ongoing: kept. Not
  ongoing and nothing queued: closed. Not ongoing with messages queued: its queued events come
  first, then it is closed after ``boot_grace_s`` if still open. No usable answer: closed after
  ``boot_grace_s`` unless a ``TransactionEvent`` for it arrived meanwhile.
- **StatusNotification Available** on an EVSE (2.x ``evseId``; 1.6 ``connectorId`` > 0, as
  connector 0 is the whole station): the open transactions at that EVSE whose last event is
  not later than the status are closed (``CsmsAvailable``), at the status's time, once
  ``available_grace_s`` has passed without the station's own end (which may follow the
  status: the standard fixes no order).
- **Connection lost** for ``offline_close_after_s`` (CSMS clock): the station's open
  transactions are closed (``CsmsOffline``); not while its site is islanded (its vehicle
  likely still carries the building on the setpoint it holds), only once it is back on the
  grid. Stations with open transactions that are not
  connected when the server starts count as lost from then.
  Several gateways on one database (``lightson gateway``): a station lost here may be connected
  to another gateway (it moved there, or was there all along); before closing, the server's
  ``held_elsewhere`` asks, and what another gateway holds is left to it (forgotten here).
  When nobody can say (the broker is away) nothing is closed until the next sweep can.

Durations are read on the server's injected clock by one sweeper task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from lightson.csms.rpc import CallRefusedError
from lightson.csms.wire import FrameError, OcppVersion
from lightson.store import schema as db
from lightson.store.transactions import (
    CSMS_AVAILABLE,
    CSMS_BOOT,
    CSMS_OFFLINE,
    CSMS_REOPEN,
    StoredTransaction,
    station_transactions,
    stations_with_open_transactions,
)

if TYPE_CHECKING:
    from lightson.csms.server import CsmsServer
    from lightson.csms.sessions import StationSession

LOGGER = logging.getLogger("lightson.csms")


@dataclass(frozen=True)
class _Pending:
    """A closing due at ``deadline`` (dated ``at``, else when it is made) unless the station
    ends the transaction itself first, or speaks of it at all (``unless_heard``)."""

    deadline: datetime
    trigger: str
    reason: str
    unless_heard: bool
    at: datetime | None = None


class Reconciler:
    """The CSMS's side of every path; the sessions call it, and its sweeper closes what is due."""

    def __init__(self, server: CsmsServer) -> None:
        self.server = server
        self.lost_at: dict[str, datetime] = {}  # station -> when its connection was lost
        self.pending: dict[tuple[str, str], _Pending] = {}
        self.closed_16: dict[tuple[str, str], datetime] = {}  # closed here, may be reopened
        self._open_at_boot: dict[str, list[StoredTransaction]] = {}
        self._versions: dict[str, OcppVersion] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def _now(self) -> datetime:
        return self.server.clock.now()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sweeper: it counts the stations with open transactions that are not
        connected as lost from now, then sweeps every ``offline_check_every_s`` (real
        seconds). The server does not wait for that first look (a year of events to read)."""
        self._task = asyncio.create_task(self._sweep_forever(self._now))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sweep_forever(self, started: datetime) -> None:
        try:
            stations = await asyncio.to_thread(stations_with_open_transactions, self.server.store)
        except Exception:  # the offline rule then covers the stations seen to leave
            LOGGER.exception("reading the open transactions at start failed")
            stations = []
        for station_id in stations:
            if station_id not in self.server.sessions:
                self.lost_at.setdefault(station_id, started)
        while True:
            await asyncio.sleep(self.server.settings.offline_check_every_s)
            try:
                await self.sweep()
            except Exception:  # a failed sweep is retried at the next one
                LOGGER.exception("reconciling open transactions failed")

    async def sweep(self) -> None:
        """Close what is due now: stations lost too long, and closings past their grace. A
        closing that fails (the database) is tried again at the next sweep."""
        now = self._now
        limit = timedelta(seconds=self.server.settings.offline_close_after_s)
        for station_id, since in list(self.lost_at.items()):
            if now - since < limit or station_id in self.server.sessions:
                continue
            if self.server.islanded_station(station_id):
                # A storm takes the site's link down with the grid: the vehicle most likely
                # still carries the building on the setpoint it holds, which the control
                # loop counts while it lasts. Closed once the site is back on the grid.
                continue
            elsewhere = await self.server.held_elsewhere(station_id)
            if elsewhere is None:
                continue  # nobody can say now: asked again at the next sweep
            if elsewhere:
                LOGGER.info(
                    "%s: connected to another gateway; its transactions are its", station_id
                )
                self.lost_at.pop(station_id, None)
                continue
            minutes = (now - since).total_seconds() / 60
            await self.close(
                station_id,
                await self._open(station_id),
                CSMS_OFFLINE,
                f"the station was not connected for {minutes:.0f} min "
                f"(since {since.isoformat()}); its vehicle is no longer counted as plugged",
            )
            self.lost_at.pop(station_id, None)
        for key, pending in list(self.pending.items()):
            if now < pending.deadline:
                continue
            found = await asyncio.to_thread(station_transactions, self.server.store, key[0], key[1])
            await self.close(key[0], found, pending.trigger, pending.reason, pending.at)
            self.pending.pop(key, None)
        week_ago = now - timedelta(days=7)  # a 1.6 transaction reopens within days or never
        for key, closed_at in list(self.closed_16.items()):
            if closed_at < week_ago:
                del self.closed_16[key]

    # --- what the sessions report ----------------------------------------------------------

    def connected(self, station_id: str, version: OcppVersion) -> None:
        self.lost_at.pop(station_id, None)
        self._versions[station_id] = version

    def lost(self, station_id: str) -> None:
        self.lost_at[station_id] = self._now

    def heard(self, station_id: str, transaction_id: str) -> None:
        """A ``TransactionEvent`` for the transaction arrived: the station knows it."""
        pending = self.pending.get((station_id, transaction_id))
        if pending is not None and pending.unless_heard:
            del self.pending[(station_id, transaction_id)]

    async def on_boot(self, session: StationSession) -> None:
        """Before the BootNotification is answered: 1.6 closes, 2.x notes what to ask."""
        open_now = await self._open(session.id)
        if session.version is OcppVersion.V16:
            await self.close(
                session.id,
                open_now,
                CSMS_BOOT,
                "the station rebooted (BootNotification); an OCPP 1.6 station does not "
                "resume a transaction after a reboot",
            )
        else:
            self._open_at_boot[session.id] = open_now

    async def after_boot(self, session: StationSession) -> None:
        """After the answer (2.x): ask the station about each transaction open at boot."""
        for transaction in self._open_at_boot.pop(session.id, []):
            try:
                await self._ask(session, transaction)
            except ConnectionClosed:
                return  # gone again: the offline rule takes over

    async def _ask(self, session: StationSession, transaction: StoredTransaction) -> None:
        key = (session.id, transaction.transaction_id)
        grace = timedelta(seconds=self.server.settings.boot_grace_s)
        try:
            answer = await session.request(
                "GetTransactionStatus", {"transactionId": transaction.transaction_id}
            )
        except (CallRefusedError, TimeoutError, FrameError) as error:
            self.pending[key] = _Pending(
                self._now + grace,
                CSMS_BOOT,
                f"the station rebooted and gave no usable GetTransactionStatus answer "
                f"({error}), and sent no event for the transaction within {grace}",
                unless_heard=True,
            )
            return
        ongoing, queued = answer.get("ongoingIndicator"), bool(answer["messagesInQueue"])
        if ongoing is True:
            LOGGER.info("%s: transaction %s goes on after boot", *key)
        elif ongoing is False and not queued:
            await self.close(
                session.id,
                [transaction],
                CSMS_BOOT,
                "the station rebooted and says the transaction is not ongoing, with nothing "
                "queued for it (GetTransactionStatus)",
            )
        else:
            said = "is not ongoing" if ongoing is False else "may be ongoing (no indicator)"
            self.pending[key] = _Pending(
                self._now + grace,
                CSMS_BOOT,
                f"the station rebooted and says the transaction {said}, with messages "
                f"queued; it was still open {grace} later",
                unless_heard=ongoing is None,
            )

    async def on_available(self, station_id: str, evse_id: int, at: datetime) -> None:
        """The station reported the EVSE ``Available`` at ``at`` (its own clock). Its own
        ``Ended`` may follow the status (the standard fixes no order): the closing waits
        ``available_grace_s`` for it."""
        if evse_id <= 0:
            return  # the whole station: says nothing about one connector's transaction
        deadline = self._now + timedelta(seconds=self.server.settings.available_grace_s)
        for t in await self._open(station_id):
            if t.evse_id == evse_id and (t.last_at is None or t.last_at <= at):
                self.pending[(station_id, t.transaction_id)] = _Pending(
                    deadline,
                    CSMS_AVAILABLE,
                    f"the station reported EVSE {evse_id} Available and did not end the "
                    "transaction",
                    unless_heard=False,
                    at=at,
                )

    async def on_meter_values_16(
        self, station_id: str, transaction_id: str, evse_id: int, at: datetime | None
    ) -> None:
        """A 1.6 station's meter values for a transaction the CSMS closed, taken after the
        closing: the transaction goes on, so it is open again."""
        closed_at = self.closed_16.get((station_id, transaction_id))
        if closed_at is None or at is None or at <= closed_at:
            return
        del self.closed_16[(station_id, transaction_id)]
        row = _row(
            station_id,
            transaction_id,
            evse_id,
            "Updated",
            CSMS_REOPEN,
            at,
            self._now,
            {
                "reopenedBy": "csms",
                "reason": "the station sent meter values for the transaction after the CSMS "
                "closed it",
            },
        )
        await self.server.store.commit([(db.transaction_events, row)])
        LOGGER.warning(
            "%s: transaction %s reopened (meter values after its closing)",
            station_id,
            transaction_id,
        )

    def ended_by_station(self, station_id: str, transaction_id: str) -> None:
        self.closed_16.pop((station_id, transaction_id), None)

    # --- closing ---------------------------------------------------------------------------

    async def _open(self, station_id: str) -> list[StoredTransaction]:
        return await asyncio.to_thread(
            station_transactions, self.server.store, station_id, None, True
        )

    async def close(
        self,
        station_id: str,
        transactions: Sequence[StoredTransaction],
        trigger: str,
        reason: str,
        at: datetime | None = None,
    ) -> None:
        """Store a CSMS ``Ended`` for each transaction still open, with why, and log it.
        Dated ``at`` (a status's time, on the station's clock: skipped for a transaction
        the station reported on after it), else now, or the station's last event for it
        if that is later (a station clock ahead of ours must not undo the closing)."""
        if not transactions:
            return
        now = self._now
        still = {t.transaction_id: t for t in await self._open(station_id)}
        closings: list[tuple[StoredTransaction, datetime]] = []
        for wanted in transactions:
            t = still.get(wanted.transaction_id)
            if t is None or (at is not None and t.last_at is not None and t.last_at > at):
                continue
            closings.append((t, at if at is not None else max(now, t.last_at or now)))
        if not closings:
            return
        rows = [
            _row(
                station_id,
                t.transaction_id,
                t.evse_id,
                "Ended",
                trigger,
                when,
                now,
                {"closedBy": "csms", "reason": reason},
            )
            for t, when in closings
        ]
        await self.server.store.commit([(db.transaction_events, row) for row in rows])
        for t, when in closings:
            self.pending.pop((station_id, t.transaction_id), None)
            if self._versions.get(station_id, OcppVersion.V16) is OcppVersion.V16:
                self.closed_16[(station_id, t.transaction_id)] = when
            LOGGER.warning(
                "%s: transaction %s closed by the CSMS (%s): %s",
                station_id,
                t.transaction_id,
                trigger,
                reason,
            )


def _row(
    station_id: str,
    transaction_id: str,
    evse_id: int | None,
    event_type: str,
    trigger: str,
    at: datetime,
    now: datetime,
    payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "station_id": station_id,
        "evse_id": evse_id,
        "transaction_id": transaction_id,
        "seq_no": None,
        "event_type": event_type,
        "trigger_reason": trigger,
        "at": at,
        "offline": False,
        "id_token": None,
        "received_at": now,
        "payload": payload,
    }


__all__ = ["Reconciler"]

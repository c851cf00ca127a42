"""The charging-station management server: OCPP 2.1, 2.0.1 and 1.6J over WebSocket.

One :class:`CsmsServer` listens on a port; each station connects to ``ws://host:port/<id>``
(any path prefix; the last segment is the station id) offering the subprotocols it speaks.
The handshake checks HTTP Basic credentials against the registered station (security profile 1,
profile 2 when an ``ssl.SSLContext`` is given); unknown ids and wrong passwords get ``401`` and
no session. The station is then held to the version it was registered with.

This module holds the connections: the handshake, the session registry and the lifecycle.
What a station sends is answered and stored in ``csms.sessions`` (committed to the store
*before* the answer goes back, so a crash after the answer loses nothing); the calls the
control side makes on a station are ``csms.commands``, mixed into :class:`CsmsServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import itertools
import logging
import os
import secrets
import ssl
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sqlalchemy import insert, update
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from lightson.csms.auth import check_password, hash_password
from lightson.csms.certificates import StationCertificateAuthority
from lightson.csms.commands import StationCommands
from lightson.csms.reconcile import Reconciler
from lightson.csms.session_2x import Session2x
from lightson.csms.session_16 import Session16
from lightson.csms.sessions import SequenceTracker, StationSession, Telemetry
from lightson.csms.tls import common_name, requires_client_certificate
from lightson.csms.wire import OcppVersion
from lightson.domain.time import Clock
from lightson.services.ratelimit import Buckets
from lightson.store import StationRecord, Store
from lightson.store import schema as db

LOGGER = logging.getLogger("lightson.csms")
REALM = "Lights On CSMS"


@functools.cache
def _unknown_station() -> StationRecord:
    """A stand-in checked for ids we don't know, made once (scrypt takes a while)."""
    return StationRecord(
        "", hash_password("no station has this password!"), "2.1", "charge-only", 0.0
    )


@dataclass(frozen=True)
class CsmsSettings:
    """``port=0`` takes a free port (tests). ``max_message_bytes`` bounds one frame;
    ``messages_per_second``/``burst`` pace each station, whose frames read ahead of the pace
    wait in a queue of at most ``waiting_frames`` frames and ``waiting_bytes`` characters (a
    CALL that finds it full is refused at once); ``ping_interval_s``/``ping_timeout_s`` are
    the WebSocket keepalive (None: off).

    ``offline_close_after_s``: a station not connected for this long (CSMS clock) has its
    open transactions closed, so its vehicle stops counting as plugged. 15 minutes: three
    missed heartbeats at the default interval and the live loop's own limit on a reading's
    age, so a network blip or a station's restart (seconds to a few minutes) never ends a
    session, while a vanished one stops steering its site within one more tick or two.
    ``boot_grace_s``: how long after a 2.x boot an unanswered transaction may wait for the
    station's queued events (a long queue is paced at ``messages_per_second``).
    ``available_grace_s``: how long after an ``Available`` status the station may still send
    its own end of the transaction at that EVSE before the CSMS closes it.
    ``offline_check_every_s``: real seconds between two looks at what is due."""

    host: str = "127.0.0.1"
    port: int = 9000
    heartbeat_interval_s: int = 300
    max_message_bytes: int = 256 * 1024
    messages_per_second: float = 20.0
    burst: int = 60
    waiting_frames: int = 120
    waiting_bytes: int = 1 << 20
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    response_timeout_s: float = 30.0
    max_offline_s: int = 300
    compression: bool = True
    # Connections waiting to be accepted: a fleet reconnecting after our restart comes at
    # once (asyncio's default of 100 refused some of 200 stations); the kernel caps it at
    # net.core.somaxconn.
    backlog: int = 4096
    failed_handshakes_per_minute: float = 1.0
    failed_handshakes_burst: int = 10
    handshake_timeout_s: float = 120.0  # handshakes queue for password checks in a storm
    offline_close_after_s: float = 900.0
    boot_grace_s: float = 300.0
    available_grace_s: float = 30.0
    offline_check_every_s: float = 1.0
    tls: ssl.SSLContext | None = None
    station_ca: StationCertificateAuthority | None = None  # signs stations' CSRs (A02/A03)


class CsmsServer(StationCommands):
    """The CSMS: sessions by station id, and the calls the control loop makes on them."""

    def __init__(self, store: Store, clock: Clock, settings: CsmsSettings | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings or CsmsSettings()
        self.sessions: dict[str, StationSession] = {}
        self.telemetry = Telemetry()
        # Whether a station's site is islanded now (the operations server wires the control
        # loop in): its default profile is then 0 W, at boot too.
        self.islanded_station: Callable[[str], bool] = lambda _station_id: False
        # Awaited before a booted station's default is chosen: a gateway without the control
        # loop reads the site's grid state from the database there (``lightson gateway``).
        self.refresh_islanded: Callable[[str], Awaitable[None]] = _nothing_to_refresh
        # Whether another process holds a station's connection now (``lightson gateway``:
        # asked over the broker). The reconciler never closes what another gateway holds;
        # ``None``: nobody could say, nothing is closed yet. One process: never.
        self.held_elsewhere: Callable[[str], Awaitable[bool | None]] = _held_nowhere_else
        self.sequence = SequenceTracker()
        self.reported_profiles: dict[str, list[Mapping[str, Any]]] = {}
        self.reconciler = Reconciler(self)
        self._server: Server | None = None
        self._profile_ids = itertools.count(100)
        self.transaction_evse: dict[tuple[str, str], int] = {}
        self.rejected_handshakes = 0
        # Failed handshakes by source address: 10, then one a minute (a fleet behind one
        # NAT address that all fail is misconfigured, not attacked; it gets in once fixed).
        self.failed_handshakes = Buckets(
            per_second=self.settings.failed_handshakes_per_minute / 60,
            burst=self.settings.failed_handshakes_burst,
        )
        self._secret = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._hashing = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
        self._handshakes: weakref.WeakKeyDictionary[ServerConnection, StationRecord] = (
            weakref.WeakKeyDictionary()
        )

    async def start_transaction_16(self, started: Mapping[str, Any]) -> int:
        """Store a 1.6 ``Started`` row and return the transaction id it was given: the row's
        own id in ``transaction_events``, so ids are unique across restarts and across
        gateways sharing one database (the database's sequence hands them out). Committed
        before it returns (the answer carries the id)."""
        return await asyncio.to_thread(_insert_started, self.store, started)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            subprotocols=[Subprotocol(v.subprotocol) for v in OcppVersion],
            select_subprotocol=self._select_subprotocol,
            process_request=self._authenticate,
            compression="deflate" if self.settings.compression else None,
            max_size=self.settings.max_message_bytes,
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
            ssl=self.settings.tls,
            open_timeout=self.settings.handshake_timeout_s,
            backlog=self.settings.backlog,
        )
        await self.reconciler.start()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        sockets = list(self._server.sockets)
        port: int = sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.tls is not None else "ws"
        return f"{scheme}://{self.settings.host}:{self.port}/ocpp"

    async def stop(self) -> None:
        await self.reconciler.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._hashing.shutdown(wait=False)

    async def __aenter__(self) -> CsmsServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- handshake ---------------------------------------------------------------------------

    def _station_for(self, request: Request) -> StationRecord | None:
        path = urllib.parse.urlsplit(request.path).path
        station_id = urllib.parse.unquote(path.rstrip("/").rsplit("/", 1)[-1])
        return self.store.station(station_id) if station_id else None

    async def _authenticate(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        address = str(connection.remote_address[0]) if connection.remote_address else "?"
        if self.failed_handshakes.wait_s(address) > 0:
            # It kept guessing: refused before any password is hashed (scrypt is costly).
            self.rejected_handshakes += 1
            return connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "Too Many Requests\n")
        station = await asyncio.to_thread(self._station_for, request)
        header = request.headers.get("Authorization")
        good = False
        if requires_client_certificate(self.settings.tls):
            # Security profile 3: TLS already required a certificate from a trusted CA; it
            # must name the station it connects as. No password is asked.
            certificate = connection.transport.get_extra_info("peercert")
            named = common_name(certificate)
            good = station is not None and named == station.id
            if not good:
                LOGGER.warning(
                    "refused handshake for %s: its certificate names %r",
                    request.path[:100],
                    named,
                )
        elif header is not None:
            with contextlib.suppress(InvalidHeader, ValueError):
                username, password = parse_authorization_basic(header)
                if station is None:
                    # Pay the same hashing cost as for a known id: no enumeration by timing.
                    await self._check(_unknown_station(), password)
                else:
                    good = username == station.id and await self._check(station, password)
        if not good:
            self.failed_handshakes.take(address)
            self.rejected_handshakes += 1
            LOGGER.warning("refused handshake for %s", request.path)
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
            response.headers["WWW-Authenticate"] = build_www_authenticate_basic(REALM)
            return response
        assert station is not None
        self._handshakes[connection] = station
        return None

    async def _check(self, station: StationRecord, password: str) -> bool:
        """scrypt costs tens of milliseconds on purpose; a reconnecting fleet would pay it
        again and again, so a password that passed is remembered (as a keyed digest, bound to
        the stored hash) for as long as the server runs."""
        digest = hmac.new(self._secret, f"{station.password_hash}\0{password}".encode(), "sha256")
        known = self._verified.get(station.id)
        if known is not None and hmac.compare_digest(known, digest.digest()):
            return True
        loop = asyncio.get_running_loop()
        good = await loop.run_in_executor(
            self._hashing, check_password, password, station.password_hash
        )
        if good:
            self._verified[station.id] = digest.digest()
        return good

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        station = self._handshakes.get(connection)
        if station is None:
            return None
        wanted = OcppVersion(station.ocpp_version).subprotocol
        return Subprotocol(wanted) if wanted in offered else None

    async def _handle(self, connection: ServerConnection) -> None:
        station = self._handshakes.pop(connection, None)
        if station is None or connection.subprotocol is None:
            await connection.close(1002, "no agreed OCPP version")
            return
        session_type = Session16 if station.ocpp_version == "1.6" else Session2x
        session = session_type(self, station, connection)
        previous = self.sessions.get(station.id)
        self.sessions[station.id] = session
        self.reconciler.connected(station.id, session.version)
        if previous is not None:
            LOGGER.info("%s: reconnected; the older connection is closed", station.id)
            await previous._connection.close(1000, "replaced by a new connection")
        # A station that reconnects without booting (its link dropped, or we restarted)
        # holds whatever it held: the control loop re-sends its default and setpoint now.
        asyncio.get_running_loop().call_soon(self.telemetry.publish_connected, station.id)
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            if self.sessions.get(station.id) is session:
                del self.sessions[station.id]
                self.reconciler.lost(station.id)
                self.telemetry.publish_disconnected(station.id)


def _insert_started(store: Store, started: Mapping[str, Any]) -> int:
    """Insert the row under a placeholder id, then name the transaction after the row, in
    one database transaction. Before 2026-12-05 ids counted on from the largest row id at
    start, one per transaction: each was at most its own Started row's id, so none repeats."""
    events = db.transaction_events
    placeholder = f"new-{secrets.token_hex(8)}"
    with store.engine.begin() as connection:
        result = connection.execute(
            insert(events).values({**started, "transaction_id": placeholder})
        )
        key = result.inserted_primary_key
        assert key is not None
        row_id = int(key[0])
        connection.execute(
            update(events).where(events.c.id == row_id).values(transaction_id=str(row_id))
        )
    return row_id


async def _nothing_to_refresh(_station_id: str) -> None:
    return None


async def _held_nowhere_else(_station_id: str) -> bool | None:
    return False


__all__ = ["CsmsServer", "CsmsSettings"]

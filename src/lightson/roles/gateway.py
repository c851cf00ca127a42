"""The CSMS gateway role (``lightson gateway``): the charger connections and what they send.

One :class:`GatewayRole` runs the CSMS server (``lightson.csms``) with the broker attached
(``lightson.bus.gateway``): commands for the stations it holds come in over NATS, checked
against the shared fence floors; what stations send is stored in PostgreSQL before it is
answered, as in ``lightson serve``, and then wakes the worker that owns the site. There is no
control loop here: a gateway never invents a setpoint. What it decides alone is the default
a booting station gets: charge-only, or 0 W while its site is islanded, read from the grid
signals the workers and the API store in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from lightson.bus.connection import Bus, connect_bus
from lightson.bus.floors import FenceFloors
from lightson.bus.gateway import BusGateway, held_elsewhere
from lightson.bus.stations import StationCallServer
from lightson.control.grid import GridMonitor, GridSignal
from lightson.csms.server import CsmsServer, CsmsSettings
from lightson.domain.assets import Program
from lightson.domain.time import Clock
from lightson.roles.certificates import CsmsCertificates
from lightson.store import Store
from lightson.store import schema as db

LOGGER = logging.getLogger("lightson.gateway")


class SiteGrids:
    """Whether a station's site is islanded, as the stored grid signals say (read again
    before each default is chosen: the worker that owns the site stores them first)."""

    def __init__(
        self,
        program: Program,
        store: Store,
        clock: Clock,
        registered_site: Callable[[str], str | None] = lambda _station_id: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._site_of = {c.evse_id: s.site_id for s in program.sites for c in s.chargers}
        self._registered_site = registered_site
        self._monitors: dict[str, GridMonitor] = {}

    def site_of(self, station_id: str) -> str | None:
        """The program's site of the charger, else the site it was registered at."""
        return self._site_of.get(station_id) or self._registered_site(station_id)

    async def refresh(self, station_id: str) -> None:
        site_id = self.site_of(station_id)
        if site_id is None:
            return
        rows = await asyncio.to_thread(self.store.rows, db.grid_signals, site_id=site_id)
        monitor = GridMonitor()
        for row in rows:
            source = "api" if row["source"].startswith("api:") else row["source"]
            monitor.report(source, GridSignal(row["signal"]), row["at"])
        self._monitors[site_id] = monitor

    def islanded_station(self, station_id: str) -> bool:
        site_id = self.site_of(station_id)
        monitor = None if site_id is None else self._monitors.get(site_id)
        return monitor is not None and monitor.islanded(self.clock.now())


@dataclass
class GatewayRole:
    """A CSMS gateway: the CSMS server, its broker link and the shared fence floors."""

    program: Program
    store: Store
    clock: Clock
    bus_url: str
    csms_settings: CsmsSettings = field(default_factory=CsmsSettings)
    name: str = "lightson-gateway"

    def __post_init__(self) -> None:
        self.csms = CsmsServer(self.store, self.clock, self.csms_settings)
        self.grids = SiteGrids(self.program, self.store, self.clock, self._registered_site)
        self.csms.islanded_station = self.grids.islanded_station
        self.csms.refresh_islanded = self.grids.refresh
        self.bus: Bus | None = None
        self.gateway: BusGateway | None = None
        self.calls: StationCallServer | None = None

    def _registered_site(self, station_id: str) -> str | None:
        session = self.csms.sessions.get(station_id)
        return None if session is None else session.station.site_id

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[GatewayRole]:
        """Connect to the broker first (no broker: :class:`BrokerError`, nothing listens),
        then accept chargers; on the way out stop accepting, then leave the broker."""
        self.bus = bus = await connect_bus(self.bus_url, self.name)
        try:
            floors = await FenceFloors.open(bus.jetstream)
            gateway = BusGateway(
                bus,
                floors,
                self.csms,
                lambda station_id: station_id in self.csms.sessions,
                self.grids.site_of,
                before_default=self.grids.refresh,
            )
            self.gateway = gateway
            telemetry = self.csms.telemetry
            telemetry.connected.append(gateway.station_connected)
            telemetry.disconnected.append(gateway.station_lost)
            telemetry.meter.append(lambda sample: gateway.wake(sample.station_id, "meter"))
            telemetry.needs.append(lambda needs: gateway.wake(needs.station_id, "needs"))
            # The certificate routes of the API servers (bus.stations): no fence.
            self.calls = calls = StationCallServer(
                bus, CsmsCertificates(self.csms), lambda s: s in self.csms.sessions
            )
            telemetry.connected.append(calls.station_connected)
            telemetry.disconnected.append(calls.station_lost)

            async def elsewhere(station_id: str) -> bool | None:
                return await held_elsewhere(bus, station_id)

            self.csms.held_elsewhere = elsewhere
            async with self.csms:
                try:
                    yield self
                finally:
                    await calls.close()
                    await gateway.close()
        finally:
            await bus.close()


__all__ = ["GatewayRole", "SiteGrids"]

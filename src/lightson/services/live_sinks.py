"""Where a site's setpoints go: the sink (the CSMS in one process, the broker on a control
worker) and what the live loop sends through it (``services.live``).

:class:`SetpointDispatch` sends setpoints, cleared profiles and defaults, never raising: a
station that is offline or refuses gets its answer recorded and is tried again at its
site's next tick. It remembers the default each station holds under our setpoints
(charge-only on the grid, the 0 W one islanded), and learns from the answers what each
charging session accepts (``services.limits.SessionLimits``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from lightson.domain.assets import Site
from lightson.domain.plan import Setpoint
from lightson.domain.time import Clock
from lightson.services.limits import SessionLimits
from lightson.store import Store
from lightson.store.live import StationState, note_last_setpoint

LOGGER = logging.getLogger("lightson.live")


class SetpointSink(Protocol):
    """Where setpoints go (the CSMS). Answers are the station's status (``Accepted``, ...)."""

    async def send_setpoint(
        self,
        station_id: str,
        evse_id: int,
        setpoint: Setpoint,
        transaction_id: str | None = None,
        *,
        max_offline_s: int | None = None,
    ) -> str: ...

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str: ...

    async def install_default(self, station_id: str) -> str:
        """The default profile the station's site needs now: charge-only, or 0 W islanded."""
        ...


class SetpointDispatch:
    """Sends through ``sink``; a limit a charger showed in its answer is noted on the setpoint
    stored (``store``) and ``learned`` is called with its station id (its site re-plans)."""

    def __init__(
        self,
        sink: SetpointSink,
        store: Store,
        clock: Clock,
        sessions: SessionLimits,
        learned: Callable[[str], None],
    ) -> None:
        self.sink = sink
        self.store = store
        self.clock = clock
        self.sessions = sessions
        self.learned = learned
        # The default each station holds under our setpoints, as far as we know (True: the
        # islanded 0 W one); a station not in it gets its site's at the next tick.
        self.defaults: dict[str, bool] = {}

    def forget(self, station_id: str) -> None:
        """What the station holds is not known any more (it connected, its site moved)."""
        self.defaults.pop(station_id, None)

    def islanded_default(self, station_id: str) -> bool:
        """Whether the station is known to hold the islanded 0 W default."""
        return self.defaults.get(station_id) is True

    async def ensure_defaults(self, site: Site, islanded: bool) -> None:
        """Each charger of the site holds the default its grid state needs: charge-only on
        the grid, 0 W islanded. Sent when that changes, or when a station (re)connected; a
        station that is not connected gets it at a later tick."""
        for charger in site.chargers:
            if self.defaults.get(charger.evse_id) is islanded:
                continue
            try:
                answer = await self.sink.install_default(charger.evse_id)
            except Exception as error:  # offline: tried again at the next tick
                LOGGER.debug("%s: default profile not sent: %s", charger.evse_id, error)
                continue
            if answer == "Accepted":
                self.defaults[charger.evse_id] = islanded
            else:
                LOGGER.warning("%s: default profile answered %s", charger.evse_id, answer)

    async def send(
        self,
        station_id: str,
        setpoint: Setpoint,
        state: StationState,
        max_offline_s: int | None = None,
    ) -> str:
        """Send, and learn from the answer: a limit the charger showed (a ``Rejected``
        discharge) is noted on the setpoint stored and its site re-plans at once."""
        try:
            answer = await self.sink.send_setpoint(
                station_id,
                state.evse_id or 1,
                setpoint,
                state.transaction_id,
                max_offline_s=max_offline_s,
            )
        except Exception as error:  # an offline station must not stop the other sites
            LOGGER.warning("%s: setpoint not sent: %s", station_id, error)
            return f"not sent: {error}"
        learned = self.sessions.answered(
            station_id, state.transaction_id, setpoint.power_kw, answer, self.clock.now()
        )
        if learned is not None:
            LOGGER.info("%s: %s", station_id, learned)
            await asyncio.to_thread(note_last_setpoint, self.store, station_id, learned)
            self.learned(station_id)
        return answer

    async def clear(self, station_id: str) -> str:
        """Clear the station's setpoint profiles: its default applies (an error: why not)."""
        try:
            return await self.sink.clear_profiles(station_id)
        except Exception as error:
            LOGGER.warning("%s: profiles not cleared: %s", station_id, error)
            return f"not cleared: {error}"

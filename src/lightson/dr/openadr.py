"""An OpenADR 2.0b VEN (built on ``openleadr``) that turns a utility's events into ours.

The VEN polls its VTN; each ``oadrEvent`` becomes one :class:`ProgramEvent` through the same
:class:`EventService` the HTTP API and the operator use, so the program's rules apply and a
repeated event is one event:

- ``event_id`` ← ``eventDescriptor.eventID`` (prefixed ``adr-`` so ids of different sources
  never collide);
- ``program_id`` ← the ``marketContext``, through ``market_contexts`` (default: the last path
  segment of the context URL, e.g. ``http://utility.example/cs-ci-daily`` → ``cs-ci-daily``);
- window ← ``activePeriod`` (``dtstart`` + ``duration``); notice ← ``createdDateTime``;
- sites ← the ``resourceID`` targets (none: every enrolled site);
- ``eventStatus: cancelled`` cancels the event, and a new ``modificationNumber`` replaces it
  (openleadr hands those to ``on_update_event``).

The VEN answers ``optIn`` when the event is accepted and ``optOut`` when our rules refuse it
(the refusal is logged with its reason).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from openleadr import OpenADRClient

from lightson.domain.errors import ConfigError
from lightson.programs.events import ProgramEvent
from lightson.services.events import EventService

LOGGER = logging.getLogger("lightson.dr")
EVENT_ID_PREFIX = "adr-"


def program_from_market_context(context: str) -> str:
    path = urlsplit(context).path.strip("/") or urlsplit(context).netloc
    return path.rsplit("/", 1)[-1]


class OpenAdrVen:
    """Receives events from one VTN and files them through ``service``."""

    def __init__(
        self,
        service: EventService,
        vtn_url: str,
        ven_name: str,
        market_contexts: Mapping[str, str] | None = None,
        on_accepted: Callable[[ProgramEvent], None] | None = None,
    ) -> None:
        self.service = service
        self.market_contexts = dict(market_contexts or {})
        self.on_accepted = on_accepted
        self.client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url)
        self.client.add_handler("on_event", self.on_event)
        self.client.add_handler("on_update_event", self.on_update_event)
        self.refused: list[tuple[str, str]] = []

    async def start(self) -> None:
        await self.client.run()

    async def stop(self) -> None:
        await self.client.stop()

    async def on_event(self, event: Mapping[str, Any]) -> str:
        """openleadr's handler for a new event: ``optIn`` or ``optOut``."""
        return self._file(event)

    async def on_update_event(self, event: Mapping[str, Any]) -> str:
        """openleadr's handler for a new modification of a known event: cancel it, or file
        the new version in place of the old (refused like a new event)."""
        return self._file(event)

    def _file(self, event: Mapping[str, Any]) -> str:
        """Cancel, replace or add the event; ``optOut`` (with the reason kept) if refused."""
        descriptor = event["event_descriptor"]
        event_id = EVENT_ID_PREFIX + str(descriptor["event_id"])
        try:
            if descriptor.get("event_status") == "cancelled":
                self.service.cancel(event_id)
                return "optIn"
            if event_id in self.service.book().events:
                accepted = self.service.modify(self.body(event))
            else:
                accepted = self.service.submit(self.body(event))
        except ConfigError as error:
            LOGGER.warning("OpenADR event %s refused: %s", event_id, error)
            self.refused.append((event_id, str(error)))
            return "optOut"
        if self.on_accepted is not None:
            self.on_accepted(accepted)
        return "optIn"

    def body(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event as the intake service's JSON body."""
        descriptor = event["event_descriptor"]
        period = event["active_period"]
        start = period["dtstart"]
        duration: timedelta = period["duration"]
        context = str(descriptor.get("market_context", ""))
        program_id = self.market_contexts.get(context, program_from_market_context(context))
        sites = [
            str(target["resource_id"])
            for target in event.get("targets", [])
            if target.get("resource_id")
        ]
        return {
            "event_id": EVENT_ID_PREFIX + str(descriptor["event_id"]),
            "program_id": program_id,
            "start": start.isoformat(),
            "end": (start + duration).isoformat(),
            "notice_at": descriptor.get("created_date_time", start).isoformat(),
            "sites": sites,
            "source": "openadr",
        }

"""An OpenADR 2.0b VEN (built on ``openleadr``) that turns a utility's events into ours.

The VEN registers with its VTN (again and again, with backoff, while the VTN does not answer)
and then polls it; each ``oadrEvent`` becomes one :class:`ProgramEvent` through the same
:class:`EventService` the HTTP API and the operator use, so the program's rules apply and a
repeated event is one event:

- ``event_id`` ← ``eventDescriptor.eventID`` (prefixed ``adr-`` so ids of different sources
  never collide);
- ``program_id`` ← the ``marketContext``, through ``market_contexts`` (default: the last path
  segment of the context URL, e.g. ``http://utility.example/cs-ci-daily`` → ``cs-ci-daily``);
- window ← ``activePeriod`` (``dtstart`` + ``duration``); notice ← ``createdDateTime``;
- sites ← the ``resourceID`` targets, which must lie in the VTN's territory (the sites of its
  utility in the program file); none named: the territory's sites enrolled in the program;
- ``eventStatus: cancelled`` cancels the event, and a new ``modificationNumber`` replaces it
  (openleadr hands those to ``on_update_event``).

The VEN answers ``optIn`` when the event is accepted and ``optOut`` when our rules or the
territory refuse it (the refusal is logged with its reason and kept in :class:`VenStatus`;
OpenADR 2.0b's ``oadrCreatedEvent`` carries no reason text).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from openleadr import OpenADRClient, utils

from lightson.domain.assets import Program, Site
from lightson.domain.errors import ConfigError
from lightson.domain.time import Clock
from lightson.programs.events import ProgramEvent
from lightson.services.events import EventService

LOGGER = logging.getLogger("lightson.dr")
EVENT_ID_PREFIX = "adr-"
MAX_POLL = timedelta(hours=24)  # openleadr's own bound on the VTN's requested poll interval


def program_from_market_context(context: str) -> str:
    path = urlsplit(context).path.strip("/") or urlsplit(context).netloc
    return path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Backoff:
    """How long the VEN waits between registration attempts: ``first_s`` doubling to
    ``max_s``, each wait shortened at random by up to ``jitter`` of it (so a fleet of VENs
    that lost the same VTN does not come back in step)."""

    first_s: float = 5.0
    max_s: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError("backoff: need 0 < first_s <= max_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff: jitter is a share in [0, 1)")

    def delay_s(self, failures: int, rng: random.Random) -> float:
        """The wait after ``failures`` failed attempts in a row (1 or more), seconds:
        ``min(max_s, first_s · 2^(failures−1)) · (1 − jitter · u)``, ``u`` uniform in [0, 1)."""
        base = min(self.max_s, self.first_s * 2.0 ** min(failures - 1, 60))
        return base * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class VenSettings:
    """Where the VEN connects and as whom. ``utility`` names the VTN's territory (the
    program's sites of that utility; ``None``: the program's only utility). ``cert``/``key``
    are the VEN's client certificate (also used to sign its messages); ``ca`` the authority
    the VTN's certificate must chain to (default: the system's)."""

    vtn_url: str
    ven_name: str
    utility: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    market_contexts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.vtn_url).scheme
        if scheme not in ("http", "https"):
            raise ConfigError.at("--openadr-vtn", f"must be an http(s) URL, not '{self.vtn_url}'")
        if not self.ven_name.strip():
            raise ConfigError.at("--openadr-ven-name", "must not be empty")
        if (self.cert is None) != (self.key is None):
            raise ConfigError.at("--openadr-cert", "the certificate and its key go together")
        for name in ("cert", "key", "ca"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError.at(f"--openadr-{name}", f"no such file: {path}")


class VenState(Enum):
    DISABLED = "disabled"
    REGISTERING = "registering"  # no VTN answered yet: retrying with backoff
    REGISTERED = "registered"
    STOPPED = "stopped"


@dataclass
class VenStatus:
    """What the VEN is doing, for ``/api/health`` and the dashboard (times: the program
    clock). ``document`` names no site: ``/api/health`` needs no token."""

    state: VenState = VenState.DISABLED
    ven_name: str = ""
    utility: str = ""
    attempts: int = 0  # registration attempts so far
    registered_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_poll_at: datetime | None = None  # the VTN last answered a poll
    last_error: str | None = None
    last_error_at: datetime | None = None
    events_received: int = 0  # oadrEvents handled (new, modified or cancelled)
    events_refused: int = 0
    last_refusal: str | None = None

    def failed(self, at: datetime, error: str) -> None:
        self.last_error, self.last_error_at = error, at

    def document(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        if self.state is VenState.DISABLED:
            return {"state": self.state.value}
        return {
            "state": self.state.value,
            "ven_name": self.ven_name,
            "utility": self.utility,
            "registration_attempts": self.attempts,
            "registered_at": when(self.registered_at),
            "next_attempt_at": when(self.next_attempt_at),
            "last_poll": when(self.last_poll_at),
            "last_error": self.last_error,
            "last_error_at": when(self.last_error_at),
            "events_received": self.events_received,
            "events_refused": self.events_refused,  # why: the log and ``last_refusal``
        }


def territory(program: Program, utility: str | None) -> tuple[str, tuple[Site, ...]]:
    """The utility a VTN speaks for and its sites; ``None``: the program's only utility."""
    utilities = sorted({s.utility for s in program.sites})
    if utility is None:
        if len(utilities) != 1:
            raise ConfigError.at(
                "--openadr-utility",
                f"the program's sites belong to several utilities; name the VTN's: "
                f"{', '.join(utilities)}",
            )
        utility = utilities[0]
    if utility not in utilities:
        raise ConfigError.at(
            "--openadr-utility", f"no site of '{utility}'; known: {', '.join(utilities)}"
        )
    return utility, tuple(s for s in program.sites if s.utility == utility)


class _Client(OpenADRClient):  # type: ignore[misc]  # openleadr is untyped
    """openleadr's client, with its registration split from its polling (its ``run`` gives
    up for good when the VTN does not answer), its outcomes recorded in a
    :class:`VenStatus`, and one TLS context (CA, client certificate) for every request."""

    client_session: aiohttp.ClientSession | None

    def __init__(
        self, settings: VenSettings, status: VenStatus, clock: Clock, **kwargs: Any
    ) -> None:
        super().__init__(
            ven_name=settings.ven_name,
            vtn_url=settings.vtn_url,
            cert=None if settings.cert is None else str(settings.cert),
            key=None if settings.key is None else str(settings.key),
            ca_file=None if settings.ca is None else str(settings.ca),
            show_fingerprint=False,
            **kwargs,
        )
        self.status = status
        self.clock = clock
        self.on_lost: Callable[[], None] = lambda: None  # the VTN dropped our registration
        self.tls: ssl.SSLContext | None = None
        if settings.vtn_url.startswith("https:") or settings.ca is not None:
            self.tls = ssl.create_default_context(
                cafile=None if settings.ca is None else str(settings.ca)
            )
            if settings.cert is not None and settings.key is not None:
                self.tls.load_cert_chain(settings.cert, settings.key)
        if settings.cert is not None:
            fingerprint = utils.certificate_fingerprint(settings.cert.read_bytes())
            LOGGER.info("OpenADR VEN certificate fingerprint (for the VTN): %s", fingerprint)

    async def _ensure_client_session(self) -> None:
        if self.client_session is None:
            connector = aiohttp.TCPConnector(ssl=self.tls) if self.tls is not None else None
            self.client_session = aiohttp.ClientSession(
                connector=connector,
                headers={"content-type": "application/xml"},
                timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=10),
            )

    async def _perform_request(self, service: str, message: Any) -> tuple[Any, Any]:
        answer = await super()._perform_request(service, message)
        if not answer or answer[0] is None:  # openleadr logged why; we keep that it failed
            self.status.failed(self.clock.now(), f"no valid answer from the VTN to {service}")
            return None, {}
        code = (answer[1].get("response") or {}).get("response_code", 200)
        if code != 200:
            self.status.failed(self.clock.now(), f"the VTN answered {service} with {code}")
        return answer  # type: ignore[no-any-return]

    async def poll(self) -> tuple[Any, Any]:
        answer = await super().poll()
        if answer[0] is not None:
            self.status.last_poll_at = self.clock.now()
        return answer  # type: ignore[no-any-return]

    async def register(self) -> bool:
        """One registration attempt (``oadrQueryRegistration``, then
        ``oadrCreatePartyRegistration``): whether the VTN gave a registration id."""
        _, payload = await self.query_registration()
        request_id = (payload.get("response") or {}).get("request_id")
        await self.create_party_registration(ven_id=self.ven_id, request_id=request_id)
        return self.registration_id is not None

    async def create_party_reregistration(self, registration_id: Any = None) -> None:
        """The VTN asked us to register again (it restarted, say). openleadr's own stops the
        client for good when that fails; here polling pauses and ``on_lost`` starts the
        registration attempts (with backoff) again."""
        await self.create_party_registration(
            ven_id=self.ven_id, registration_id=registration_id or self.registration_id
        )
        if self.registration_id is None:
            self.scheduler.remove_all_jobs()
            self.on_lost()
            return
        await self.sync_events()

    async def start_polling(self) -> None:
        """The rest of ``OpenADRClient.run`` (openleadr 0.5.36) once registered: report
        registration, the first event sync and poll, then polling at the VTN's interval."""
        self.loop = asyncio.get_running_loop()
        await self.register_reports(self.reports)
        await self.sync_events()
        await self._poll()
        # None or PT0S (the VTN asked under a second: the XML carries whole seconds): 10 s,
        # openleadr's default, rather than polling without pause.
        every = min(self.poll_frequency or timedelta(seconds=10), MAX_POLL)
        self.scheduler.add_job(self._poll, trigger="interval", seconds=every.total_seconds())
        self.scheduler.add_job(
            self._event_status_log, trigger="interval", seconds=self.event_status_log_period
        )
        self.scheduler.add_job(
            self._event_cleanup, trigger="interval", seconds=self.events_clean_up_period
        )
        if not self.scheduler.running:  # running already: registered again after a loss
            self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.client_session is not None:
            await self.client_session.close()
            self.client_session = None


class OpenAdrVen:
    """Receives events from one VTN and files them through ``service``, for the sites of
    ``sites`` only (``None``: any site; the operations server always passes the territory).
    ``on_accepted`` gets each event filed: new, modified or cancelled (the server re-plans
    the sites it calls)."""

    def __init__(
        self,
        service: EventService,
        settings: VenSettings,
        clock: Clock,
        sites: Collection[Site] | None = None,
        on_accepted: Callable[[ProgramEvent], None] | None = None,
        *,
        utility: str = "",
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.sites = None if sites is None else {s.site_id: s for s in sites}
        self.market_contexts = dict(settings.market_contexts)
        self.on_accepted = on_accepted
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.status = VenStatus(VenState.REGISTERING, settings.ven_name, utility)
        self.client = _Client(settings, self.status, clock)
        self.client.on_lost = self._lost
        self.client.add_handler("on_event", self.on_event)
        self.client.add_handler("on_update_event", self.on_update_event)
        self.refused: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register in the background (retrying until the VTN answers), then poll."""
        self._task = asyncio.create_task(self.run(), name="lightson-openadr-ven")

    async def run(self) -> None:
        """Attempt registration until the VTN answers (waits from ``backoff``), then start
        polling; returns once polling is scheduled."""
        failures = 0
        while True:
            self.status.attempts += 1
            try:
                registered = await self.client.register()
            except Exception as error:  # a malformed answer: like no answer, try again
                self.status.failed(self.clock.now(), f"registration failed: {error}"[:300])
                registered = False
            if registered:
                break
            failures += 1
            wait_s = self.backoff.delay_s(failures, self.rng)
            self.status.next_attempt_at = self.clock.now() + timedelta(seconds=wait_s)
            LOGGER.warning(
                "OpenADR: the VTN did not register us (attempt %d: %s); again in %.0f s",
                self.status.attempts,
                self.status.last_error,
                wait_s,
            )
            await self.sleep(wait_s)
        self.status.state = VenState.REGISTERED
        self.status.registered_at = self.clock.now()
        self.status.next_attempt_at = None
        LOGGER.info("OpenADR: registered with the VTN as %s", self.client.ven_id)
        await self.client.start_polling()

    def _lost(self) -> None:
        """The VTN dropped our registration and refused it again: register from the start."""
        LOGGER.warning("OpenADR: the VTN dropped our registration; registering again")
        self.status.state = VenState.REGISTERING
        self.status.failed(self.clock.now(), "the VTN dropped our registration")
        self._task = asyncio.create_task(self.run(), name="lightson-openadr-ven")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.stop()
        self.status.state = VenState.STOPPED
        self.status.next_attempt_at = None

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
        self.status.events_received += 1
        try:
            if descriptor.get("event_status") == "cancelled":
                accepted = self.service.cancel(event_id)
            elif event_id in self.service.book().events:
                body = self._in_territory(self.body(event))
                accepted = self.service.modify(body)
            else:
                accepted = self.service.submit(self._in_territory(self.body(event)))
        except ConfigError as error:
            LOGGER.warning("OpenADR event %s refused: %s", event_id, error)
            self.refused.append((event_id, str(error)))
            self.status.events_refused += 1
            self.status.last_refusal = f"{event_id}: {error}"[:300]
            return "optOut"
        if self.on_accepted is not None:
            self.on_accepted(accepted)
        return "optIn"

    def _in_territory(self, body: dict[str, Any]) -> dict[str, Any]:
        """The VTN calls its own territory's sites only; naming none calls those of them
        enrolled in the program."""
        if self.sites is None:
            return body
        named = body["sites"]
        outside = sorted(set(named) - set(self.sites))
        if outside:
            raise ConfigError.at(
                "targets", f"not in the VTN's territory ({self.status.utility}): {outside}"
            )
        if named:
            return body
        enrolled = sorted(i for i, s in self.sites.items() if body["program_id"] in s.enrollments)
        if not enrolled:
            raise ConfigError.at(
                "program_id",
                f"no site of the VTN's territory ({self.status.utility}) is enrolled in "
                f"'{body['program_id']}'",
            )
        return {**body, "sites": enrolled}

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

"""Each site's live status, published by the worker that controls it and read by the API
servers, in the JetStream key-value bucket ``lightson-status``.

Key ``<site_id>``; value a :class:`StatusRecord` as JSON: the site's last
``SiteStatus`` (its ``at`` is when that tick ran), the worker's id, the lease's fence, the
worker's tick count and ``published_s``, the wall-clock second the worker wrote it.

- **publish**: a worker writes a site's record after each tick of that site, and writes
  every record of its sites again at each lease tick (``lease_s / 3``) as a heartbeat, so
  a record stays fresh between control periods (``--every`` may be minutes).
- **expire**: a record is fresh for ``ttl_s``, the worker's lease time (``lease_s``, three
  heartbeats), after ``published_s``: a dead worker's records go stale with its leases, and
  its sites show "no controller" until the worker that takes them over ticks them. The
  reader checks that itself (a watcher is not told of expiry, and the bucket's ``max_age``
  is set once, by whoever creates it); ``max_age`` only clears old keys away.
- **clocks**: ``published_s`` is the worker's wall clock, compared with the reader's: keep
  the machines in NTP. A reader stamps each record with its own wall clock when it arrives
  (``received_s``) and counts its age from the earlier of the two: a record from a worker
  whose clock runs ahead is fresh from its arrival (age 0, never negative) and goes stale a
  lease time after it, not later; a worker whose clock is behind shows records older by
  the skew (a heartbeat every third of a lease leaves two thirds of it for that). A record
  more than ``CLOCK_AHEAD_WARN_S`` ahead is logged once per worker.
- **fence**: a reader keeps, per site, the record with the highest fence among the fresh
  ones: a worker paused past its lease and still publishing cannot hide its successor.

The API role reads the bucket through one :class:`StatusBoard` (a watcher); PostgreSQL
stays the system of record: a record is a view of the worker's memory, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from lightson.control.safety import Intervention, SafetyRule
from lightson.domain.plan import Setpoint
from lightson.services.live_status import SiteStatus

LOGGER = logging.getLogger("lightson.status")
STATUS_BUCKET = "lightson-status"
CLOCK_AHEAD_WARN_S = 5.0  # a record this far "in the future" says the clocks are not in NTP


@dataclass(frozen=True)
class StatusRecord:
    """What a worker says of one of its sites."""

    status: SiteStatus
    worker: str
    fence: int
    published_s: float  # wall clock (time.time()) when the worker wrote it
    ttl_s: float  # the worker's lease time: the record is stale this long after publishing
    ticks: int = 0  # the worker's ticks so far (all its sites)
    received_s: float | None = None  # the reader's wall clock when it arrived (not sent)

    @property
    def site_id(self) -> str:
        return self.status.site_id

    def age_s(self, now_s: float) -> float:
        """Seconds since the worker wrote this record (its heartbeat), counted from its
        arrival where the worker's clock is ahead of the reader's; never negative."""
        written_s = self.published_s
        if self.received_s is not None:
            written_s = min(written_s, self.received_s)
        return max(0.0, now_s - written_s)

    def fresh(self, now_s: float) -> bool:
        """Whether the worker wrote it within its lease time: it was alive then."""
        return self.age_s(now_s) <= self.ttl_s

    def encode(self) -> bytes:
        body = {
            "status": status_document(self.status),
            "worker": self.worker,
            "fence": self.fence,
            "published_s": self.published_s,
            "ttl_s": self.ttl_s,
            "ticks": self.ticks,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> StatusRecord:
        body = json.loads(data)
        return cls(
            status_from_document(body["status"]),
            str(body["worker"]),
            int(body["fence"]),
            float(body["published_s"]),
            float(body["ttl_s"]),
            int(body.get("ticks", 0)),
        )


def status_document(status: SiteStatus) -> dict[str, Any]:
    """A ``SiteStatus`` as JSON (times ISO 8601 with their offset, power in kW)."""
    return {
        "site_id": status.site_id,
        "at": status.at.isoformat(),
        "mode": status.mode,
        "reason": status.reason,
        "setpoints": [[s.evse_id, s.power_kw, s.valid_until.isoformat()] for s in status.setpoints],
        "answers": dict(status.answers),
        "interventions": [
            [i.evse_id, i.rule.value, i.requested_kw, i.allowed_kw] for i in status.interventions
        ],
        "critical_unserved_kw": status.critical_unserved_kw,
        "load_kw": status.load_kw,
        "pv_kw": status.pv_kw,
        "soc": dict(status.soc),
        "plugged": dict(status.plugged),
        "fallback": list(status.fallback),
        "tier": status.tier,
        "load_source": status.load_source,
    }


def status_from_document(body: dict[str, Any]) -> SiteStatus:
    """The ``SiteStatus`` back from :func:`status_document` (a malformed one raises
    ``KeyError``, ``TypeError`` or ``ValueError``)."""
    return SiteStatus(
        site_id=str(body["site_id"]),
        at=_aware(body["at"]),
        mode=body["mode"],
        reason=str(body["reason"]),
        setpoints=tuple(
            Setpoint(str(evse), float(kw), _aware(until)) for evse, kw, until in body["setpoints"]
        ),
        answers={str(k): str(v) for k, v in body["answers"].items()},
        interventions=tuple(
            Intervention(str(evse), SafetyRule(rule), float(asked), float(allowed))
            for evse, rule, asked, allowed in body["interventions"]
        ),
        critical_unserved_kw=float(body["critical_unserved_kw"]),
        load_kw=float(body["load_kw"]),
        pv_kw=float(body["pv_kw"]),
        soc={str(k): None if v is None else float(v) for k, v in body["soc"].items()},
        plugged={str(k): bool(v) for k, v in body["plugged"].items()},
        fallback=tuple(str(e) for e in body["fallback"]),
        tier=None if body["tier"] is None else str(body["tier"]),
        load_source=str(body["load_source"]),
    )


def _aware(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise ValueError(f"time {text!r} must carry its offset")
    return at


class StatusBucket(Protocol):
    """What the publisher uses of a JetStream key-value bucket."""

    async def put(self, key: str, value: bytes) -> int: ...


async def open_status_bucket(js: object, ttl_s: float) -> tuple[Any, float]:
    """The status bucket, created with ``max_age = ttl_s`` where missing; an existing one
    keeps its own, which is returned with it."""
    from nats.js import JetStreamContext
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    assert isinstance(js, JetStreamContext)
    try:
        bucket = await js.key_value(STATUS_BUCKET)
        ttl = (await bucket.status()).ttl
        return bucket, float(ttl) if ttl else ttl_s
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=STATUS_BUCKET, ttl=ttl_s, history=1)
        return await js.create_key_value(config), ttl_s


class StatusPublisher:
    """A worker's side: ``publish(status, fence, ticks)`` writes one site's record (a
    failure is logged: the next heartbeat writes it again)."""

    def __init__(
        self,
        bucket: StatusBucket,
        worker: str,
        ttl_s: float,
        wall_s: Callable[[], float] = time.time,
    ) -> None:
        self.bucket, self.worker, self.ttl_s, self.wall_s = bucket, worker, ttl_s, wall_s

    async def publish(self, status: SiteStatus, fence: int, ticks: int = 0) -> None:
        record = StatusRecord(status, self.worker, fence, self.wall_s(), self.ttl_s, ticks)
        try:
            await self.bucket.put(status.site_id, record.encode())
        except Exception as error:  # the broker away: the heartbeat tries again
            LOGGER.warning("%s: status not published: %s", status.site_id, error)


class StatusBoard:
    """An API server's side: the fresh record of each site, kept from a watcher of the
    bucket. :meth:`get` and :meth:`fresh` may be called from any thread (the API's routes
    run in worker threads). ``ttl_s`` is said in answers: the longest a record of a live
    worker may be missing (the bucket's ``max_age``)."""

    def __init__(self, ttl_s: float, wall_s: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.wall_s = wall_s
        self._records: dict[str, StatusRecord] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None
        self._warned: set[str] = set()  # workers whose clock was said to be ahead

    def offer(self, record: StatusRecord) -> None:
        """Keep ``record`` unless a fresh one with a higher fence is kept for its site;
        stamped with this server's wall clock (its age counts from there at most)."""
        record = replace(record, received_s=self.wall_s())
        self._warn_if_ahead(record)
        with self._lock:
            kept = self._records.get(record.site_id)
            if kept is None or record.fence >= kept.fence or not self._is_fresh(kept):
                self._records[record.site_id] = record

    def _warn_if_ahead(self, record: StatusRecord) -> None:
        assert record.received_s is not None
        ahead_s = record.published_s - record.received_s
        if ahead_s > CLOCK_AHEAD_WARN_S and record.worker not in self._warned:
            self._warned.add(record.worker)
            LOGGER.warning(
                "worker %s's clock is %.0f s ahead of this server's: keep the machines in "
                "NTP (its records count from their arrival here)",
                record.worker,
                ahead_s,
            )

    def forget(self, site_id: str) -> None:
        with self._lock:
            self._records.pop(site_id, None)

    def get(self, site_id: str) -> StatusRecord | None:
        """The site's record if a worker wrote it within ``ttl_s``, else ``None``."""
        with self._lock:
            record = self._records.get(site_id)
        return record if record is not None and self._is_fresh(record) else None

    def last(self, site_id: str) -> StatusRecord | None:
        """The site's last record seen, fresh or not."""
        with self._lock:
            return self._records.get(site_id)

    def newest_at(self) -> datetime | None:
        """The time of the newest tick among the records kept, fresh or not."""
        with self._lock:
            return max((r.status.at for r in self._records.values()), default=None)

    def seen(self) -> int:
        """How many sites have had a record, fresh or not."""
        with self._lock:
            return len(self._records)

    def fresh(self) -> dict[str, StatusRecord]:
        """Every site's fresh record."""
        with self._lock:
            records = list(self._records.values())
        return {r.site_id: r for r in records if self._is_fresh(r)}

    def _is_fresh(self, record: StatusRecord) -> bool:
        return record.fresh(self.wall_s())

    async def watch(self, bucket: Any) -> None:
        """Follow ``bucket`` (a ``nats.js.kv.KeyValue``) in the background until
        :meth:`stop`; the records already there are read first."""
        self._watcher = await bucket.watchall()
        self._task = asyncio.create_task(self._follow(), name="lightson-status-board")

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is None:  # the end of the values already stored
                continue
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self.forget(entry.key)
                continue
            try:
                self.offer(StatusRecord.decode(entry.value))
            except (KeyError, TypeError, ValueError) as error:
                LOGGER.warning("%s: unreadable status record: %s", entry.key, error)

    async def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


__all__ = [
    "CLOCK_AHEAD_WARN_S",
    "STATUS_BUCKET",
    "StatusBoard",
    "StatusPublisher",
    "StatusRecord",
    "open_status_bucket",
    "status_document",
    "status_from_document",
]

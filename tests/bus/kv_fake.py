"""An in-memory JetStream key-value bucket with the semantics the leases rely on (create only
if absent, update only from the last revision, keys gone ``ttl_s`` after their last write,
revisions from one growing sequence), on a clock the test moves."""

from __future__ import annotations

from nats.js.errors import KeyWrongLastSequenceError, NoKeysError


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class BrokerAwayError(Exception):
    pass


class FakeBucket:
    def __init__(self, clock: FakeClock, ttl_s: float, latency_s: float = 0.0) -> None:
        self.clock, self.ttl_s, self.latency_s = clock, ttl_s, latency_s
        self.entries: dict[str, tuple[bytes, int, float]] = {}
        self.seq = 0
        self.away = False

    def _live(self, key: str) -> tuple[bytes, int, float] | None:
        if self.away:
            raise BrokerAwayError("no connection")
        self.clock.t += self.latency_s  # the write lands after it was sent
        entry = self.entries.get(key)
        if entry is not None and self.clock.t >= entry[2] + self.ttl_s:
            del self.entries[key]
            return None
        return entry

    def _write(self, key: str, value: bytes) -> int:
        self.seq += 1
        self.entries[key] = (value, self.seq, self.clock.t)
        return self.seq

    async def create(self, key: str, value: bytes) -> int:
        if self._live(key) is not None:
            raise KeyWrongLastSequenceError(description="wrong last sequence")
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        entry = self._live(key)
        if entry is None or entry[1] != last:
            raise KeyWrongLastSequenceError(description="wrong last sequence")
        return self._write(key, value)

    async def delete(self, key: str, last: int | None = None) -> bool:
        entry = self._live(key)
        if entry is None or entry[1] != last:
            raise KeyWrongLastSequenceError(description="wrong last sequence")
        self.seq += 1
        del self.entries[key]
        return True

    async def put(self, key: str, value: bytes) -> int:
        self._live(key)
        return self._write(key, value)

    async def keys(self) -> list[str]:
        self._live("")  # one round trip
        now = self.clock.t
        names = [k for k, (_, _, at) in self.entries.items() if now < at + self.ttl_s]
        if not names:
            raise NoKeysError
        return names

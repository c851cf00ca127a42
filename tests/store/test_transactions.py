"""When a transaction ended: the station's own ``Ended`` wins; a CSMS closing counts until
the station reports on the transaction after it (``lightson.store.transactions``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightson.services.sessions import sessions
from lightson.store import Store
from lightson.store import schema as db
from lightson.store.live import station_states
from lightson.store.transactions import station_transactions

T0 = datetime(2026, 7, 15, 19, 0, tzinfo=UTC)
KINDS = ("Updated", "Ended", "CsmsOffline", "CsmsAvailable")
NUMBERS = itertools.count()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """SQLite and PostgreSQL: the rule is SQL, both must read it alike."""
    store = Store(database_url)
    yield store
    store.close()


def event(transaction_id: str, kind: str, minute: int, seq: int | None) -> dict[str, object]:
    closing = kind.startswith("Csms")
    at = T0 + timedelta(minutes=minute)
    return {
        "station_id": "cs1",
        "evse_id": 1,
        "transaction_id": transaction_id,
        "seq_no": None if closing else seq,
        "event_type": "Ended" if closing else kind,
        "trigger_reason": kind if closing else "EVCommunicationLost",
        "at": at,
        "received_at": at,
        "payload": {},
    }


def expected_end(history: list[tuple[str, int]]) -> datetime | None:
    """The rule, written out: the station's Ended; else the last closing if no station
    event is later than it."""
    own_ends = [m for kind, m in history if kind == "Ended"]
    if own_ends:
        return T0 + timedelta(minutes=max(own_ends))
    closings = [m for kind, m in history if kind.startswith("Csms")]
    own = [m for kind, m in history if not kind.startswith("Csms")]
    if closings and max(own) <= max(closings):
        return T0 + timedelta(minutes=max(closings))
    return None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 30)), max_size=6))
def test_the_end_follows_the_rule_in_any_order(store: Store, later: list[tuple[str, int]]) -> None:
    transaction_id = f"tx-{next(NUMBERS)}"  # one store for every example
    history = [("Started", 0), *later]
    rows = [event(transaction_id, kind, m, seq) for seq, (kind, m) in enumerate(history)]
    store.write([(db.transaction_events, row) for row in rows]).result(5)
    [found] = station_transactions(store, "cs1", transaction_id)
    assert found.ended_at == expected_end(history)
    closings = [k for k, _ in history if k.startswith("Csms")]
    assert found.closed_by_csms == (bool(closings) and all(k != "Ended" for k, _ in history))


def test_every_reader_sees_a_closing_and_a_reopening(store: Store) -> None:
    rows = [event("tx-1", "Started", 0, 0), event("tx-1", "CsmsOffline", 15, None)]
    store.write([(db.transaction_events, row) for row in rows]).result(5)
    assert station_states(store, ["cs1"])["cs1"].plugged is False
    [closed] = sessions(store, ["cs1"], T0)
    assert closed["ended"] == (T0 + timedelta(minutes=15)).isoformat()

    store.write([(db.transaction_events, event("tx-1", "Updated", 16, 1))]).result(5)
    state = station_states(store, ["cs1"])["cs1"]
    assert state.plugged and state.transaction_id == "tx-1"
    assert sessions(store, ["cs1"], T0)[0]["ended"] is None

    # The station's own end wins, even over a closing stored after it.
    store.write(
        [
            (db.transaction_events, event("tx-1", "Ended", 20, 2)),
            (db.transaction_events, event("tx-1", "CsmsAvailable", 25, None)),
        ]
    ).result(5)
    assert sessions(store, ["cs1"], T0)[0]["ended"] == (T0 + timedelta(minutes=20)).isoformat()
    assert station_states(store, ["cs1"])["cs1"].plugged is False

"""BusSink against a fake gateway on a real NATS server: the exact command frames, and each
outcome mapped to what the live loop handles (status, offline, timeout, fenced, no lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import pytest

from lightson.bus.connection import flushed
from lightson.bus.sink import BusSink, FencedError, NotLeasedError, StationOfflineError
from lightson.bus.subjects import Command, CommandReply
from lightson.domain.plan import Setpoint
from nats_support import NatsServer

SITES = {"cp-1": "home-1", "cp-2": "home-1", "cp-9": "depot"}
FENCES = {"home-1": 7}
UNTIL = datetime(2026, 7, 15, 12, 10, tzinfo=UTC)


def _run(
    broker: NatsServer,
    replies: dict[str, CommandReply | None],
    calls: Callable[[BusSink], Awaitable[Any]],
    timeout_s: float = 5.0,
) -> tuple[Any, list[tuple[str, bytes]], list[str]]:
    """A fake gateway answering ``lightson.cmd.<station>`` for the stations in ``replies``
    (``None``: it never answers); what ``calls`` returned or raised, the frames the gateway
    received, and the sites the sink reported fenced."""

    async def scenario() -> tuple[Any, list[tuple[str, bytes]], list[str]]:
        gateway = await nats.connect(broker.url)
        worker = await nats.connect(broker.url)
        received: list[tuple[str, bytes]] = []
        fenced: list[str] = []

        async def answer(message: Any) -> None:
            received.append((message.subject, message.data))
            reply = replies[message.subject.rsplit(".", 1)[1]]
            if reply is not None:
                await message.respond(reply.encode())

        for station in replies:
            await gateway.subscribe(f"lightson.cmd.{station}", cb=answer)
        await flushed(gateway)
        sink = BusSink(worker, SITES.get, FENCES.get, fenced.append, timeout_s=timeout_s)
        try:
            outcome: Any = await calls(sink)
        except Exception as error:
            outcome = error
        finally:
            await worker.close()
            await gateway.close()
        return outcome, received, fenced

    return asyncio.run(scenario())


def test_a_setpoint_goes_as_one_exact_command_and_its_status_comes_back(
    nats_broker: NatsServer,
) -> None:
    setpoint = Setpoint("cp-1", -3.5, UNTIL)
    answer, received, fenced = _run(
        nats_broker,
        {"cp-1": CommandReply("Accepted")},
        lambda sink: sink.send_setpoint("cp-1", 1, setpoint, "tx-4", max_offline_s=1800),
    )
    assert answer == "Accepted"
    assert received == [
        (
            "lightson.cmd.cp-1",
            b'{"op":"send_setpoint","station_id":"cp-1","site_id":"home-1","fence":7,'
            b'"args":{"evse_id":1,"setpoint":{"evse_id":"cp-1","power_kw":-3.5,'
            b'"valid_until":"2026-07-15T12:10:00+00:00"},"transaction_id":"tx-4",'
            b'"max_offline_s":1800}}',
        )
    ]
    assert fenced == []


def test_clear_and_default_frames(nats_broker: NatsServer) -> None:
    async def both(sink: BusSink) -> tuple[str, str]:
        return await sink.clear_profiles("cp-2"), await sink.install_default("cp-2")

    answers, received, _ = _run(nats_broker, {"cp-2": CommandReply("Rejected")}, both)
    assert answers == ("Rejected", "Rejected")
    assert [Command.decode(data) for _, data in received] == [
        Command("clear_profiles", "cp-2", "home-1", 7, {"evse_id": None}),
        Command("install_default", "cp-2", "home-1", 7, {}),
    ]
    assert received[1][1] == (
        b'{"op":"install_default","station_id":"cp-2","site_id":"home-1","fence":7,"args":{}}'
    )


def test_fenced_stops_control_of_the_site(nats_broker: NatsServer) -> None:
    outcome, received, fenced = _run(
        nats_broker,
        {"cp-1": CommandReply("Rejected", "fenced")},
        lambda sink: sink.install_default("cp-1"),
    )
    assert isinstance(outcome, FencedError)
    assert fenced == ["home-1"] and len(received) == 1


def test_offline_reply_and_no_responders_are_an_offline_station(nats_broker: NatsServer) -> None:
    async def both(sink: BusSink) -> list[str]:
        said = []
        for station in ("cp-1", "cp-2"):  # cp-1's gateway says offline; none holds cp-2
            with pytest.raises(StationOfflineError) as caught:
                await sink.install_default(station)
            said.append(str(caught.value))
        return said

    said, received, _ = _run(nats_broker, {"cp-1": CommandReply("Rejected", "offline")}, both)
    assert said == ["station 'cp-1' is not connected", "station 'cp-2' is not connected"]
    assert [subject for subject, _ in received] == ["lightson.cmd.cp-1"]


def test_no_answer_is_a_timeout(nats_broker: NatsServer) -> None:
    setpoint = Setpoint("cp-1", 7.2, UNTIL)
    answer, received, _ = _run(
        nats_broker,
        {"cp-1": None},
        lambda sink: sink.send_setpoint("cp-1", 1, setpoint),
        timeout_s=0.3,
    )
    assert answer == "Timeout" and len(received) == 1


def test_no_lease_no_command(nats_broker: NatsServer) -> None:
    outcome, received, _ = _run(
        nats_broker, {"cp-9": CommandReply("Accepted")}, lambda sink: sink.install_default("cp-9")
    )
    assert isinstance(outcome, NotLeasedError)
    assert received == []  # depot has no fence here: nothing went out
    outcome, received, _ = _run(
        nats_broker, {"cp-x": CommandReply("Accepted")}, lambda sink: sink.install_default("cp-x")
    )
    assert isinstance(outcome, NotLeasedError) and received == []  # not a station of ours

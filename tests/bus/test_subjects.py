"""The broker's names and messages."""

from __future__ import annotations

import pytest

from lightson.bus.subjects import Command, CommandReply, command_subject, site_subject


def test_subjects_carry_the_ids_as_one_token() -> None:
    assert command_subject("school-beverly-evse1") == "lightson.cmd.school-beverly-evse1"
    assert site_subject("home-03", "meter") == "lightson.site.home-03.meter"


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "a>", "a b"])
def test_an_id_that_would_split_or_widen_a_subject_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        command_subject(bad)


def test_command_and_reply_round_trip() -> None:
    command = Command("clear_profiles", "cp-1", "home-03", 7, {"evse_id": 1})
    assert Command.decode(command.encode()) == command
    reply = CommandReply("Rejected", "fenced")
    assert CommandReply.decode(reply.encode()) == reply


def test_setpoint_args_round_trip() -> None:
    from datetime import UTC, datetime

    from lightson.bus.subjects import setpoint_args, setpoint_from_args
    from lightson.domain.plan import Setpoint

    setpoint = Setpoint("cp-1", -2.5, datetime(2026, 7, 15, 12, 10, tzinfo=UTC))
    args = setpoint_args(2, setpoint, None, 600)
    assert args == {
        "evse_id": 2,
        "setpoint": {
            "evse_id": "cp-1",
            "power_kw": -2.5,
            "valid_until": "2026-07-15T12:10:00+00:00",
        },
        "transaction_id": None,
        "max_offline_s": 600,
    }
    assert setpoint_from_args(args) == (2, setpoint, None, 600)

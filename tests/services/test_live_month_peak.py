"""The live loop tells its controllers the month's expected peak (``serve --month-peak``,
#16): the context each site plans on carries it, recomputed when the month turns."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lightson.control.controllers import ControlContext
from lightson.domain.errors import UnknownNameError
from lightson.domain.time import SimClock
from lightson.forecast.month_peak import expected_month_peak_kw
from lightson.services import live as live_module
from lightson.services.live import LiveControl
from lightson.services.live_plans import control_context
from lightson.store import Store
from live_support import IN_EVENT, FakeSink, events_of, plugged, school
from net_support import run


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'live.db'}")
    yield store
    store.close()


def contexts_of_a_tick(
    store: Store, monkeypatch: pytest.MonkeyPatch, month_peak: str
) -> list[ControlContext]:
    """The contexts the loop's controller planned on in one tick of the school."""
    made: list[ControlContext] = []

    def recording(*args: Any, **kwargs: Any) -> ControlContext:
        context = control_context(*args, **kwargs)
        made.append(context)
        return context

    monkeypatch.setattr(live_module, "control_context", recording)
    program = school()
    loop = LiveControl(
        program, store, FakeSink(), SimClock(IN_EVENT), events_of(program), month_peak=month_peak
    )
    run(loop.tick("school-beverly"))
    return made


def test_the_context_carries_the_expected_peak_only_when_asked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for station in ("depot-evse1", "depot-evse2"):
        plugged(store, station, 0.8, IN_EVENT - timedelta(minutes=2), tx=f"tx-{station}")
    program = school()
    expected = contexts_of_a_tick(store, monkeypatch, "expected")
    so_far = contexts_of_a_tick(store, monkeypatch, "so-far")
    assert expected and so_far
    # What forecast.month_peak computes for the tick's site (the school's profile and
    # buses, July 2026: a demand charge), from the tick's instant to the end of July.
    want_kw = expected_month_peak_kw(program, expected[0].site, IN_EVENT)
    assert want_kw > 0
    assert [c.peak_expected_kw for c in expected] == [pytest.approx(want_kw)] * len(expected)
    assert [c.peak_expected_kw for c in so_far] == [0.0] * len(so_far)


def test_an_unknown_choice_is_refused(store: Store) -> None:
    with pytest.raises(UnknownNameError, match="month_peak"):
        LiveControl(school(), store, FakeSink(), SimClock(IN_EVENT), month_peak="horizon")

"""The twin passes the month's expected peak to the controller with ``--month-peak
expected`` (#16) and nothing with ``so-far``; an unknown choice is refused."""

from __future__ import annotations

from datetime import datetime

import pytest

from lightson.control.controllers import ControlContext, LinearProgramController
from lightson.domain.errors import UnknownNameError
from lightson.domain.plan import Plan
from lightson.forecast.month_peak import expected_month_peak_kw
from lightson.sim.engine import simulate_site
from lightson.sim.world import WorldOptions


@pytest.mark.parametrize("month_peak", ["expected", "so-far"])
def test_the_controller_plans_on_the_expected_peak_only_when_asked(
    example_program, monkeypatch: pytest.MonkeyPatch, month_peak: str
) -> None:  # type: ignore[no-untyped-def]
    seen: list[float] = []
    make_plan = LinearProgramController._make_plan

    def recording(self: LinearProgramController, context: ControlContext) -> Plan:
        seen.append(context.peak_expected_kw)
        return make_plan(self, context)

    monkeypatch.setattr(LinearProgramController, "_make_plan", recording)
    start = datetime(2026, 7, 20, tzinfo=example_program.timezone)
    simulate_site(
        example_program,
        "school-beverly",
        "v2x-mpc",
        start,
        4,
        options=WorldOptions(availability="schedule", month_peak=month_peak),
    )
    site = example_program.site("school-beverly")
    want_kw = expected_month_peak_kw(example_program, site, start)
    assert want_kw > 0  # a demand charge and a July the buses cannot shave to 0
    assert seen and set(seen) == {want_kw if month_peak == "expected" else 0.0}


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="month_peak"):
        WorldOptions(month_peak="horizon")

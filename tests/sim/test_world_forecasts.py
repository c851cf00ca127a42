"""The twin's forecasters: issued from the truth before each midnight only (#16)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pytest

from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError
from lightson.forecast import registry
from lightson.sim import world as world_module
from lightson.sim.world import HISTORY_DAYS, WorldOptions, build_world


def test_forecasts_are_issued_from_the_past_only(
    example_program: Program, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = example_program.sites[0]
    start = datetime(2026, 7, 13, tzinfo=example_program.timezone)
    n, horizon = 2 * 96, 8
    calls: list[tuple[Any, Any]] = []

    def spy(name, program, site, history, grid):  # type: ignore[no-untyped-def]
        calls.append((history, grid))
        return registry.forecast(name, program, site, history, grid)

    monkeypatch.setattr(world_module, "forecast", spy)
    options = WorldOptions(forecast="recent-days", peak_quantile=0.9)
    world = build_world(example_program, site, start, n, horizon, 3, options)
    plain = build_world(example_program, site, start, n, horizon, 3)
    assert np.array_equal(plain.load_kw, world.load_kw)  # the truth whatever the forecaster
    assert [issue for issue, _, _ in world.issued] == [0, 96]
    for (history, grid), (issue, values, upper) in zip(calls, world.issued, strict=True):
        assert history.grid.end == grid.start == world.grid.start + issue * world.grid.step
        assert history.grid.n_steps == HISTORY_DAYS * 96 + issue
        # its last ``issue`` intervals are the simulated truth before the issue, no more
        assert np.array_equal(history.load_kw[HISTORY_DAYS * 96 :], world.load_kw[:issue])
        assert len(values) == min(96 + horizon, world.grid.n_steps - issue)
        # the 90 % quantile the demand-peak constraint plans for, never below the median
        assert upper.shape == values.shape and np.all(upper >= values)
        assert registry.forecast("recent-days", example_program, site, history, grid).load_kw[
            0.9
        ] == pytest.approx(upper)
    # the controller at step k has the forecast issued at the last midnight before it
    assert np.array_equal(world.load_forecast_kw(100, 8), world.issued[1][1][4:12])
    assert np.array_equal(world.load_forecast_kw(95, 8), world.issued[0][1][95:103])
    assert np.array_equal(world.load_peak_forecast_kw(100, 8), world.issued[1][2][4:12])  # type: ignore[arg-type]
    assert plain.load_peak_forecast_kw(100, 8) is None  # the profile has no spread


def test_the_peak_quantile_is_one_of_the_forecast_levels() -> None:
    with pytest.raises(ConfigError, match=r"0\.1, 0\.5, 0\.9"):
        WorldOptions(peak_quantile=0.95)


def test_a_shifted_truth_is_not_the_profile(example_program: Program) -> None:
    site = example_program.sites[0]
    start = datetime(2026, 7, 13, tzinfo=example_program.timezone)
    shifted = build_world(example_program, site, start, 96, 4, 3, WorldOptions(truth_shift_h=3))
    plain = build_world(example_program, site, start, 96, 4, 3)
    profile = plain.forecast_load_kw
    assert np.array_equal(shifted.forecast_load_kw, profile)  # still told the profile
    # the same noise on the profile read three hours (12 steps) later
    assert np.allclose(shifted.load_kw[:84] / plain.load_kw[:84], profile[12:96] / profile[:84])
    assert not np.allclose(shifted.load_kw, plain.load_kw)

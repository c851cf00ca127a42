"""The simulator: energy closes, rules hold, results are reproducible."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from lightson.physics.battery import next_energy_kwh
from lightson.sim.engine import simulate_site
from lightson.sim.kpis import site_kpis
from lightson.sim.runner import largest_first, simulate_program

DAYS = 3


@pytest.fixture(scope="module")
def runs(example_program):  # type: ignore[no-untyped-def]
    start = datetime(2026, 7, 14, tzinfo=example_program.timezone)
    return {
        (controller, site.site_id): simulate_site(
            example_program, site.site_id, controller, start, 96 * DAYS, seed=3
        )
        for controller in ("unmanaged", "smart-charge", "v2x-mpc", "perfect-foresight")
        for site in example_program.sites
    }


def test_energy_balance_closes_at_every_site_and_step(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    for (_, site_id), run in runs.items():
        site = example_program.site(site_id)
        used_pv = run.pv_kw - run.pv_curtailed_kw
        np.testing.assert_allclose(
            run.net_kw, run.load_served_kw - used_pv + run.power_kw.sum(axis=0), atol=1e-9
        )
        outside = ~run.in_outage
        np.testing.assert_array_equal(run.load_served_kw[outside], run.load_kw[outside])
        for i, vehicle in enumerate(site.vehicles):
            energy = vehicle.initial_soc * vehicle.battery_kwh
            for k in range(run.n_steps):
                energy = (
                    next_energy_kwh(
                        energy,
                        run.power_kw[i, k],
                        run.step_h,
                        vehicle.charge_efficiency,
                        vehicle.discharge_efficiency,
                        run.trip_energy_kwh[i, k],
                    )
                    + run.unserved_trip_kwh[i, k]
                )
                assert run.energy_kwh[i, k] == pytest.approx(energy, abs=1e-9)


def test_hard_rules_hold_in_simulation(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    for (controller, site_id), run in runs.items():
        site = example_program.site(site_id)
        if not site.export_permitted:
            assert np.all(run.net_kw >= np.minimum(0.0, run.load_kw - run.pv_kw) - 1e-6), (
                controller,
                site_id,
            )
        assert np.all(run.power_kw[~run.plugged] == 0.0)
        for i, vehicle in enumerate(site.vehicles):
            assert run.energy_kwh[i].max() <= vehicle.max_energy_kwh + 1e-6
        if controller in ("unmanaged", "smart-charge"):  # backup in an outage is not theirs
            assert run.power_kw[:, ~run.in_outage].min() >= 0.0, f"{controller} discharged"


def test_unmanaged_charges_at_full_power_on_plug_in(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    run = runs[("unmanaged", "school-beverly")]  # July: buses stay home, start at 70 % and 60 %
    assert run.power_kw[0, 0] == pytest.approx(60.0)
    assert run.power_kw[1, 0] == pytest.approx(60.0)


def test_needs_are_met_and_v2x_delivers_in_the_event(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    for (controller, site_id), run in runs.items():
        kpis, events = site_kpis(example_program, run)
        assert kpis.departures_below_target == 0, (controller, site_id)
        assert kpis.unserved_trip_kwh == 0.0
    school_mpc, events = site_kpis(example_program, runs[("v2x-mpc", "school-beverly")])
    # Two 60 kW buses, export approved: far more than the school's load during the event.
    assert school_mpc.dr_events == 1 and events[0].delivered_kw > 90.0
    unmanaged, _ = site_kpis(example_program, runs[("unmanaged", "school-beverly")])
    assert unmanaged.dr_average_kw == 0.0
    assert school_mpc.net_cost_usd < unmanaged.net_cost_usd


def test_the_same_seed_gives_the_same_run_with_any_number_of_workers(example_program) -> None:  # type: ignore[no-untyped-def]
    start = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    ids = [s.site_id for s in example_program.sites]
    one = simulate_program(example_program, "v2x-mpc", start, 48, ids, seed=5, workers=1)
    two = simulate_program(example_program, "v2x-mpc", start, 48, ids, seed=5, workers=2)
    other_seed = simulate_program(example_program, "v2x-mpc", start, 48, ids[:1], seed=6, workers=1)
    for a, b in zip(one.runs, two.runs, strict=True):
        assert a.site_id == b.site_id
        np.testing.assert_array_equal(a.power_kw, b.power_kw)
        np.testing.assert_array_equal(a.load_kw, b.load_kw)
    assert not np.array_equal(one.runs[0].load_kw, other_seed.runs[0].load_kw)
    # The pool gets the largest sites first (two vehicles each, in program order, then the
    # home's one), and the results still come back in the order asked.
    assert largest_first(example_program, ids) == [
        "business-worcester",
        "school-beverly",
        "home-lowell",
    ]
    assert [r.site_id for r in two.runs] == ids


def test_pinned_kpis_of_a_small_unmanaged_run(example_program) -> None:  # type: ignore[no-untyped-def]
    # Unmanaged involves no solver, so its figures are fixed by the data, the seed and the
    # physics alone. Hand check of the school: both buses start July at 70 % and 60 % and
    # charge to full at 60 kW: (0.3·226 + 0.4·196) / 0.92 kWh from the grid.
    start = datetime(2026, 7, 14, tzinfo=example_program.timezone)
    run = simulate_site(example_program, "school-beverly", "unmanaged", start, 96 * 2, seed=3)
    kpis, _ = site_kpis(example_program, run)
    assert kpis.charged_kwh == pytest.approx((0.3 * 226 + 0.4 * 196) / 0.92)
    assert kpis.discharged_kwh == 0.0
    assert kpis.fixed_cost_usd == pytest.approx(50.0 * 2 / (365.25 / 12))
    assert kpis.energy_cost_usd == pytest.approx(0.20 * kpis.import_kwh)
    # Everything charged is still in the batteries: valued at what it cost to put in.
    assert kpis.stored_energy_change_kwh == pytest.approx(0.3 * 226 + 0.4 * 196)
    assert kpis.stored_energy_value_usd == pytest.approx(kpis.charged_kwh * 0.20)
    expected_net = (
        kpis.bill_usd + kpis.degradation_usd - kpis.dr_payment_usd - kpis.stored_energy_value_usd
    )
    assert kpis.net_cost_usd == pytest.approx(expected_net)


def test_ray_gives_the_same_results_as_the_local_engine(example_program) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ray")
    start = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    ids = [s.site_id for s in example_program.sites]
    local = simulate_program(example_program, "v2x-mpc", start, 32, ids, seed=9, workers=1)
    seen: list[str] = []
    on_ray = simulate_program(
        example_program,
        "v2x-mpc",
        start,
        32,
        ids,
        seed=9,
        workers=2,
        engine="ray",
        on_site_done=lambda run: seen.append(run.site_id),
    )
    assert sorted(seen) == sorted(ids)
    for a, b in zip(local.runs, on_ray.runs, strict=True):
        assert a.site_id == b.site_id
        np.testing.assert_array_equal(a.power_kw, b.power_kw)
        np.testing.assert_array_equal(a.energy_kwh, b.energy_kwh)
        np.testing.assert_array_equal(a.net_kw, b.net_kw)


def test_an_unknown_engine_is_refused(example_program) -> None:  # type: ignore[no-untyped-def]
    from lightson.domain.errors import ConfigError

    start = datetime(2026, 7, 15, tzinfo=example_program.timezone)
    with pytest.raises(ConfigError, match="unknown engine 'dask'; known: local, ray"):
        simulate_program(example_program, "unmanaged", start, 4, ["home-lowell"], engine="dask")


def test_the_school_rides_through_the_storm_outage_islanded(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    for controller in ("unmanaged", "v2x-mpc"):
        run = runs[(controller, "school-beverly")]
        # 10:00-18:00 on 16 July, and the 18:00 step: the grid is back but the site waits the
        # 300 s enter-service delay before it re-synchronizes (at 15-minute steps, one step).
        assert run.in_outage.sum() == 33
        assert np.all(run.net_kw[run.in_outage] == 0.0), "no grid while islanded"
        kpis, _ = site_kpis(example_program, run)
        assert kpis.outage_hours == 8.25
        assert np.all(run.load_served_kw[run.in_outage] <= run.load_kw[run.in_outage] + 1e-9)
        assert kpis.critical_unserved_kwh == pytest.approx(run.critical_unserved_kw.sum() * 0.25)
    # Unmanaged charging leaves both buses full: the critical tier is carried all 8 hours.
    unmanaged, _ = site_kpis(example_program, runs[("unmanaged", "school-beverly")])
    assert unmanaged.critical_unserved_kwh == pytest.approx(0.0, abs=1e-6)
    home = runs[("v2x-mpc", "home-lowell")]
    assert not home.in_outage.any()


def _with(program, **changes):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(program, **changes)


def test_power_given_in_an_outage_is_not_paid_as_demand_response(example_program) -> None:  # type: ignore[no-untyped-def]
    from lightson.domain.outages import Outage

    tz = example_program.timezone
    storm = Outage(
        "storm",
        frozenset({"school-beverly"}),
        datetime(2026, 7, 15, 14, tzinfo=tz),
        datetime(2026, 7, 15, 19, tzinfo=tz),
    )
    program = _with(example_program, outages=(storm,))
    run = simulate_site(
        program, "school-beverly", "unmanaged", datetime(2026, 7, 15, tzinfo=tz), 96, seed=3
    )
    assert run.power_kw[:, run.in_event].min() < 0  # the buses did carry the school in the event
    kpis, events = site_kpis(program, run)
    assert [e.delivered_kw for e in events] == [0.0]
    assert kpis.dr_payment_usd == 0.0


def test_the_payment_is_a_share_of_the_season_and_demand_is_prorated(example_program, runs) -> None:  # type: ignore[no-untyped-def]
    run = runs[("v2x-mpc", "school-beverly")]
    kpis, events = site_kpis(example_program, run)
    (event,) = events  # one cs-ci-daily event of the 45 the season expects
    assert kpis.dr_payment_usd == pytest.approx(200.0 * event.delivered_kw / 45)
    july_peak = float(np.clip(run.net_kw, 0, None).max())
    assert kpis.demand_cost_usd == pytest.approx(27.0 * july_peak * DAYS / 31)


def test_a_departure_below_its_target_is_counted(example_program) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    tz = example_program.timezone
    home = example_program.site("home-lowell")
    (truck,) = home.vehicles
    empty_home = replace(home, vehicles=(replace(truck, initial_soc=0.05),))
    program = _with(example_program, sites=(empty_home,))
    # 05:00 start, leaving about 06:30 with ~1.5 h of 19.2 kW: short of 19 kWh + 20 % floor.
    run = simulate_site(
        program, "home-lowell", "unmanaged", datetime(2026, 3, 11, 5, tzinfo=tz), 16, seed=1
    )
    kpis, _ = site_kpis(program, run)
    assert kpis.departures_below_target == 1
    assert kpis.departure_shortfall_kwh > 5.0


def test_the_site_re_syncs_only_after_the_enter_service_delay(example_program) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from lightson.domain.outages import Outage

    tz = example_program.timezone
    start, end = datetime(2026, 7, 15, 10, tzinfo=tz), datetime(2026, 7, 15, 12, tzinfo=tz)
    site = "school-beverly"

    def islanded_steps(delay: timedelta) -> list[int]:
        outage = Outage("storm", frozenset({site}), start, end, delay)
        program = _with(example_program, outages=(outage,), events=())
        run = simulate_site(program, site, "unmanaged", datetime(2026, 7, 15, tzinfo=tz), 96, 1)
        return [int(k) for k in np.flatnonzero(run.in_outage)]

    assert islanded_steps(timedelta(0)) == list(range(40, 48))  # 10:00-12:00 exactly
    delayed = islanded_steps(timedelta(seconds=300))
    assert delayed == list(range(40, 49))  # 12:00-12:15 still islanded, parallel from 12:15
    assert islanded_steps(timedelta(minutes=20)) == list(range(40, 50))

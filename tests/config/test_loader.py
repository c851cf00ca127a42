"""The program file: defaults from catalogs, and errors that name the field and rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lightson.config import load_program, parse_program
from lightson.domain.assets import OcppVersion, PowerKind, SiteKind
from lightson.domain.errors import ConfigError

MINIMAL = """
program: {name: test}
sites:
  - id: home
    kind: home
    utility: national-grid
    service_limit_kw: 48
    tariff: ma-residential-flat
    building: {constant_kw: 1.5}
    chargers: [{id: evse, model: ford-charge-station-pro}]
    vehicles: [{id: truck, model: ford-f150-lightning-er}]
"""


def _issues(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_program(textwrap.dedent(text))
    return dict(caught.value.issues)


def test_the_bundled_example_has_a_home_a_business_and_a_school(example_program) -> None:  # type: ignore[no-untyped-def]
    kinds = [s.kind for s in example_program.sites]
    assert kinds == [SiteKind.HOME, SiteKind.BUSINESS, SiteKind.SCHOOL]
    home, business, school = example_program.sites
    assert [v.model for v in home.vehicles] == ["ford-f150-lightning-er"]
    assert [v.model for v in business.vehicles] == ["kia-ev9-100", "kia-ev9-76"]
    assert [v.model for v in school.vehicles] == ["thomas-jouley-226", "bluebird-vision-196"]
    assert example_program.weather is not None


def test_a_catalog_model_fills_in_the_defaults() -> None:
    program = parse_program(MINIMAL)
    (site,) = program.sites
    (truck,) = site.vehicles
    assert truck.battery_kwh == 131.0
    assert truck.max_discharge_kw == 9.6
    assert truck.v2x_capable
    assert truck.evse_id == "evse"  # the only charger at the site
    charger = site.charger("evse")
    assert (charger.power_kind, charger.max_discharge_kw, charger.protocol) == (
        PowerKind.AC,
        9.6,
        OcppVersion.V201,
    )
    assert site.building.load_profile.values[1234] == 1.5


def test_a_field_given_in_the_file_overrides_the_catalog() -> None:
    text = MINIMAL.replace(
        "{id: truck, model: ford-f150-lightning-er}",
        "{id: truck, model: ford-f150-lightning-er, battery_kwh: 98, max_discharge_kw: 7.2}",
    )
    (truck,) = parse_program(text).sites[0].vehicles
    assert (truck.battery_kwh, truck.max_discharge_kw) == (98.0, 7.2)


def test_a_bad_number_is_named_by_its_path_and_rule() -> None:
    issues = _issues(
        MINIMAL.replace(
            "model: ford-f150-lightning-er}", "model: ford-f150-lightning-er, battery_kwh: -3}"
        )
    )
    assert issues == {"sites[0].vehicles[0].battery_kwh": "must be > 0.0"}


def test_an_unknown_model_lists_the_known_ones() -> None:
    issues = _issues(MINIMAL.replace("model: ford-f150-lightning-er", "model: tesla-cybertruck"))
    rule = issues["sites[0].vehicles[0].model"]
    assert rule.startswith("unknown vehicle model 'tesla-cybertruck'; known: ")
    assert "ford-f150-lightning-er" in rule and "thomas-jouley-226" in rule


def test_every_problem_is_reported_at_once() -> None:
    text = MINIMAL.replace("tariff: ma-residential-flat", "tariff: nope").replace(
        "{id: evse, model: ford-charge-station-pro}", "{id: evse, model: nope}"
    )
    issues = _issues(text)
    assert set(issues) == {"sites[0].tariff", "sites[0].chargers[0].model"}


def test_a_misspelt_field_is_refused() -> None:
    issues = _issues(
        MINIMAL.replace("service_limit_kw: 48", "service_limit_kw: 48\n    servce_limit: 3")
    )
    assert issues["sites[0].servce_limit"].startswith("unknown field")


def test_cross_references_are_checked() -> None:
    text = (
        MINIMAL.replace(
            "vehicles: [{id: truck, model: ford-f150-lightning-er}]",
            "vehicles: [{id: truck, model: ford-f150-lightning-er, charger: garage},"
            " {id: truck, model: nissan-leaf-40, charger: evse}]",
        )
        + "    enrollments: [cs-nowhere]\n"
    )
    issues = _issues(text)
    assert (
        issues["sites[0].vehicles[0].charger"]
        == "unknown charger 'garage'; chargers at this site: evse"
    )
    assert issues["sites[0].vehicles[1].id"] == "duplicate vehicle id 'truck'"
    assert issues["sites[0].enrollments[0]"].startswith(
        "unknown demand-response program 'cs-nowhere'"
    )


def test_trips_need_exactly_one_energy_and_clock_times() -> None:
    text = MINIMAL.replace(
        "model: ford-f150-lightning-er}",
        "model: ford-f150-lightning-er, trips: [{depart: '7:30', return: '17:00'},"
        " {depart: '08:00', return: '17:00', miles: 30, energy_kwh: 10}]}",
    )
    issues = _issues(text)
    assert issues["sites[0].vehicles[0].trips[0].depart"] == "must look like HH:MM (24-hour clock)"


def test_trip_miles_use_the_models_energy_per_mile() -> None:
    text = MINIMAL.replace(
        "model: ford-f150-lightning-er}",
        "model: ford-f150-lightning-er, trips: [{days: [mon, wed], depart: '07:30',"
        " return: '17:00', miles: 30}]}",
    )
    (trip,) = parse_program(text).sites[0].vehicles[0].trips
    assert trip.energy_kwh == pytest.approx(30 * 0.50)
    assert trip.weekdays == frozenset({0, 2})


def test_events_are_read_in_program_time_and_checked() -> None:
    text = MINIMAL + textwrap.dedent("""
    events:
      - {id: e1, program: cs-residential-battery,
         start: "2026-07-15T15:00", end: "2026-07-15T18:00"}
      - {id: e1, program: cs-residential-battery,
         start: "2026-07-16T18:00", end: "2026-07-16T15:00"}
    """)
    issues = _issues(text)
    assert issues == {
        "events[1].id": "duplicate event id 'e1'",
        "events[1].end": "must be after start",
    }
    first_only = "\n".join(text.splitlines()[:-2])
    program = parse_program(first_only)
    (event,) = program.events
    assert event.start.utcoffset().total_seconds() == -4 * 3600  # EDT


def test_yaml_syntax_errors_give_the_line() -> None:
    issues = _issues("program: {name: test\nsites: [")
    (where,) = issues
    assert where.startswith("line ")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read program file"):
        load_program(tmp_path / "absent.yaml")


def test_a_building_load_file_is_read_relative_to_the_program(tmp_path: Path) -> None:
    source = Path(__file__).parents[2] / "src/lightson/data/loads/residential"
    (tmp_path / "loads").mkdir()
    (tmp_path / "loads/house.csv").write_text(
        (source / "USA_MA_Boston-Logan.Intl.AP.725090_TMY3_LOW.csv").read_text()
    )
    program_file = tmp_path / "program.yaml"
    program_file.write_text(
        MINIMAL.replace("{constant_kw: 1.5}", "{file: loads/house.csv, scale: 2}")
    )
    building = load_program(program_file).sites[0].building
    assert building.scale == 2
    assert building.load_profile.values.sum() == pytest.approx(4382, rel=1e-3)


def test_the_bundled_beverly_scenario_has_one_bus_and_thirty_summer_events() -> None:
    program = load_program("beverly-2021")
    (site,) = program.sites
    (bus,) = site.vehicles
    assert (bus.model, bus.battery_kwh, site.charger(bus.evse_id).max_discharge_kw) == (
        "thomas-jouley-226",
        226.0,
        60.0,
    )
    assert len(program.events) == 30
    assert all(6 <= e.start.month <= 9 and e.start.year == 2021 for e in program.events)


def test_unquoted_clock_times_and_timestamps_read_as_written() -> None:
    text = (
        MINIMAL.replace(
            "model: ford-f150-lightning-er}",
            "model: ford-f150-lightning-er, trips: [{depart: 6:30, return: 14:30, miles: 20}]}",
        )
        + "events:\n  - {id: e, program: cs-ci-daily,\n"
        + "     start: 2026-07-15 15:00:00, end: 2026-07-15 18:00:00}\n"
    )
    program = parse_program(text)
    (trip,) = program.sites[0].vehicles[0].trips
    assert (trip.depart_local.hour, trip.depart_local.minute, trip.return_local.hour) == (6, 30, 14)
    assert program.events[0].start.hour == 15


@pytest.mark.parametrize(
    ("change", "path", "rule"),
    [
        (("battery_kwh: 0", "battery_kwh: .nan"), "sites[0].vehicles[0].battery_kwh", "finite"),
        (("battery_kwh: 0", "battery_kwh: .inf"), "sites[0].vehicles[0].battery_kwh", "finite"),
        (
            (
                "{id: truck, model: ford-f150-lightning-er, battery_kwh: 0}",
                "{id: truck, model: ford-f150-lightning-er, trips: [{depart: '06:00',"
                " return: '07:00', miles: 3, except_dates: [2026-02-30]}]}",
            ),
            "YAML",
            "not a valid value",
        ),
    ],
)
def test_non_finite_numbers_and_impossible_dates_are_refused(
    change: tuple[str, str], path: str, rule: str
) -> None:
    text = MINIMAL.replace(
        "{id: truck, model: ford-f150-lightning-er}",
        "{id: truck, model: ford-f150-lightning-er, battery_kwh: 0}",
    ).replace(*change)
    issues = _issues(text)
    assert rule in issues[path]


def test_an_export_credit_above_the_price_is_refused_where_the_tariff_is_written() -> None:
    text = MINIMAL.replace("tariff: ma-residential-flat", "tariff: mine") + (
        "tariffs:\n  mine: {energy_usd_per_kwh: 0.2, export_credit_usd_per_kwh: 0.3}\n"
    )
    assert _issues(text) == {
        "tariffs.mine.export_credit_usd_per_kwh": (
            "must not exceed the lowest energy price (0.2 $/kWh)"
        )
    }


def test_pv_without_weather_is_refused() -> None:
    text = MINIMAL.replace("program: {name: test}", "program: {name: test, weather: null}").replace(
        "building: {constant_kw: 1.5}", "building: {constant_kw: 1.5}\n    pv: {kw_dc: 5}"
    )
    assert _issues(text) == {"sites[0].pv": "PV output needs weather: set program.weather"}


def test_an_outage_may_release_route_reserves_of_its_own_sites_only() -> None:
    outage = (
        '\noutages:\n  - {id: storm, sites: [home], start: "2026-07-16T10:00", '
        'end: "2026-07-16T18:00", enter_service_delay_s: 120, release_route_reserve: [%s]}\n'
    )
    program = parse_program(textwrap.dedent(MINIMAL) + outage % "truck")
    (storm,) = program.outages
    assert storm.released_vehicles == {"truck"}
    assert storm.enter_service_delay.total_seconds() == 120
    issues = _issues(textwrap.dedent(MINIMAL) + outage % "bus-99")
    assert (
        "unknown vehicle at these sites 'bus-99'" in issues["outages[0].release_route_reserve[0]"]
    )

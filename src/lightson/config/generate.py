"""Program files generated from the program's published shape, deterministic from a seed.

``ma_2026_program`` writes a program shaped like the Massachusetts V2X Demonstration
Program (DOMAIN.md): about 55 homes, 4 commercial or municipal sites with about 30
chargers, 3 school depots with 15 buses, on National Grid, Eversource, Unitil and a
municipal light plant (outside ConnectedSolutions), with the 2026 ConnectedSolutions
season chosen from real Boston-zone load (``sim.calendar``). The output is plain program
configuration: replace any site with a real one.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import yaml

from lightson.datasets.ev import read_home_arrivals
from lightson.datasets.grid import read_zone_load
from lightson.sim.calendar import connected_solutions_events

TZ = "America/New_York"
HOME_VEHICLES = {  # model: (share, charger)
    "ford-f150-lightning-er": (0.25, "ford-charge-station-pro"),
    "ford-f150-lightning-sr": (0.15, "ford-charge-station-pro"),
    "kia-ev9-100": (0.15, "wallbox-quasar2"),
    "kia-ev9-76": (0.10, "wallbox-quasar2"),
    "nissan-leaf-62": (0.20, "fermata-fe20"),
    "nissan-leaf-40": (0.15, "fermata-fe15"),
}
UTILITIES = {  # utility: (share of homes, residential tariff, in ConnectedSolutions)
    "national-grid": (0.50, "ma-residential-flat", True),
    "eversource": (0.35, "ma-eversource-east-residential", True),
    "unitil": (0.05, "unitil-residential", True),
    "municipal-light-plant": (0.10, "mlp-residential", False),
}
EXTRA_TARIFFS = {
    "unitil-residential": {
        "energy_usd_per_kwh": 0.30,
        "fixed_usd_per_month": 9.0,
        "source": "Unitil MA residential, all-in [assumed]",
    },
    "mlp-residential": {
        "energy_usd_per_kwh": 0.22,
        "fixed_usd_per_month": 8.0,
        "source": "a municipal light plant, all-in [assumed]",
    },
}
SCHOOL_MONTHS = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12]


def ma_2026_program(
    seed: int = 2026, reference_year: int = 2024, n_homes: int = 55
) -> dict[str, Any]:
    """The ``ma-2026`` program as a program-file document (a dict ready for YAML)."""
    rng = np.random.default_rng(seed)
    events = connected_solutions_events(
        read_zone_load(),
        2026,
        reference_year,
        ZoneInfo(TZ),
        {
            "daily": "cs-ci-daily",
            "residential": "cs-residential-battery",
            "targeted": "cs-ci-targeted",
        },
    )
    return {
        "program": {
            "name": "Massachusetts V2X Demonstration Program 2026 (generated)",
            "timezone": TZ,
            "step_minutes": 15,
            "weather": "boston-logan-tmy3",
        },
        "tariffs": EXTRA_TARIFFS,
        "events": [
            {
                "id": e.event_id,
                "program": e.program_id,
                "start": e.start.isoformat(timespec="minutes"),
                "end": e.end.isoformat(timespec="minutes"),
                "announced": e.announced_at.isoformat(timespec="minutes")
                if e.announced_at
                else None,
            }
            for e in events
        ],
        "outages": [  # so backup is exercised; replace with the real ones
            {
                "id": "summer-storm-school",
                "sites": ["school-lawrence"],
                "start": "2026-07-25T12:00-04:00",
                "end": "2026-07-25T20:00-04:00",
            },
            {
                "id": "winter-storm-homes",
                "sites": [f"home-{i:02d}" for i in range(1, min(n_homes, 12) + 1)],
                "start": "2026-01-26T18:00-05:00",
                "end": "2026-01-28T06:00-05:00",
            },
        ],
        "sites": [_home(i, rng) for i in range(1, n_homes + 1)] + _businesses(rng) + _schools(),
    }


def program_yaml(document: dict[str, Any], header: str) -> str:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(document, sort_keys=False, width=110, allow_unicode=True)


def _pick(rng: np.random.Generator, shares: dict[str, Any]) -> str:
    names = list(shares)
    weights = np.array([shares[n][0] for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _clock(hours: float) -> str:
    minutes = round(hours * 4) * 15 % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _arrival_hour(rng: np.random.Generator, weekend: bool, earliest: float) -> float:
    bins = [
        (t.hour + t.minute / 60, share)
        for t, share in read_home_arrivals(weekend)
        if t.hour + t.minute / 60 >= earliest
    ]
    weights = np.array([s for _, s in bins])
    return bins[int(rng.choice(len(bins), p=weights / weights.sum()))][0]


def _home(i: int, rng: np.random.Generator) -> dict[str, Any]:
    utility = _pick(rng, UTILITIES)
    _, tariff, in_cs = UTILITIES[utility]
    model = _pick(rng, HOME_VEHICLES)
    commute_back = _arrival_hour(rng, weekend=False, earliest=14.0)
    errand_back = _arrival_hour(rng, weekend=True, earliest=11.0)
    site: dict[str, Any] = {
        "id": f"home-{i:02d}",
        "kind": "home",
        "utility": utility,
        "service_limit_kw": 48.0,
        "export_permitted": bool(rng.random() < 0.2),
        "tariff": tariff,
        "building": {
            "profile": str(
                rng.choice(["residential-base"] * 3 + ["residential-high", "residential-low"])
            ),
            "critical_share": 0.35,
            "essential_share": 0.7,
        },
    }
    if rng.random() < 0.4:
        site["pv"] = {
            "kw_dc": float(round(rng.uniform(4.0, 9.0), 1)),
            "tilt_deg": 25.0,
            "azimuth_deg": float(round(rng.uniform(150, 220))),
        }
    site["enrollments"] = ["cs-residential-battery"] if in_cs else []
    site["chargers"] = [{"id": f"home-{i:02d}-evse", "model": HOME_VEHICLES[model][1]}]
    site["vehicles"] = [
        {
            "id": f"home-{i:02d}-car",
            "model": model,
            "reserve_soc": float(round(rng.uniform(0.2, 0.35), 2)),
            "initial_soc": 0.6,
            "trips": [
                {
                    "days": "weekdays",
                    "depart": _clock(commute_back - rng.uniform(7.5, 10.0)),
                    "return": _clock(commute_back),
                    "miles": float(round(rng.uniform(15, 45))),
                },
                {
                    "days": "weekends",
                    "depart": _clock(errand_back - rng.uniform(1.5, 5.0)),
                    "return": _clock(errand_back),
                    "miles": float(round(rng.uniform(8, 30))),
                },
            ],
        }
    ]
    return site


def _fleet(
    prefix: str,
    models: list[tuple[str, str]],
    shift: tuple[str, str],
    miles: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    chargers, vehicles = [], []
    for j, (vehicle, charger) in enumerate(models, start=1):
        chargers.append({"id": f"{prefix}-evse{j}", "model": charger})
        vehicles.append(
            {
                "id": f"{prefix}-v{j}",
                "model": vehicle,
                "charger": f"{prefix}-evse{j}",
                "initial_soc": 0.6,
                "trips": [
                    {
                        "days": "weekdays",
                        "depart": shift[0],
                        "return": shift[1],
                        "miles": float(round(rng.uniform(*miles))),
                    }
                ],
            }
        )
    return chargers, vehicles


def _businesses(rng: np.random.Generator) -> list[dict[str, Any]]:
    ev9, f150, leaf, plain = (
        ("kia-ev9-100", "wallbox-quasar2"),
        ("ford-f150-lightning-er", "ford-charge-station-pro"),
        ("nissan-leaf-62", "fermata-fe20"),
        ("generic-ev-60", "ac-level2-11"),
    )
    layout = [  # id, kind, utility, profile, scale, export, fleet, shift, miles
        (
            "town-hall",
            "business",
            "eversource",
            "doe-small-office",
            2.0,
            False,
            [ev9] * 3 + [plain] * 3,
            ("08:30", "15:30"),
            (20, 40),
        ),
        (
            "dpw-fleet",
            "business",
            "national-grid",
            "doe-warehouse",
            1.0,
            True,
            [f150] * 4 + [plain] * 4,
            ("07:00", "15:00"),
            (30, 60),
        ),
        (
            "office-park",
            "business",
            "national-grid",
            "doe-medium-office",
            0.5,
            False,
            [ev9] * 7,
            ("10:00", "14:00"),
            (15, 35),
        ),
        (
            "retail-center",
            "business",
            "unitil",
            "doe-stand-alone-retail",
            1.0,
            False,
            [leaf] * 4 + [plain] * 5,
            ("09:00", "12:00"),
            (10, 25),
        ),
    ]
    sites = []
    for name, kind, utility, profile, scale, export, fleet, shift, miles in layout:
        chargers, vehicles = _fleet(name, fleet, shift, miles, rng)
        sites.append(
            {
                "id": name,
                "kind": kind,
                "utility": utility,
                "service_limit_kw": 400.0,
                "export_permitted": export,
                "tariff": "ma-commercial-demand",
                "building": {"profile": profile, "scale": scale},
                "enrollments": ["cs-ci-daily"],
                "chargers": chargers,
                "vehicles": vehicles,
            }
        )
    return sites


def school_days_off(year: int) -> list[date]:
    """MA public holidays and typical school vacations of ``year`` (weekdays only; July and
    August are left out of the routes by month)."""
    off = set(holidays.country_holidays("US", subdiv="MA", years=year))
    ranges = [
        (date(year, 1, 1), date(year, 1, 2)),
        (date(year, 2, 16), date(year, 2, 20)),
        (date(year, 4, 20), date(year, 4, 24)),
        (date(year, 6, 19), date(year, 6, 30)),
        (date(year, 9, 1), date(year, 9, 8)),
        (date(year, 11, 25), date(year, 11, 27)),
        (date(year, 12, 24), date(year, 12, 31)),
    ]
    for first, last in ranges:
        day = first
        while day <= last:
            off.add(day)
            day += timedelta(days=1)
    return sorted(d for d in off if d.weekday() < 5)


def _schools() -> list[dict[str, Any]]:
    days_off = [d.isoformat() for d in school_days_off(2026)]
    routes = [
        {
            "days": "weekdays",
            "depart": "06:30",
            "return": "09:00",
            "miles": 12.5,
            "months": SCHOOL_MONTHS,
            "except_dates": days_off,
        },
        {
            "days": "weekdays",
            "depart": "14:00",
            "return": "16:30",
            "miles": 12.5,
            "months": SCHOOL_MONTHS,
            "except_dates": days_off,
        },
    ]
    layout = [
        (
            "school-beverly",
            "national-grid",
            "doe-primary-school",
            1.0,
            [
                "thomas-jouley-226",
                "thomas-jouley-226",
                "thomas-jouley-244",
                "bluebird-vision-196",
                "bluebird-vision-196",
            ],
        ),
        (
            "school-lawrence",
            "national-grid",
            "doe-secondary-school",
            0.5,
            ["thomas-jouley-244"] * 3 + ["thomas-jouley-226"] * 2,
        ),
        (
            "school-worcester",
            "eversource",
            "doe-primary-school",
            1.2,
            ["bluebird-vision-196"] * 3 + ["thomas-jouley-226"] * 2,
        ),
    ]
    sites = []
    for name, utility, profile, scale, buses in layout:
        sites.append(
            {
                "id": name,
                "kind": "school",
                "utility": utility,
                "service_limit_kw": 800.0,
                "export_permitted": True,
                "tariff": "ma-commercial-demand",
                "building": {
                    "profile": profile,
                    "scale": scale,
                    "critical_share": 0.2,
                    "essential_share": 0.5,
                },
                "enrollments": ["cs-ci-daily"],
                "chargers": [
                    {"id": f"{name}-evse{j}", "model": "dc-bidirectional-60"}
                    for j in range(1, len(buses) + 1)
                ],
                "vehicles": [
                    {
                        "id": f"{name}-bus{j}",
                        "model": bus,
                        "charger": f"{name}-evse{j}",
                        "reserve_soc": 0.2,
                        "initial_soc": 0.7,
                        "trips": routes,
                    }
                    for j, bus in enumerate(buses, start=1)
                ],
            }
        )
    return sites

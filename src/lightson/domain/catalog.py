"""Catalogs of the vehicles, chargers, tariffs and demand-response offers in the
Massachusetts V2X Demonstration Program, so a program file can say
``model: ford-f150-lightning-er`` and get these defaults (any field can be overridden).

Sources: ``shared/DOMAIN.md`` (program facts) and the manufacturers' published figures
it cites. Values nobody has published are marked ``[assumed]`` in ``source``: they are
knobs, not facts.
"""

from __future__ import annotations

from dataclasses import dataclass

from lightson.domain.assets import OcppVersion, PowerKind
from lightson.domain.demand_response import DRProgram
from lightson.domain.registry import Registry
from lightson.domain.tariffs import Tariff


@dataclass(frozen=True)
class VehicleModel:
    """Catalog defaults for a vehicle model. ``battery_kwh`` is usable capacity."""

    name: str
    battery_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    v2x_capable: bool
    kwh_per_mile: float
    charge_efficiency: float = 0.92
    discharge_efficiency: float = 0.92
    source: str = ""


@dataclass(frozen=True)
class ChargerModel:
    name: str
    power_kind: PowerKind
    max_charge_kw: float
    max_discharge_kw: float
    protocol: OcppVersion
    source: str = ""


VEHICLE_MODELS: Registry[VehicleModel] = Registry("vehicle model")
CHARGER_MODELS: Registry[ChargerModel] = Registry("charger model")
TARIFFS: Registry[Tariff] = Registry("tariff")
DR_PROGRAMS: Registry[DRProgram] = Registry("demand-response program")

_EFF = "efficiencies 0.92 each way [assumed]"
for _vm in (
    VehicleModel(
        "ford-f150-lightning-sr",
        98.0,
        11.3,
        9.6,
        True,
        0.48,
        source=f"DOMAIN.md: 98 kWh usable, 9.6 kW export via Charge Station Pro; 11.3 kW onboard charger; 0.48 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "ford-f150-lightning-er",
        131.0,
        19.2,
        9.6,
        True,
        0.50,
        source=f"DOMAIN.md: 131 kWh usable, 9.6 kW export; 19.2 kW onboard charger (80 A); 0.50 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "nissan-leaf-40",
        40.0,
        15.0,
        15.0,
        True,
        0.28,
        source=f"DOMAIN.md: 40 kWh, CHAdeMO DC with Fermata FE-15 (~15 kW); 0.28 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "nissan-leaf-62",
        62.0,
        20.0,
        20.0,
        True,
        0.30,
        source=f"DOMAIN.md: 62 kWh, CHAdeMO DC with Fermata FE-20 (~20 kW); 0.30 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "kia-ev9-76",
        76.1,
        11.5,
        11.5,
        True,
        0.40,
        source=f"DOMAIN.md: 76.1 kWh, Wallbox Quasar 2 (DC, CCS1) 11.5 kW; 0.40 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "kia-ev9-100",
        99.8,
        11.5,
        11.5,
        True,
        0.42,
        source=f"DOMAIN.md: 99.8 kWh, Wallbox Quasar 2 (DC, CCS1) 11.5 kW; 0.42 kWh/mi [assumed]; {_EFF}",
    ),
    VehicleModel(
        "thomas-jouley-226",
        226.0,
        60.0,
        60.0,
        True,
        1.21,
        source=f"DOMAIN.md: Thomas Built Saf-T-Liner C2 Jouley 2021-23, 226 kWh, DC bidirectional ~60 kW, 1.21 kWh/mi; {_EFF}",
    ),
    VehicleModel(
        "thomas-jouley-244",
        244.0,
        60.0,
        60.0,
        True,
        1.21,
        source=f"DOMAIN.md: Thomas Built Jouley from 2024, 244 kWh, DC bidirectional ~60 kW, 1.21 kWh/mi; {_EFF}",
    ),
    VehicleModel(
        "bluebird-vision-196",
        196.0,
        60.0,
        60.0,
        True,
        1.21,
        source=f"DOMAIN.md: Blue Bird Vision / All American electric, 196 kWh, ~60 kW (Nuvve/Rhombus class), 1.21 kWh/mi; {_EFF}",
    ),
    VehicleModel(
        "generic-ev-60",
        60.0,
        11.5,
        0.0,
        False,
        0.30,
        source=f"a charge-only (V1G) vehicle [assumed]; {_EFF}",
    ),
):
    VEHICLE_MODELS.register(_vm.name, _vm)

for _cm in (
    ChargerModel(
        "ford-charge-station-pro",
        PowerKind.AC,
        19.2,
        9.6,
        OcppVersion.V201,
        source="DOMAIN.md: Ford Charge Station Pro with home integration system, 9.6 kW export; 80 A charge",
    ),
    ChargerModel(
        "fermata-fe15",
        PowerKind.DC,
        15.0,
        15.0,
        OcppVersion.V16,
        source="DOMAIN.md: Fermata FE-15 CHAdeMO, ~15 kW",
    ),
    ChargerModel(
        "fermata-fe20",
        PowerKind.DC,
        20.0,
        20.0,
        OcppVersion.V16,
        source="DOMAIN.md: Fermata FE-20 CHAdeMO, ~20 kW",
    ),
    ChargerModel(
        "wallbox-quasar2",
        PowerKind.DC,
        11.5,
        11.5,
        OcppVersion.V201,
        source="DOMAIN.md: Wallbox Quasar 2, DC CCS1, 11.5 kW",
    ),
    ChargerModel(
        "dc-bidirectional-60",
        PowerKind.DC,
        60.0,
        60.0,
        OcppVersion.V21,
        source="DOMAIN.md: school-bus DC bidirectional ~60 kW (Nuvve/Rhombus class)",
    ),
    ChargerModel(
        "ac-level2-11",
        PowerKind.AC,
        11.5,
        0.0,
        OcppVersion.V201,
        source="a charge-only Level 2 charger, 48 A [assumed]",
    ),
):
    CHARGER_MODELS.register(_cm.name, _cm)

for _tariff in (
    Tariff(
        "ma-residential-flat",
        0.33,
        fixed_usd_per_month=10.0,
        source="DOMAIN.md: National Grid MA residential ~0.182 delivery + ~0.147 supply $/kWh, ~$10/month",
    ),
    Tariff(
        "ma-eversource-east-residential",
        0.32,
        fixed_usd_per_month=10.0,
        source="DOMAIN.md: Eversource East ~0.32 $/kWh",
    ),
    Tariff(
        "ma-commercial-demand",
        0.20,
        fixed_usd_per_month=50.0,
        demand_usd_per_kw_month=27.0,
        source="DOMAIN.md: commercial energy ~0.20 $/kWh [assumed], demand ~27 $/kW-month (Eversource G-2 class); fixed 50 $/month [assumed]",
    ),
):
    TARIFFS.register(_tariff.tariff_id, _tariff)

for _dr in (
    DRProgram(
        "cs-residential-battery",
        "ConnectedSolutions residential battery (summer)",
        275.0,
        45,
        3.0,
        source="DOMAIN.md: $275/kW-summer, Jun 1-Sep 30, 15:00-20:00, up to 60 events of up to 3 h; 45 expected events [assumed]",
    ),
    DRProgram(
        "cs-ci-daily",
        "ConnectedSolutions C&I Daily Dispatch",
        200.0,
        45,
        3.0,
        source="DOMAIN.md: $200/kW-season, 30-60 events of 2-3 h; 45 events x 3 h expected [assumed]",
    ),
    DRProgram(
        "cs-ci-targeted",
        "ConnectedSolutions C&I Targeted Dispatch",
        45.0,
        5,
        3.0,
        source="DOMAIN.md: $45/kW (+$10/kW weekend bonus, not modelled here), 3-8 events of 2-3 h; 5 expected [assumed]",
    ),
):
    DR_PROGRAMS.register(_dr.program_id, _dr)

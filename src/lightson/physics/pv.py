"""Rooftop PV output from typical-year weather, with pvlib.

Chain (pvlib): solar position → plane-of-array irradiance (isotropic sky) → cell
temperature (SAPM, open-rack glass/polymer) → PVWatts DC (−0.4 %/°C) → system losses →
PVWatts inverter (96 % nominal, clipped at ``inverter_kw_ac``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pvlib
from numpy.typing import NDArray

from lightson.domain.assets import HourlyWeather, PVSystem

_TEMPERATURE_MODEL = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][
    "open_rack_glass_polymer"
]
_GAMMA_PDC_PER_C = -0.004
_INVERTER_EFFICIENCY = 0.96


def pv_ac_power_kw_hourly(weather: HourlyWeather, pv: PVSystem) -> NDArray[np.float64]:
    """AC output (kW, ≥ 0) for the 8760 hours of the typical year, evaluated at each
    hour's midpoint (rows are hour-ending in local standard time)."""
    return _pv_cached(weather, pv).copy()


@lru_cache(maxsize=64)
def _pv_cached(weather: HourlyWeather, pv: PVSystem) -> NDArray[np.float64]:
    midpoints = pd.date_range("2019-01-01 00:30", periods=8760, freq="h", tz="Etc/GMT+5")
    solar = pvlib.solarposition.get_solarposition(
        midpoints, weather.latitude_deg, weather.longitude_deg, weather.altitude_m
    )
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=pv.tilt_deg,
        surface_azimuth=pv.azimuth_deg,
        solar_zenith=solar["apparent_zenith"].to_numpy(),
        solar_azimuth=solar["azimuth"].to_numpy(),
        dni=weather.dni_w_per_m2,
        ghi=weather.ghi_w_per_m2,
        dhi=weather.dhi_w_per_m2,
        model="isotropic",
    )
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0).clip(min=0.0)
    cell_c = pvlib.temperature.sapm_cell(
        poa_global, weather.temp_air_c, weather.wind_speed_m_per_s, **_TEMPERATURE_MODEL
    )
    dc_kw = pvlib.pvsystem.pvwatts_dc(poa_global, cell_c, pv.kw_dc, _GAMMA_PDC_PER_C)
    dc_kw = np.asarray(dc_kw, dtype=float) * (1.0 - pv.losses_percent / 100.0)
    ac_rating_kw = pv.inverter_kw_ac if pv.inverter_kw_ac is not None else pv.kw_dc / 1.1
    ac_kw = pvlib.inverter.pvwatts(dc_kw, ac_rating_kw / _INVERTER_EFFICIENCY, _INVERTER_EFFICIENCY)
    return np.asarray(
        np.clip(np.nan_to_num(np.asarray(ac_kw, dtype=float)), 0.0, ac_rating_kw), dtype=np.float64
    )

"""Readers of the data files shipped with the package (``read_*`` reads a file)."""

from lightson.datasets.files import (
    LOAD_PROFILES,
    WEATHER_FILES,
    bundled_load_profile,
    bundled_weather,
    read_epw_weather,
    read_load_profile,
    write_load_profile,
)

__all__ = [
    "LOAD_PROFILES",
    "WEATHER_FILES",
    "bundled_load_profile",
    "bundled_weather",
    "read_epw_weather",
    "read_load_profile",
    "write_load_profile",
]

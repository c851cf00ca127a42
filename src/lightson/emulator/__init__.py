"""OCPP charger and EV emulator (tests, demo, load benchmark)."""

from lightson.emulator.station import EmulatedEv, EmulatedStation, Evse, Fleet

__all__ = ["EmulatedEv", "EmulatedStation", "Evse", "Fleet"]

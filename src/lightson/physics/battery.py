"""Battery energy bookkeeping with separate charge and discharge efficiencies.

Power is from the vehicle's side at the EVSE: ``power_kw`` > 0 charges, < 0 discharges.
Charging ``p`` kW for ``dt_h`` hours stores ``η_c · p · dt_h`` kWh; discharging ``p`` kW at
the EVSE takes ``p · dt_h / η_d`` kWh from the battery.
"""

from __future__ import annotations


def next_energy_kwh(
    energy_kwh: float,
    power_kw: float,
    dt_h: float,
    charge_efficiency: float,
    discharge_efficiency: float,
    trip_energy_kwh: float = 0.0,
) -> float:
    """Battery energy after one interval of ``power_kw`` at the EVSE and ``trip_energy_kwh``
    used for driving:

    ``e' = e + η_c · max(p, 0) · dt − max(−p, 0) · dt / η_d − trip``
    """
    charge_kw = max(power_kw, 0.0)
    discharge_kw = max(-power_kw, 0.0)
    return (
        energy_kwh
        + charge_efficiency * charge_kw * dt_h
        - discharge_kw * dt_h / discharge_efficiency
        - trip_energy_kwh
    )

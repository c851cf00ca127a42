"""What a site did at its last tick, and why: the status the live loop keeps per site and the
dashboard, the API and the operator console show (``services.live``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from lightson.control.safety import Intervention
from lightson.domain.assets import Vehicle
from lightson.domain.plan import Setpoint

Mode = Literal["grid", "islanded", "fallback", "starting"]


@dataclass(frozen=True)
class SiteStatus:
    """What a site did at its last tick, and why (shown on the dashboard)."""

    site_id: str
    at: datetime
    mode: Mode
    reason: str
    setpoints: tuple[Setpoint, ...] = ()
    answers: Mapping[str, str] = field(default_factory=dict)  # by evse_id
    interventions: tuple[Intervention, ...] = ()
    critical_unserved_kw: float = 0.0
    load_kw: float = 0.0
    pv_kw: float = 0.0
    soc: Mapping[str, float | None] = field(default_factory=dict)  # by vehicle_id
    plugged: Mapping[str, bool] = field(default_factory=dict)
    fallback: tuple[str, ...] = ()  # evse_ids left to the charge-only default
    tier: str | None = None  # islanded: the highest load tier served in full
    load_source: str = "profile"  # or "meter": where load_kw (and PV, if metered) came from

    @property
    def vehicles_kw(self) -> float:
        return sum(s.power_kw for s in self.setpoints)


def fallback_reason(stale: Mapping[Vehicle, str]) -> str:
    """Why a site's plugged vehicles are left to the charge-only default."""
    return "charge-only default: " + "; ".join(stale.values())


def status_reason(
    islanded: bool,
    tier: str | None,
    answers: Mapping[str, str],
    interventions: Sequence[Intervention],
) -> str:
    """A tick's reason in words: on plan or the tier an island carries, then the chargers
    that did not accept and how many setpoints the safety layer clamped."""
    if not islanded:
        parts = ["on plan"]
    elif tier is None:
        parts = ["islanded: the vehicles cannot carry even the critical loads"]
    else:
        carried = {
            "critical": "the critical loads",
            "essential": "the critical and essential loads",
            "full": "the whole building",
        }[tier]
        parts = [f"islanded: the vehicles carry {carried}"]
    refused = sorted(
        e for e, answer in answers.items() if answer not in ("Accepted", "idle", "held")
    )
    if refused:
        parts.append("not accepted by " + ", ".join(f"{e} ({answers[e]})" for e in refused))
    if interventions:
        parts.append(f"{len(interventions)} setpoint(s) clamped by safety rules")
    return "; ".join(parts)

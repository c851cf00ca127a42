"""Demand-response program rules and settlement (pure; the rules come from data files)."""

from lightson.programs.rules import ProgramRules, SeasonRules
from lightson.programs.settlement import (
    CalledEvent,
    EnrolledSite,
    EventLine,
    Metered,
    SettlementLine,
    event_kw,
    settle,
)

__all__ = [
    "CalledEvent",
    "EnrolledSite",
    "EventLine",
    "Metered",
    "ProgramRules",
    "SeasonRules",
    "SettlementLine",
    "event_kw",
    "settle",
]

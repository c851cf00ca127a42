"""A registered charging station: who it is, how it proves it, how it speaks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightson.domain.errors import ConfigError

VERSIONS = ("1.6", "2.0.1", "2.1")
DIALECTS = ("central-setpoint", "negative-limit", "charge-only")


@dataclass(frozen=True)
class StationRecord:
    """``ocpp_version`` is ``1.6``, ``2.0.1`` or ``2.1``; ``dialect`` how it is told to
    discharge (``central-setpoint``, ``negative-limit`` or ``charge-only``)."""

    id: str
    password_hash: str
    ocpp_version: str
    dialect: str
    max_charge_kw: float
    site_id: str | None = None

    def __post_init__(self) -> None:
        if self.ocpp_version not in VERSIONS:
            raise ConfigError.at(
                "ocpp_version", f"must be one of {', '.join(VERSIONS)}, got '{self.ocpp_version}'"
            )
        if self.dialect not in DIALECTS:
            raise ConfigError.at(
                "dialect", f"must be one of {', '.join(DIALECTS)}, got '{self.dialect}'"
            )

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "password_hash": self.password_hash,
            "ocpp_version": self.ocpp_version,
            "dialect": self.dialect,
            "max_charge_kw": self.max_charge_kw,
            "site_id": self.site_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StationRecord:
        return cls(
            id=row["id"],
            password_hash=row["password_hash"],
            ocpp_version=row["ocpp_version"],
            dialect=row["dialect"],
            max_charge_kw=float(row["max_charge_kw"]),
            site_id=row["site_id"],
        )

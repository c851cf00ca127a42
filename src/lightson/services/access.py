"""Who may do what: bearer tokens with roles, and the audit log of every command.

Roles (``docs/operations.md``):

- ``admin`` (program staff): everything.
- ``owner`` (a site owner): only their own sites: status, telemetry, backup, and opting a
  site out of an event.
- ``utility``: demand-response events (create, cancel) and aggregate performance, outages at
  sites in its own territory (never releasing a vehicle's reserve); never a vehicle, a state
  of charge, a charging session or one site's power (``docs/operations.md``).

A token is 32 random bytes, shown once when issued; the database keeps only its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import insert, select, update

from lightson.domain.errors import ConfigError, DuplicateNameError
from lightson.domain.time import Clock
from lightson.store import Store
from lightson.store import schema as db


class Role(Enum):
    ADMIN = "admin"
    OWNER = "owner"
    UTILITY = "utility"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from. ``sites``: an owner's sites; ``utility``: a utility's
    territory (the utility named in the program file)."""

    name: str
    role: Role
    sites: frozenset[str] = frozenset()
    utility: str | None = None

    def may_see_site(self, site_id: str) -> bool:
        """Status and personal data of one site (vehicles, SoC, sessions)."""
        if self.role is Role.ADMIN:
            return True
        return self.role is Role.OWNER and site_id in self.sites


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def issue(
        self,
        name: str,
        role: str,
        sites: Iterable[str] = (),
        utility: str | None = None,
    ) -> str:
        """A new token for ``name`` (returned once; only its digest is kept)."""
        try:
            parsed = Role(role)
        except ValueError:
            choices = ", ".join(r.value for r in Role)
            raise ConfigError.at("role", f"must be one of {choices}, got '{role}'") from None
        site_ids = sorted(set(sites))
        if parsed is Role.OWNER and not site_ids:
            raise ConfigError.at("sites", "an owner token names at least one site")
        if parsed is Role.UTILITY and not utility:
            raise ConfigError.at("utility", "a utility token names its utility")
        if not name or len(name) > 64:
            raise ConfigError.at("name", "must be 1-64 characters")
        token = secrets.token_urlsafe(32)
        with self.store.engine.begin() as connection:
            taken = connection.execute(
                select(db.api_tokens.c.id).where(db.api_tokens.c.name == name)
            ).first()
            if taken is not None:
                raise DuplicateNameError("token", name)
            connection.execute(
                insert(db.api_tokens),
                [
                    {
                        "name": name,
                        "token_sha256": _digest(token),
                        "role": parsed.value,
                        "sites": site_ids,
                        "utility": utility if parsed is Role.UTILITY else None,
                        "created_at": self.clock.now(),
                    }
                ],
            )
        return token

    def revoke(self, name: str) -> None:
        with self.store.engine.begin() as connection:
            done = connection.execute(
                update(db.api_tokens)
                .where(db.api_tokens.c.name == name, db.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
        if done.rowcount == 0:
            raise ConfigError.at("name", f"no active token '{name}'")

    def principal(self, token: str) -> Principal | None:
        """Who holds ``token`` (``None``: nobody, or revoked)."""
        digest = _digest(token)
        with self.store.engine.connect() as connection:
            row = connection.execute(
                select(db.api_tokens).where(
                    db.api_tokens.c.token_sha256 == digest, db.api_tokens.c.revoked_at.is_(None)
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            return None
        return Principal(row.name, Role(row.role), frozenset(row.sites), row.utility)

    def audit(
        self,
        who: Principal,
        action: str,
        target: str,
        outcome: str,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> None:
        """Record a command (who, what, on what, and whether it was done) before answering."""
        row = {
            "at": at or self.clock.now(),
            "who": who.name,
            "action": action,
            "target": target,
            "outcome": outcome,
            "detail": dict(detail or {}),
        }
        self.store.write([(db.audit_log, row)]).result(30)

"""Shared by the live-loop and API tests: a recording setpoint sink and stored telemetry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from lightson.config import load_program
from lightson.csms.commands import StationOfflineError
from lightson.domain.assets import Program, Site
from lightson.domain.demand_response import DREvent
from lightson.domain.plan import Setpoint
from lightson.store import Store
from lightson.store import schema as db

# 2026-07-15 15:30 EDT: inside the example's ConnectedSolutions event (15:00-18:00), in
# summer break, so the buses have no route today.
IN_EVENT = datetime(2026, 7, 15, 19, 30, tzinfo=UTC)


class FakeSink:
    """Records what the loop sends; stations in ``offline`` raise as the CSMS does."""

    def __init__(
        self,
        offline: frozenset[str] = frozenset(),
        islanded: Callable[[str], bool] = lambda _station: False,
    ) -> None:
        self.sent: list[tuple[str, int, Setpoint, str | None]] = []
        self.max_offline_s: list[int | None] = []  # of each setpoint sent
        self.cleared: list[str] = []
        self.defaults: list[tuple[str, bool]] = []  # (station, islanded 0 W default)
        self.offline = offline
        self.islanded = islanded  # as the CSMS asks the loop (OperationsServer wires it)

    async def send_setpoint(
        self,
        station_id: str,
        evse_id: int,
        setpoint: Setpoint,
        transaction_id: str | None = None,
        *,
        max_offline_s: int | None = None,
    ) -> str:
        if station_id in self.offline:
            raise StationOfflineError(f"station {station_id!r} is not connected")
        self.sent.append((station_id, evse_id, setpoint, transaction_id))
        self.max_offline_s.append(max_offline_s)
        return "Accepted"

    async def install_default(self, station_id: str) -> str:
        if station_id in self.offline:
            raise StationOfflineError(f"station {station_id!r} is not connected")
        self.defaults.append((station_id, self.islanded(station_id)))
        return "Accepted"

    async def clear_profiles(self, station_id: str, evse_id: int | None = None) -> str:
        self.cleared.append(station_id)
        return "Accepted"


def plugged(store: Store, station_id: str, soc: float, at: datetime, tx: str = "tx-1") -> None:
    """What the CSMS stores for a plugged vehicle: a started transaction and a reading."""
    event = {
        "station_id": station_id,
        "evse_id": 1,
        "transaction_id": tx,
        "seq_no": 0,
        "event_type": "Started",
        "at": at,
        "received_at": at,
        "payload": {},
    }
    sample = {"station_id": station_id, "evse_id": 1, "at": at, "power_kw": 0.0, "soc": soc}
    store.write([(db.transaction_events, event), (db.meter_samples, sample)]).result(5)


def school() -> Program:
    """The example program with only its school-bus depot (two buses)."""
    program = load_program("example")
    return replace(program, sites=(program.site("school-beverly"),))


def events_of(program: Program) -> Callable[[Site], tuple[DREvent, ...]]:
    """The events of the program each site is enrolled in (the event book's role)."""

    def events(site: Site) -> tuple[DREvent, ...]:
        return tuple(e for e in program.events if e.program_id in site.enrollments)

    return events


HELD_ROOT: dict[str, Any] = {
    "certificateType": "CSMSRootCertificate",
    "certificateHashData": {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "ab" * 32,
        "issuerKeyHash": "cd" * 32,
        "serialNumber": "1f",
    },
}


class FakeStations:
    """The certificate routes' view of the CSMS (``app.state.stations``): the example's
    depot chargers, 2.0.1, each holding :data:`HELD_ROOT` (serial ``1f``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (action, station)

    def ocpp_version(self, station_id: str) -> str | None:
        return "2.0.1" if station_id.startswith("depot-evse") else None

    async def install_certificate(self, station_id: str, certificate_type: str, pem: str) -> str:
        self.calls.append(("install", station_id))
        return "Accepted"

    async def installed_certificates(
        self, station_id: str, certificate_types: Sequence[str]
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", station_id))
        return [HELD_ROOT]

    async def delete_certificate(self, station_id: str, hash_data: Mapping[str, Any]) -> str:
        self.calls.append(("delete", station_id))
        return "Accepted"

    async def request_station_certificate(self, station_id: str) -> str:
        self.calls.append(("renew", station_id))
        return "Accepted"


def root_pem(common_name: str = "Fake Root") -> str:
    """A self-signed certificate (PEM), serial 0x1f."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x1F)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()

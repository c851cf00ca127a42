"""The storage schema (SQLAlchemy Core), one for SQLite and PostgreSQL.

Times are stored as timezone-aware UTC; powers in kW (+ into the vehicle), energies in kWh,
state of charge as a fraction, as everywhere in the domain.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
IDEMPOTENT_TABLES = frozenset({"transaction_events", "meter_samples"})
# Tables whose natural key takes the newest copy (a gateway resends a corrected reading).
UPSERT_KEYS = {"site_meter": ("site_id", "at")}

stations = Table(
    "stations",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("ocpp_version", String(8), nullable=False),
    Column("dialect", String(24), nullable=False),
    Column("max_charge_kw", Float, nullable=False),
    Column("site_id", String(64)),
)

transaction_events = Table(
    "transaction_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False, index=True),
    Column("evse_id", Integer),
    Column("transaction_id", String(36), nullable=False, index=True),
    Column("seq_no", Integer),
    Column("event_type", String(16), nullable=False),  # Started, Updated, Ended
    Column("trigger_reason", String(32)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("offline", Boolean, nullable=False, default=False),
    Column("id_token", String(255)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False),
    # A station resends an event it got no answer for: the first copy is kept (2.x; 1.6
    # events have no seqNo, and NULLs never collide).
    UniqueConstraint("station_id", "transaction_id", "seq_no", "event_type"),
)

meter_samples = Table(
    "meter_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False, index=True),
    Column("evse_id", Integer, nullable=False),
    Column("transaction_id", String(36)),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("power_kw", Float),
    Column("energy_imported_kwh", Float),
    Column("energy_exported_kwh", Float),
    Column("soc", Float),
    # Samples carried by a transaction event: the event's seqNo and their place in it, so a
    # resent event adds nothing (MeterValues messages have no seqNo; NULLs never collide).
    Column("seq_no", Integer),
    Column("entry", Integer),
    # (``at`` is in the key because PostgreSQL partitions the table by it: a resent event
    # carries its samples with their own times, so the key still catches it.)
    UniqueConstraint(
        "station_id", "transaction_id", "seq_no", "entry", "at", name="uq_meter_samples_sample"
    ),
    Index("ix_meter_samples_station_latest", "station_id", "id"),  # latest per station
)

# Each station's meter samples summed up per 15-minute interval (``store.rollups``): computed
# from the samples when first asked for, kept once the interval is sealed.
meter_rollups = Table(
    "meter_rollups",
    metadata,
    Column("station_id", String(48), primary_key=True),
    Column("interval_start", DateTime(timezone=True), primary_key=True),
    Column("mean_kw", Float, nullable=False),  # held power averaged over it, + charging
    Column("samples", Integer, nullable=False),  # samples timed in it
    Column("kw_samples", Integer, nullable=False),  # of which with a power reading
    Column("first_soc", Float),
    Column("first_soc_at", DateTime(timezone=True)),
    Column("last_soc", Float),
    Column("last_soc_at", DateTime(timezone=True)),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

# Intervals a late sample changed, written with the sample: their rollup is computed again.
meter_rollups_stale = Table(
    "meter_rollups_stale",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("interval_start", DateTime(timezone=True), nullable=False),
    Index("ix_meter_rollups_stale_station", "station_id", "interval_start"),
)

charging_needs = Table(
    "charging_needs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False, index=True),
    Column("evse_id", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("departure", DateTime(timezone=True)),
    Column("energy_request_kwh", Float),
    Column("max_charge_kw", Float),
    Column("max_discharge_kw", Float),
    Column("target_soc", Float),
    Column("bidirectional", Boolean, nullable=False),
    # What the vehicle declared it cannot go below (ISO 15118-20 / OCPP 2.1
    # v2xChargingParameters minChargePower / minDischargePower), positive magnitudes.
    Column("min_charge_kw", Float),
    Column("min_discharge_kw", Float),
)

evse_status = Table(
    "evse_status",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False, index=True),
    Column("evse_id", Integer, nullable=False),
    Column("connector_id", Integer, nullable=False),
    Column("status", String(24), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

setpoints_sent = Table(
    "setpoints_sent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False, index=True),
    Column("evse_id", Integer, nullable=False),
    Column("power_kw", Float, nullable=False),
    Column("power_w_sent", Float, nullable=False),
    Column("valid_until", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("status", String(24), nullable=False),  # the station's answer, or Timeout / Error
    Column("message", String(200)),
)

sequence_gaps = Table(
    "sequence_gaps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", String(48), nullable=False),
    Column("transaction_id", String(36), nullable=False),
    Column("first_missing", Integer, nullable=False),
    Column("last_missing", Integer, nullable=False),
    Column("noticed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("station_id", "transaction_id", "first_missing"),
)

dr_events = Table(
    "dr_events",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("program_id", String(64), nullable=False, index=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("notice_at", DateTime(timezone=True), nullable=False),
    Column("sites", JSON, nullable=False),  # [] = every enrolled site
    Column("source", String(24), nullable=False),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("opt_outs", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_sha256", String(64), nullable=False, unique=True),  # never the token itself
    Column("role", String(16), nullable=False),  # admin, owner, utility
    Column("sites", JSON, nullable=False),  # an owner's sites
    Column("utility", String(64)),  # a utility's own territory
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("who", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),  # done, refused
    Column("detail", JSON, nullable=False),
)

grid_signals = Table(
    "grid_signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False, index=True),
    Column("source", String(96), nullable=False),  # meter:..., api, charger:...
    Column("signal", String(16), nullable=False),  # lost, restored
    Column("at", DateTime(timezone=True), nullable=False),
    Column("released_vehicles", JSON, nullable=False),
)

departures = Table(  # an owner's "next departure" for a vehicle; the newest row per vehicle holds
    "departures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("vehicle_id", String(64), nullable=False, index=True),
    Column("depart_at", DateTime(timezone=True)),  # None: the owner cleared it
    Column("target_soc", Float),  # None: the trip's own need
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", String(64), nullable=False),
)

site_meter = Table(  # a site's own meter (building load, PV), posted by its gateway
    "site_meter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("load_kw", Float, nullable=False),  # the building, without the chargers
    Column("pv_kw", Float),  # None: the site has no PV meter
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("site_id", "at"),  # a reading sent again replaces the first
    Index("ix_site_meter_site_at", "site_id", "at"),
)

plans = Table(  # every plan the live loop's controllers made: what was planned, to compare
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("site_id", String(64), nullable=False),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("step_s", Integer, nullable=False),
    Column("controller", String(32), nullable=False),
    Column("solve_time_s", Float, nullable=False),
    Column("site_net_kw", JSON, nullable=False),  # per interval, + import, to 0.01 kW
    Column("vehicles", JSON, nullable=False),  # [{vehicle_id, evse_id, power_kw, soc}]
    Index("ix_plans_site_made", "site_id", "made_at"),
)

# Readings and frames that failed a plausibility check: kept with the raw frame, never planned on.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),  # "ocpp" (a station) or "meter-api"
    Column("station_id", String(48)),
    Column("site_id", String(64)),
    Column("action", String(64)),  # the OCPP action or the API route
    Column("field", String(200), nullable=False),  # the path of the value refused
    Column("value", String(200)),  # the value as sent, cut to 200 characters
    Column("reason", String(200), nullable=False),
    Column("raw", Text, nullable=False),  # the whole frame or body as received
    Index("ix_quarantine_received", "received_at"),
)

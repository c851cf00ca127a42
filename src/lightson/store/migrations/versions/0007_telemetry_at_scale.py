"""telemetry at scale: monthly sample partitions on PostgreSQL, 15-minute rollups

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 19:10:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from lightson.store.partitions import create_partition, next_month

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    "id, station_id, evse_id, transaction_id, at, power_kw, energy_imported_kwh, "
    "energy_exported_kwh, soc, seq_no, entry"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition_samples()
    else:
        # SQLite keeps one table; only the natural key gains ``at``, as on PostgreSQL.
        names = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
        with op.batch_alter_table("meter_samples", naming_convention=names) as batch_op:
            batch_op.drop_constraint("uq_meter_samples_station_id", type_="unique")
            batch_op.create_unique_constraint(
                "uq_meter_samples_sample",
                ["station_id", "transaction_id", "seq_no", "entry", "at"],
            )
    op.create_table(
        "meter_rollups",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mean_kw", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("kw_samples", sa.Integer(), nullable=False),
        sa.Column("first_soc", sa.Float(), nullable=True),
        sa.Column("first_soc_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_soc", sa.Float(), nullable=True),
        sa.Column("last_soc_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "interval_start"),
    )
    op.create_table(
        "meter_rollups_stale",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_meter_rollups_stale_station",
        "meter_rollups_stale",
        ["station_id", "interval_start"],
        unique=False,
    )


def _partition_samples() -> None:
    """The samples table becomes partitioned by range of ``at``: a partition per UTC month
    that has samples, and the current and next month's; the rows are copied over and the id
    sequence carries on. (PostgreSQL wants every key of a partitioned table to hold ``at``.)"""
    op.execute("ALTER TABLE meter_samples RENAME TO meter_samples_unpartitioned")
    for index in ("at", "station_id", "station_latest"):
        op.execute(f"DROP INDEX IF EXISTS ix_meter_samples_{index}")
    old_unique = "meter_samples_station_id_transaction_id_seq_no_entry_key"
    op.execute(f"ALTER TABLE meter_samples_unpartitioned DROP CONSTRAINT IF EXISTS {old_unique}")
    op.execute("ALTER TABLE meter_samples_unpartitioned DROP CONSTRAINT meter_samples_pkey")
    op.execute("ALTER SEQUENCE meter_samples_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE meter_samples_unpartitioned ALTER COLUMN id DROP DEFAULT")
    op.execute(
        """
        CREATE TABLE meter_samples (
            id INTEGER NOT NULL DEFAULT nextval('meter_samples_id_seq'::regclass),
            station_id VARCHAR(48) NOT NULL,
            evse_id INTEGER NOT NULL,
            transaction_id VARCHAR(36),
            at TIMESTAMP WITH TIME ZONE NOT NULL,
            power_kw FLOAT,
            energy_imported_kwh FLOAT,
            energy_exported_kwh FLOAT,
            soc FLOAT,
            seq_no INTEGER,
            entry INTEGER,
            CONSTRAINT meter_samples_pkey PRIMARY KEY (id, at),
            CONSTRAINT uq_meter_samples_sample
                UNIQUE (station_id, transaction_id, seq_no, entry, at)
        ) PARTITION BY RANGE (at)
        """
    )
    op.execute("ALTER SEQUENCE meter_samples_id_seq OWNED BY meter_samples.id")
    op.execute("CREATE INDEX ix_meter_samples_at ON meter_samples (at)")
    op.execute("CREATE INDEX ix_meter_samples_station_id ON meter_samples (station_id)")
    op.execute("CREATE INDEX ix_meter_samples_station_latest ON meter_samples (station_id, id)")
    bind = op.get_bind()
    found = bind.execute(
        sa.text(
            "SELECT DISTINCT extract(year FROM at AT TIME ZONE 'UTC')::int, "
            "extract(month FROM at AT TIME ZONE 'UTC')::int FROM meter_samples_unpartitioned"
        )
    ).all()
    now = datetime.now(UTC)
    months = {(int(y), int(m)) for y, m in found} | {(now.year, now.month)}
    months.add(next_month((now.year, now.month)))
    for month in sorted(months):
        create_partition(bind, month)
    op.execute(
        f"INSERT INTO meter_samples ({COLUMNS}) SELECT {COLUMNS} FROM meter_samples_unpartitioned"
    )
    op.execute("DROP TABLE meter_samples_unpartitioned")


def downgrade() -> None:
    op.drop_index("ix_meter_rollups_stale_station", table_name="meter_rollups_stale")
    op.drop_table("meter_rollups_stale")
    op.drop_table("meter_rollups")
    # The samples stay partitioned on PostgreSQL (a plain table again is a dump and reload).

"""Storage: records and telemetry in SQLite (embedded default) or PostgreSQL."""

from lightson.store.db import Store, default_url
from lightson.store.stations import StationRecord

__all__ = ["StationRecord", "Store", "default_url"]

"""Schema migrations with alembic: every database is brought to the newest schema when a
``Store`` opens it, on SQLite and PostgreSQL alike.

A new table or column goes into ``schema.py`` and into a new revision under
``migrations/versions`` (``.venv/bin/python -m lightson.store.migrate revision "what"`` writes
one from the difference); ``tests/store/test_migrations.py`` fails while the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from lightson.store import schema

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest revision. A database made before migrations
    existed (tables, no ``alembic_version``) gets its missing tables and is marked current."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        tables = set(inspect(connection).get_table_names())
        if "stations" in tables and "alembic_version" not in tables:
            schema.metadata.create_all(connection)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")


def main(argv: list[str]) -> None:
    """``python -m lightson.store.migrate revision "message"``: a new revision from the
    difference between ``schema.py`` and a database at the newest revision."""
    if len(argv) != 2 or argv[0] != "revision":
        raise SystemExit('usage: python -m lightson.store.migrate revision "message"')
    import tempfile

    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/head.db"
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        command.revision(alembic_config(url), message=argv[1], autogenerate=True)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The throwaway PostgreSQL cluster of the storage tests: ``lightson.devservices``'s (one
starter for the tests, the benchmarks and ``lightson demo --distributed``). Its postmaster
dies with the test session, even one killed with SIGKILL: no cluster outlives a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lightson.devservices import fresh_database, postgres_cluster


@contextlib.contextmanager
def throwaway_cluster(folder: Path) -> Iterator[str]:
    """Start a cluster in ``folder``; yield a SQLAlchemy URL of its ``postgres`` database."""
    with postgres_cluster(folder) as url:
        yield url


__all__ = ["fresh_database", "throwaway_cluster"]

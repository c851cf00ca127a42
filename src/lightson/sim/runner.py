"""Run many sites: one process per worker (sites are independent), identical results
whatever the number of workers, because each site's randomness is seeded by its id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime

from lightson.domain.assets import Program
from lightson.sim.engine import SiteRun, simulate_site

_worker_program: Program | None = None


@dataclass(frozen=True, eq=False)
class ProgramRun:
    controller: str
    start: datetime
    n_steps: int
    seed: int
    runs: tuple[SiteRun, ...]


def simulate_program(
    program: Program,
    controller: str,
    start: datetime,
    n_steps: int,
    site_ids: Sequence[str],
    seed: int = 0,
    workers: int = 1,
    on_site_done: Callable[[SiteRun], None] | None = None,
) -> ProgramRun:
    """Simulate ``site_ids`` in ``workers`` processes (1: in this process); results come
    back in the order of ``site_ids``."""
    done: dict[str, SiteRun] = {}
    if workers <= 1 or len(site_ids) <= 1:
        for site_id in site_ids:
            done[site_id] = simulate_site(program, site_id, controller, start, n_steps, seed)
            if on_site_done:
                on_site_done(done[site_id])
    else:
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init, initargs=(program,)
        ) as pool:
            futures = [
                pool.submit(_simulate, s, controller, start, n_steps, seed) for s in site_ids
            ]
            for future in as_completed(futures):
                run = future.result()
                done[run.site_id] = run
                if on_site_done:
                    on_site_done(run)
    return ProgramRun(controller, start, n_steps, seed, tuple(done[s] for s in site_ids))


def _init(program: Program) -> None:
    global _worker_program
    _worker_program = program


def _simulate(site_id: str, controller: str, start: datetime, n_steps: int, seed: int) -> SiteRun:
    assert _worker_program is not None, "worker not initialised"
    return simulate_site(_worker_program, site_id, controller, start, n_steps, seed)

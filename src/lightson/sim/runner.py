"""Run many sites: sites are independent, so they run in parallel, on a local process pool
(``engine="local"``) or on Ray (``engine="ray"``: a local Ray instance, or a cluster given
by address). Results are identical whatever the engine or the number of workers, because
each site's randomness is seeded by its id."""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lightson.domain.assets import Program
from lightson.domain.errors import ConfigError
from lightson.sim.engine import SiteRun, simulate_site
from lightson.sim.world import DEFAULT_WORLD, WorldOptions

_worker_program: Program | None = None
ENGINES = ("local", "ray")


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
    engine: str = "local",
    ray_address: str | None = None,
    options: WorldOptions = DEFAULT_WORLD,
) -> ProgramRun:
    """Simulate ``site_ids`` in ``workers`` processes (1: in this process) or on Ray;
    results come back in the order of ``site_ids``."""
    done: dict[str, SiteRun] = {}
    if engine not in ENGINES:
        raise ConfigError.at("--engine", f"unknown engine '{engine}'; known: {', '.join(ENGINES)}")
    if engine == "ray":
        for run in _on_ray(
            program, controller, start, n_steps, site_ids, seed, workers, ray_address, options
        ):
            done[run.site_id] = run
            if on_site_done:
                on_site_done(run)
    elif workers <= 1 or len(site_ids) <= 1:
        for site_id in site_ids:
            done[site_id] = simulate_site(
                program, site_id, controller, start, n_steps, seed, options
            )
            if on_site_done:
                on_site_done(done[site_id])
    else:
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init, initargs=(program,)
        ) as pool:
            futures = [
                pool.submit(_simulate, s, controller, start, n_steps, seed, options)
                for s in largest_first(program, site_ids)
            ]
            for future in as_completed(futures):
                run = future.result()
                done[run.site_id] = run
                if on_site_done:
                    on_site_done(run)
    return ProgramRun(controller, start, n_steps, seed, tuple(done[s] for s in site_ids))


def largest_first(program: Program, site_ids: Sequence[str]) -> list[str]:
    """The sites with the most vehicles first (the largest LPs): the pool then ends with the
    small ones, instead of one worker finishing a school depot's year alone. Results do not
    depend on the order (each site's world is seeded by itself)."""
    return sorted(site_ids, key=lambda s: -len(program.site(s).vehicles))


def _on_ray(
    program: Program,
    controller: str,
    start: datetime,
    n_steps: int,
    site_ids: Sequence[str],
    seed: int,
    workers: int,
    address: str | None,
    world: WorldOptions = DEFAULT_WORLD,
) -> Iterator[SiteRun]:
    """Yield site runs as Ray finishes them; a local Ray instance with ``workers`` CPUs unless
    ``address`` names a cluster. The program goes to the object store once."""
    if address:
        check_ray_address(address)
    ray: Any = importlib.import_module("ray")  # Ray's own stubs don't cover remote calls
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers, **options)
    try:
        remote = ray.remote(simulate_site)
        program_ref = ray.put(program)
        pending = [
            remote.remote(program_ref, s, controller, start, n_steps, seed, world)
            for s in largest_first(program, site_ids)
        ]
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            yield ray.get(finished[0])
    finally:
        if started_here:
            ray.shutdown()


def _init(program: Program) -> None:
    global _worker_program
    _worker_program = program


def _simulate(
    site_id: str,
    controller: str,
    start: datetime,
    n_steps: int,
    seed: int,
    options: WorldOptions = DEFAULT_WORLD,
) -> SiteRun:
    assert _worker_program is not None, "worker not initialised"
    return simulate_site(_worker_program, site_id, controller, start, n_steps, seed, options)


RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing listens at a ``host:port`` (or ``ray://host:port``) address:
    Ray itself retries for minutes before it gives up. ``auto`` is left to Ray."""
    target = address.removeprefix("ray://")
    if target == "auto" or ":" not in target:
        return
    host, _, port_text = target.rpartition(":")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError.at("--ray-address", f"{address!r} is not host:port") from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout_s):
            pass
    except OSError as error:
        raise ConfigError.at(
            "--ray-address", f"nothing answers at {host}:{port} ({error.strerror or error})"
        ) from None

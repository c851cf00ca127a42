"""Simulation benchmark (``make bench-simulate``): the digital twin's speed on a program.

Runs ``lightson.sim.runner.simulate_program`` (what ``lightson simulate`` runs) over the
program's sites for a period, on the local process pool, and prints a markdown table: the
wall time, the time per site-day, the re-plans made, and the peak memory of the largest
process. The default is the issue's case: the whole ``ma-2026`` program through 2026 with
``v2x-mpc`` on 2 workers (about 8 minutes on a 2-core machine). ``--value-days N`` then also
runs ``unmanaged``, ``v2x-mpc`` and ``perfect-foresight`` over N days from ``--value-start``
(the timed run stands for ``v2x-mpc`` when it is the same period) and prints the value
captured, the share of perfect foresight's net value (against ``unmanaged``) that
``v2x-mpc`` earns.

``docs/benchmarks.md`` holds the runs and what they mean. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

from lightson.cli.app import parse_start
from lightson.config import load_program
from lightson.domain.assets import Program
from lightson.reports.compare import value_captured
from lightson.sim.kpis import site_kpis
from lightson.sim.runner import ProgramRun, simulate_program


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--program", default="ma-2026")
    parser.add_argument("--controller", default="v2x-mpc")
    parser.add_argument("--start", default="2026-01-01T00:00")
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--value-days", type=float, default=0.0)
    parser.add_argument("--value-start", default="2026-07-13T00:00")
    args = parser.parse_args()
    program = load_program(args.program)
    site_ids = [s.site_id for s in program.sites]
    print(machine())
    print()
    print("| run | sites | site-days | wall time | per site-day | re-plans | peak memory |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    run, wall_s = timed(program, args.controller, args.start, args.days, site_ids, args.workers)
    site_days = len(site_ids) * args.days
    peak_mb = (
        max(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        )
        / 1024
    )
    print(
        f"| {args.program}, {args.controller}, {args.days:g} days from {args.start} "
        f"| {len(site_ids)} | {site_days:,.0f} | {wall_s:.0f} s ({wall_s / 60:.1f} min) "
        f"| {1000 * wall_s / site_days:.1f} ms | {sum(r.plans_made for r in run.runs):,} "
        f"| {peak_mb:,.0f} MB |"
    )
    if args.value_days > 0:
        same = (args.controller, args.start, args.days) == (
            "v2x-mpc",
            args.value_start,
            args.value_days,
        )
        print()
        print(
            value_table(
                program,
                args.value_start,
                args.value_days,
                site_ids,
                args.workers,
                (run, wall_s) if same else None,
            )
        )


def timed(
    program: Program, controller: str, start: str, days: float, site_ids: list[str], workers: int
) -> tuple[ProgramRun, float]:
    first = parse_start(start, program)
    n_steps = int(timedelta(days=days) / program.step)
    done = 0

    def progress(_: object) -> None:
        nonlocal done
        done += 1
        print(f"\r{controller}: {done}/{len(site_ids)} sites", end="", file=sys.stderr)

    began = time.perf_counter()
    run = simulate_program(
        program, controller, first, n_steps, site_ids, workers=workers, on_site_done=progress
    )
    print(file=sys.stderr)
    return run, time.perf_counter() - began


def value_table(
    program: Program,
    start: str,
    days: float,
    site_ids: list[str],
    workers: int,
    mpc: tuple[ProgramRun, float] | None = None,
) -> str:
    """Net cost by controller over the period and the value captured; ``mpc``: the
    ``v2x-mpc`` run of that period already made (the timed run, when it is the same)."""
    totals: dict[str, dict[str, float]] = {}
    lines = ["| controller | net cost | wall time |", "|---|---:|---:|"]
    for controller in ("unmanaged", "v2x-mpc", "perfect-foresight"):
        if controller == "v2x-mpc" and mpc is not None:
            run, wall_s = mpc
        else:
            run, wall_s = timed(program, controller, start, days, site_ids, workers)
        net = sum(site_kpis(program, r)[0].net_cost_usd for r in run.runs)
        totals[controller] = {"net_cost_usd": net}
        lines.append(f"| {controller} | ${net:,.0f} | {wall_s:.0f} s |")
    captured = value_captured(totals)
    lines.append("")
    lines.append(
        f"Value captured over {days:g} days from {start}: "
        + (f"**{captured:.1%}**" if captured is not None else "undefined (no value to capture)")
    )
    return "\n".join(lines)


def machine() -> str:
    return (
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n"
        f"- nproc: {os.cpu_count()}, {platform.processor() or platform.machine()}\n"
        f"- python {platform.python_version()}, highspy {version('highspy')}, "
        f"numpy {version('numpy')}"
    )


if __name__ == "__main__":
    main()

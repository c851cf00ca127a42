"""Where the live loop computes a site's decision (``control.step.decide``: the site LP and
the safety layer): in a thread of this process (``inline``, the default), or as a Ray task
(``ray``), so that a control worker's planning burst (an event announced: every site it
holds re-plans at once) spreads over more cores than the worker's own.

Both run the same function, :func:`run_decision`, on the same :class:`DecisionRequest`, so
they give the same setpoints and plans. A request carries the site's controller (it keeps
its last plan and the simplex basis the next solve starts from); the Ray task sends it back
with its new plan, and the loop keeps that copy. The loop's event loop never waits on a
solve: an inline solve runs in a thread, a Ray solve is awaited as a future.

The Ray engine starts a local Ray instance (``num_cpus`` CPUs, no dashboard, on loopback,
in a temporary folder of its own) unless ``address`` names a cluster, bounded in time
(``start_timeout_s``); a solve that has not come back after ``solve_timeout_s`` is
cancelled and that site's tick fails (its chargers fall back to their default, as for any
failed tick).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from lightson.control.controllers import ControlContext, Controller
from lightson.control.step import StepDecision, decide
from lightson.domain.errors import ConfigError, LightsOnError
from lightson.domain.state import SiteObservation

ENGINES = ("inline", "ray")
DEFAULT_RAY_START_TIMEOUT_S = 120.0
DEFAULT_SOLVE_TIMEOUT_S = 120.0


class EngineError(LightsOnError):
    """The solving engine could not start or answer (Ray away, too slow): retrying can help."""

    retryable = True


@dataclass(frozen=True, eq=False)
class DecisionRequest:
    """Everything one site's decision needs, picklable: the arguments of
    ``control.step.decide``, with the controller's view (``context``) already built
    (``None`` islanded: the islanded dispatch does not ask the controller)."""

    site: Any  # domain.assets.Site (Any: the dataclass is frozen and picklable as it is)
    observation: SiteObservation
    next_trip_kwh: Mapping[str, float]
    step_h: float
    valid_until: datetime
    controller: Controller
    context: ControlContext | None
    islanded: bool = False
    released_vehicles: frozenset[str] = frozenset()
    held_supply_kw: float = 0.0


def run_decision(request: DecisionRequest) -> tuple[StepDecision, Controller]:
    """The decision, and the controller that made it (with its new plan, if it made one)."""
    context = request.context

    def view(_seen: SiteObservation) -> ControlContext:
        if context is None:
            raise ValueError("a decision on the grid needs the controller's context")
        return context

    decision = decide(
        request.site,
        request.observation,
        request.next_trip_kwh,
        request.step_h,
        request.valid_until,
        controller=request.controller,
        context=view,
        islanded=request.islanded,
        released_vehicles=request.released_vehicles,
        held_supply_kw=request.held_supply_kw,
    )
    return decision, request.controller


class DecisionEngine(Protocol):
    name: str
    parallel: int  # how many sites a pass over every site ticks at once

    async def decide(self, request: DecisionRequest) -> tuple[StepDecision, Controller]: ...


class InlineEngine:
    """Each decision in a worker thread of this process, one site after the other."""

    name = "inline"
    parallel = 1

    async def decide(self, request: DecisionRequest) -> tuple[StepDecision, Controller]:
        return await asyncio.to_thread(run_decision, request)

    def start(self) -> None:
        """Nothing to start."""

    def close(self) -> None:
        """Nothing to stop."""


class RayEngine:
    """Each decision as a Ray task; a pass ticks ``2 * num_cpus`` sites at once, so Ray has
    the next solve queued while one comes back."""

    name = "ray"

    def __init__(
        self,
        num_cpus: int = 2,
        address: str | None = None,
        start_timeout_s: float = DEFAULT_RAY_START_TIMEOUT_S,
        solve_timeout_s: float = DEFAULT_SOLVE_TIMEOUT_S,
    ) -> None:
        if num_cpus < 1:
            raise ConfigError.at("--ray-cpus", "at least 1")
        self.num_cpus = num_cpus
        self.address = address
        self.start_timeout_s = start_timeout_s
        self.solve_timeout_s = solve_timeout_s
        self.parallel = 2 * num_cpus
        self._ray: Any = None
        self._remote: Any = None
        self._started_here = False
        self._folder: str | None = None
        self._stop: threading.Event | None = None
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        """Start (or join) Ray, within ``start_timeout_s``; raises ``EngineError``.

        Ray is started from a thread of its own that lives until :meth:`close`: Ray's
        processes die with the *thread* that started them (Linux's parent-death signal
        follows the thread), so neither a short-lived thread nor the caller's may do it."""
        if self._remote is not None:
            return
        if self.address:
            from lightson.sim.runner import check_ray_address

            check_ray_address(self.address)
        else:
            # On Linux Ray binds its node to the address of the outgoing interface and maps
            # 127.0.0.1 to it; this switch (read when Ray is imported) keeps a local
            # instance on loopback, as Ray does by default on macOS and Windows.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray's C++ failure-signal handler takes SIGTERM and arms a 3-second alarm that
        # aborts the process (SIGABRT) before chaining to ours, so a worker stopped by its
        # service manager died mid-way through giving its leases back whenever that took
        # more than 3 s (ray-project/ray PR 64830). Read when Ray is imported.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        try:
            ray: Any = importlib.import_module("ray")  # Ray's stubs don't cover remote calls
        except ImportError:
            raise EngineError("--engine ray: Ray is not installed (pip install ray)") from None
        ready, stop, failed = threading.Event(), threading.Event(), []
        self._stop = stop

        def keep() -> None:
            try:
                self._started_here = self._init(ray)
            except Exception as error:
                failed.append(error)
                return
            finally:
                ready.set()
            stop.wait()
            if self._started_here:
                ray.shutdown()

        self._keeper = threading.Thread(target=keep, name="lightson-ray", daemon=True)
        self._keeper.start()
        if not ready.wait(self.start_timeout_s):
            self.close()
            raise EngineError(
                f"--engine ray: Ray did not start within {self.start_timeout_s:.0f} s"
            )
        if failed:
            self.close()
            raise EngineError(f"--engine ray: Ray did not start: {failed[0]}")
        self._ray = ray
        self._remote = ray.remote(run_decision)

    def _init(self, ray: Any) -> bool:
        """``ray.init`` unless Ray runs in this process already; whether it started it."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if self.address:
            ray.init(address=self.address, **options)
        else:
            # A folder of its own: /tmp/ray is shared by every Ray on the machine.
            self._folder = tempfile.mkdtemp(prefix="lightson-ray-")
            ray.init(num_cpus=self.num_cpus, _temp_dir=self._folder, **options)
        return True

    async def start_async(self) -> None:
        """:meth:`start` off the event loop."""
        await asyncio.to_thread(self.start)

    async def decide(self, request: DecisionRequest) -> tuple[StepDecision, Controller]:
        if self._remote is None:
            raise EngineError("--engine ray: Ray is not started")
        ref = self._remote.remote(_slim(request))
        try:
            answer = await asyncio.wait_for(asyncio.wrap_future(ref.future()), self.solve_timeout_s)
        except TimeoutError:
            self._ray.cancel(ref, force=True)
            raise EngineError(
                f"{request.site.site_id}: no decision from Ray in {self.solve_timeout_s:.0f} s"
            ) from None
        decision, controller = answer
        return decision, controller

    def close(self) -> None:
        """Stop the Ray this engine started (waits for it a while)."""
        if self._stop is not None:
            self._stop.set()
        if self._keeper is not None:
            self._keeper.join(60.0)
        self._remote = None
        self._ray = None
        self._stop = self._keeper = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _slim(request: DecisionRequest) -> DecisionRequest:
    """The request with only the part of the program the plan reads (its time zone, step,
    DR programs and the events known): not every other site and the weather, per task."""
    context = request.context
    if context is None:
        return request
    program = replace(context.program, sites=(context.site,), weather=None, outages=())
    return replace(request, context=replace(context, program=program))


def make_engine(
    name: str, num_cpus: int = 2, address: str | None = None
) -> InlineEngine | RayEngine:
    """The engine named ``name`` (one of :data:`ENGINES`), not started."""
    if name == "inline":
        return InlineEngine()
    if name == "ray":
        return RayEngine(num_cpus=num_cpus, address=address)
    raise ConfigError.at("--engine", f"unknown engine '{name}'; known: {', '.join(ENGINES)}")

"""Solving a ``LinearProgram`` with HiGHS (``highspy``). The solver object never leaves
this module; callers get a typed ``Solution``."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
from numpy.typing import NDArray

from lightson.domain.errors import SolverError
from lightson.domain.plan import SolveStatus
from lightson.optimize.model import LinearProgram

_STATUS = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kTimeLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kIterationLimit: SolveStatus.TIME_LIMIT,
}


@dataclass(frozen=True, eq=False)
class Solution:
    status: SolveStatus
    x: NDArray[np.float64]
    objective_usd: float
    solve_time_s: float


class WarmStart:
    """The simplex basis of the last solve, offered to the next one of the same shape (a
    receding-horizon controller re-solves nearly the same LP every hour). Opaque outside
    ``optimize``; a basis that does not fit is ignored."""

    def __init__(self) -> None:
        self._basis: highspy.HighsBasis | None = None
        self._shape: tuple[int, int] = (0, 0)

    def offer(self, highs: highspy.Highs, lp: LinearProgram) -> None:
        if self._basis is not None and self._shape == (lp.n_cols, lp.n_rows):
            highs.setBasis(self._basis)

    def keep(self, highs: highspy.Highs, lp: LinearProgram) -> None:
        self._basis, self._shape = highs.getBasis(), (lp.n_cols, lp.n_rows)

    # Pickled with its controller (a live site's decision solved on Ray comes back with
    # it): HiGHS's basis object does not pickle, its statuses as integers do.
    def __getstate__(self) -> dict[str, Any]:
        basis = self._basis
        if basis is None:
            return {"basis": None, "shape": self._shape}
        statuses = (
            [int(s) for s in basis.col_status],
            [int(s) for s in basis.row_status],
            bool(basis.valid),
            bool(basis.alien),
        )
        return {"basis": statuses, "shape": self._shape}

    def __setstate__(self, state: dict[str, Any]) -> None:
        rows_cols = state["shape"]
        self._shape = (int(rows_cols[0]), int(rows_cols[1]))
        self._basis = None
        if state["basis"] is not None:
            cols, rows, valid, alien = state["basis"]
            basis = highspy.HighsBasis()
            basis.col_status = [highspy.HighsBasisStatus(s) for s in cols]
            basis.row_status = [highspy.HighsBasisStatus(s) for s in rows]
            basis.valid, basis.alien = valid, alien
            self._basis = basis


def solve(lp: LinearProgram, time_limit_s: float = 60.0, warm: WarmStart | None = None) -> Solution:
    """Solve ``lp`` (from ``warm``'s basis when it fits); raises ``SolverError`` (retryable)
    when HiGHS itself fails."""
    highs = new_quiet_highs()
    highs.setOptionValue("time_limit", float(time_limit_s))
    # Presolve finds little to remove in these LPs and costs ~15-30 % of the solve time
    # (docs/benchmarks.md); the optimum is the same.
    highs.setOptionValue("presolve", "off")
    if _pass_model(highs, lp) == highspy.HighsStatus.kError:
        raise SolverError("HiGHS refused the model (non-finite or out-of-range coefficients)")
    if warm is not None:
        warm.offer(highs, lp)
    started = time.perf_counter()
    run_status = highs.run()
    elapsed = time.perf_counter() - started
    if run_status == highspy.HighsStatus.kError:
        raise SolverError(f"HiGHS failed: {highs.modelStatusToString(highs.getModelStatus())}")
    model_status = highs.getModelStatus()
    if model_status == highspy.HighsModelStatus.kModelEmpty and lp.n_cols == 0:
        return Solution(SolveStatus.OPTIMAL, np.zeros(0), lp.offset, elapsed)
    status = _STATUS.get(model_status, SolveStatus.ERROR)
    if not status.has_plan:
        return Solution(status, np.zeros(lp.n_cols), float("nan"), elapsed)
    x = np.asarray(highs.getSolution().col_value, dtype=float)
    if warm is not None:
        warm.keep(highs, lp)
    objective = float(lp.cost @ x + lp.offset)
    return Solution(status, x, objective, elapsed)


_banner_lock = threading.Lock()
_banner_done = False


def prepare_highs() -> None:
    """Take HiGHS's once-per-process banner now (``new_quiet_highs``), before any thread
    that prints is running."""
    new_quiet_highs()


def new_quiet_highs() -> highspy.Highs:
    """A ``highspy.Highs`` with logging off and nothing written to stdout.

    Our thin layer over a highspy defect (ERGO-Code/HiGHS#2749): ``highspy.Highs()``
    writes its "Running HiGHS ..." banner to file descriptor 1 from C++ before any option
    can be set, once per process, which corrupts ``lightson plan --json`` on stdout. The
    first construction therefore runs with fd 1 pointed at ``/dev/null``. That is
    process-wide: a program that solves in worker threads while other threads print calls
    ``prepare_highs()`` first, from its main thread, or their lines are lost with the banner.
    """
    global _banner_done
    with _banner_lock:
        if _banner_done:
            highs = highspy.Highs()  # type: ignore[no-untyped-call]
        else:
            sys.stdout.flush()
            saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                highs = highspy.Highs()  # type: ignore[no-untyped-call]
                highs.setOptionValue("output_flag", False)
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_done = True
    highs.setOptionValue("output_flag", False)
    return highs


def _pass_model(highs: highspy.Highs, lp: LinearProgram) -> highspy.HighsStatus:
    """Hand ``lp`` to HiGHS through ``passModel``'s array overload: numpy buffers go
    straight to C++. Filling a ``highspy.HighsLp`` attribute by attribute copies element by
    element, about 1 ms for a ten-vehicle day (docs/benchmarks.md), a tenth of it this way.
    Infinite bounds stay ``inf`` (``highspy.kHighsInf`` is ``inf``)."""
    matrix = lp.matrix.tocsc()
    return highs.passModel(
        lp.n_cols,
        lp.n_rows,
        matrix.nnz,
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        float(lp.offset),
        _floats(lp.cost),
        _floats(lp.col_lower),
        _floats(lp.col_upper),
        _floats(lp.row_lower),
        _floats(lp.row_upper),
        matrix.indptr.astype(np.int32),
        matrix.indices.astype(np.int32),
        _floats(matrix.data),
        # Every column continuous; an empty array here would be read as num_col values.
        np.zeros(lp.n_cols, dtype=np.int32),
    )


def _floats(values: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.ascontiguousarray(values, dtype=np.float64)

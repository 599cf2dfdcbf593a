"""Solver options: the one object that travels from the public functions down to the linear system."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .tuning import DEFAULT_MAXITER_JACOBI, DEFAULT_MAXITER_MULTIGRID, DEFAULT_RTOL

SOLVERS = ("auto", "mg", "mg-operator", "jacobi", "direct", "banded")
FAILURES = ("raise", "nan", "retry")


def _is_count(value: object) -> bool:
    """Whether value is an integer (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SolveOptions:
    """How to solve (never what): the same answer to the tolerance whatever is chosen.

    solver: "auto" (on CPU direct for small cold 2D solves, ``solvers.choose_solver``; else mg if the grid
    coarsens, else direct on CPU / jacobi on CUDA), "mg" (multigrid PCG, bi/trilinear prolongation),
    "mg-operator" (multigrid PCG, operator-dependent prolongation), "jacobi" (Jacobi-PCG), "direct" (scipy
    SuperLU, factorization reused by the adjoint), "banded" (LAPACK banded Cholesky of 2D Dirichlet grids,
    SPD systems; SuperLU for a sample whose matrix is not positive definite; the Newton solves' "auto" on
    CPU, ``newton.tangent_options``). rtol: PCG relative residual tolerance in (0, 1) (None:
    ``tuning.DEFAULT_RTOL``, 1e-6 float32 / 1e-10 float64). maxiter: PCG iteration limit (None: 500 multigrid,
    20000 Jacobi). batch_size: samples per solve (None: all on CUDA, near-equal chunks of at most
    ``tuning.CPU_CHUNK_ELEMENTS`` elements on CPU). on_failure: what a sample whose PCG misses rtol gets
    from ``bulk_modulus`` / ``homogenized_stiffness`` (and a sample whose Newton fails from the nonlinear
    curves, where "retry" means "nan"): "raise" (ConvergenceError for the whole call), "nan"
    (NaN values for that sample, the others as usual) or "retry" (its solve once more, cold and in float64,
    with ``retry_options``; NaN where that fails too). The per-sample outcome: ``return_status=True``.
    """

    solver: str = "auto"
    rtol: float | None = None
    maxiter: int | None = None
    batch_size: int | None = None
    on_failure: str = "raise"

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.rtol is not None and not (isinstance(self.rtol, float | int) and 0 < self.rtol < 1):
            raise ValueError(f"rtol must be a number in (0, 1), got {self.rtol!r}")
        if self.maxiter is not None and not (_is_count(self.maxiter) and self.maxiter >= 0):
            raise ValueError(f"maxiter must be an integer >= 0, got {self.maxiter!r}")
        if self.batch_size is not None and not (_is_count(self.batch_size) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.on_failure not in FAILURES:
            raise ValueError(f"on_failure must be one of {FAILURES}, got {self.on_failure!r}")

    def tolerance(self, dtype: torch.dtype) -> float:
        """PCG relative residual tolerance for fields of this dtype."""
        return DEFAULT_RTOL[dtype] if self.rtol is None else self.rtol

    def iteration_limit(self, multigrid: bool) -> int:
        """PCG iteration limit, multigrid- or Jacobi-preconditioned."""
        if self.maxiter is not None:
            return self.maxiter
        return DEFAULT_MAXITER_MULTIGRID if multigrid else DEFAULT_MAXITER_JACOBI

    def retry_options(self, dim: int) -> SolveOptions:
        """Options of the cold float64 solve of samples that failed (on_failure "retry"): SuperLU in 2D (it
        solved 2D 32^2 fields of contrast 3e5 where float64 multigrid stalled at 8e-6), the same solver in 3D;
        failures of the retry are NaN."""
        return replace(self, solver="direct" if dim == 2 else self.solver, on_failure="nan")

"""Solver options: the one object that travels from the public functions down to the linear system."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tuning import DEFAULT_MAXITER_JACOBI, DEFAULT_MAXITER_MULTIGRID, DEFAULT_RTOL

SOLVERS = ("auto", "mg", "mg-operator", "jacobi", "direct")


@dataclass(frozen=True)
class SolveOptions:
    """How to solve (never what): the same answer to the tolerance whatever is chosen.

    solver: "auto" (on CPU direct for small cold 2D solves, ``solvers.choose_solver``; else mg if the grid
    coarsens, else direct on CPU / jacobi on CUDA), "mg" (multigrid PCG, bi/trilinear prolongation),
    "mg-operator" (multigrid PCG, operator-dependent prolongation), "jacobi" (Jacobi-PCG), "direct" (scipy
    SuperLU, factorization reused by the adjoint). rtol: PCG relative residual tolerance (None:
    ``tuning.DEFAULT_RTOL``, 1e-6 float32 / 1e-10 float64). maxiter: PCG iteration limit (None: 500 multigrid,
    20000 Jacobi). batch_size: samples per solve (None: all on CUDA, near-equal chunks of at most
    ``tuning.CPU_CHUNK_ELEMENTS`` elements on CPU).
    """

    solver: str = "auto"
    rtol: float | None = None
    maxiter: int | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.rtol is not None and not self.rtol > 0:
            raise ValueError(f"rtol must be > 0, got {self.rtol}")
        if self.maxiter is not None and self.maxiter < 0:
            raise ValueError(f"maxiter must be >= 0, got {self.maxiter}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def tolerance(self, dtype: torch.dtype) -> float:
        """PCG relative residual tolerance for fields of this dtype."""
        return DEFAULT_RTOL[dtype] if self.rtol is None else self.rtol

    def iteration_limit(self, multigrid: bool) -> int:
        """PCG iteration limit, multigrid- or Jacobi-preconditioned."""
        if self.maxiter is not None:
            return self.maxiter
        return DEFAULT_MAXITER_MULTIGRID if multigrid else DEFAULT_MAXITER_JACOBI

"""Linear solvers for the masked voxel stiffness system: batched PCG with a geometric multigrid V-cycle
(Galerkin coarse operators) or Jacobi preconditioner, and a scipy sparse direct solver (small grids, oracle).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from . import native
from .grid import coarse_mask, element_dofs, free_mask, node_shape, take_samples
from .operators import ElementOperator, VoxelOperator
from .options import SolveOptions
from .transfer import PROLONGATIONS, LinearTransfer, operator_level
from .tuning import (
    COARSEST_ELEMENTS,
    COMPACT_FRACTION,
    DIRECT_ELEMENTS_AFFINE,
    DIRECT_ELEMENTS_PERIODIC,
    JACOBI_POWER_ITERATIONS,
    JACOBI_SAFETY,
    SMOOTHER_SWEEPS,
)


class ConvergenceError(RuntimeError):
    """An iterative FEM solve did not reach its tolerance within maxiter iterations."""


@dataclass
class SolveInfo:
    """Outcome of one batched solve: iterations run, per-(sample, rhs) convergence and relative residual."""

    solver: str
    iterations: int
    converged: torch.Tensor  # (B, R) bool
    residual: torch.Tensor  # (B, R) float64, ||b - K x|| / ||b|| (recursive residual for PCG)


def coarsenings(el_shape: tuple[int, ...]) -> int:
    """Number of 2x coarsenings: while all axes are even, stay >= 2 and the largest exceeds
    ``tuning.COARSEST_ELEMENTS`` (8 in 2D, 4 in 3D)."""
    n, shape, stop = 0, tuple(el_shape), COARSEST_ELEMENTS[len(el_shape)]
    while all(m % 2 == 0 and m // 2 >= 2 for m in shape) and max(shape) > stop:
        shape, n = tuple(m // 2 for m in shape), n + 1
    return n


def choose_solver(
    solver: str,
    el_shape: tuple[int, ...],
    device: torch.device,
    batch: int = 1,
    warm: bool = False,
    periodic: bool = False,
) -> str:
    """Resolve solver="auto" (``SolveOptions``) for a solve of `batch` samples: on CPU, direct for small cold
    2D solves (at most ``tuning.DIRECT_ELEMENTS_AFFINE`` / ``_PERIODIC`` elements, no warm start); else
    multigrid PCG if the grid coarsens, else direct (CPU) / Jacobi-PCG (CUDA)."""
    if solver != "auto":
        return solver
    cpu = device.type == "cpu"
    limit = DIRECT_ELEMENTS_PERIODIC if periodic else DIRECT_ELEMENTS_AFFINE
    if cpu and len(el_shape) == 2 and not warm and batch * int(np.prod(el_shape)) <= limit:
        return "direct"
    if coarsenings(el_shape) >= 1:
        return "mg"
    return "direct" if cpu else "jacobi"


def discard_poor_guess(x: torch.Tensor, b: torch.Tensor, r: torch.Tensor, bnorm: torch.Tensor, dot):
    """(x, r) with the initial guess x (B, R, d, *nodes) of residual r = b - K x replaced by 0 (and r by b)
    for each right-hand side where it is no better than 0, ||r|| >= ||b|| (B, R). A zero right-hand side
    thereby gets its solution 0 at once: its stopping test rtol ||b|| = 0 cannot be met by any other guess.
    """
    poor = dot(r, r) >= bnorm * bnorm
    keep = (~poor).to(x.dtype).view(*poor.shape, *(1,) * (x.ndim - 2))
    return x * keep, torch.where(keep > 0, r, b)


def pcg(system, b: torch.Tensor, x0: torch.Tensor | None, rtol: float, maxiter: int):
    """Batched PCG on nodal fields (B, R, d, *nodes) with float64 dots; returns x, iterations (the largest
    over the batch), done (B, R) and the relative residual (B, R).

    system provides apply(x), precondition(r) and select(idx) (the same system for samples idx). Samples
    whose right-hand sides have all converged leave the batch once at least ``tuning.COMPACT_FRACTION`` of
    the active ones have.
    """
    dims, fused = tuple(range(2, b.ndim)), native.usable(b)

    def dot(u, v):
        return native.dot(u, v) if fused else torch.sum(u * v, dim=dims, dtype=torch.float64)

    def step(x, r, p, ap, alpha):
        """x += alpha p, r -= alpha ap in place; returns the new ||r|| (B, R)."""
        if fused:
            return native.cg_update(x, r, p, ap, alpha).sqrt()
        scale = alpha.to(b.dtype).view(*alpha.shape, *(1,) * (b.ndim - 2))
        x.addcmul_(scale, p)
        r.addcmul_(-scale, ap)
        return dot(r, r).sqrt()

    bnorm = dot(b, b).sqrt()
    if x0 is None:
        x, r = torch.zeros_like(b), b.contiguous().clone()
    else:
        x, r = discard_poor_guess(x0.contiguous().clone(), b, b - system.apply(x0), bnorm, dot)
    tol, rnorm = rtol * bnorm, dot(r, r).sqrt()
    done = rnorm <= tol
    x_out, rnorm_out, done_out = x, rnorm.clone(), done.clone()
    active = torch.arange(b.shape[0], device=b.device)
    z = system.precondition(r)
    p, rz = z.clone(), dot(r, z)
    it, n_done = 0, int(done.all(1).sum())
    while it < maxiter and n_done < len(active):
        it += 1
        ap = system.apply(p)
        pap = dot(p, ap)
        ok = (~done) & (pap > 0)
        alpha = torch.where(ok, rz / torch.where(ok, pap, 1.0), 0.0)
        rnorm = step(x, r, p, ap, alpha)
        done = done | (rnorm <= tol)
        z = system.precondition(r)
        rz_new = dot(r, z)
        beta = torch.where(done | (rz == 0), 0.0, rz_new / torch.where(rz == 0, 1.0, rz))
        p = torch.addcmul(z, beta.to(b.dtype).view(*beta.shape, *(1,) * (b.ndim - 2)), p)
        rz = rz_new
        finished = done.all(1)
        n_done = int(finished.sum())
        if 0 < n_done < len(active) and n_done >= COMPACT_FRACTION * len(active):
            gone, keep = active[finished], (~finished).nonzero()[:, 0]
            x_out[gone], rnorm_out[gone], done_out[gone] = x[finished], rnorm[finished], done[finished]
            x, r, p, rz, tol, rnorm, done = (t[keep] for t in (x, r, p, rz, tol, rnorm, done))
            active, system, n_done = active[keep], system.select(keep), 0
    if x is x_out:  # never compacted
        rnorm_out, done_out = rnorm, done
    else:
        x_out[active], rnorm_out[active], done_out[active] = x, rnorm, done
    return x_out, it, done_out, rnorm_out / torch.where(bnorm == 0, 1.0, bnorm)


class DenseCoarseSolver:
    """Batched dense inverse (float64, through Cholesky) of an operator given by element matrices, on its free
    dofs only (3D 4^3 Dirichlet grid: 81 of 375 dofs); fixed dofs get 0. Applying the stored inverse is one
    batched product: 2D 8x8 coarse grids, 64 samples, 0.35 instead of 1.8 ms per solve for the triangular
    solves (2-core CPU, torch 2.13). Cholesky, not LU: batched torch.linalg.solve / inv of >= ~150 unknowns
    raised, hung or returned wrong numbers with 2 threads in the torch 2.13 CPU wheel here (guarded by a
    test)."""

    def __init__(self, ke: torch.Tensor, el_shape: tuple[int, ...], periodic: bool, mask: torch.Tensor):
        b = ke.shape[0]
        edof = torch.as_tensor(element_dofs(el_shape, periodic), device=ke.device)
        n = len(el_shape) * int(np.prod(node_shape(el_shape, periodic)))
        idx = (edof[:, :, None] * n + edof[:, None, :]).reshape(-1)
        a = torch.zeros(b, n * n, dtype=torch.float64, device=ke.device)
        a.index_add_(1, idx, ke.to(torch.float64).reshape(b, -1))
        self.free = mask.expand(1, 1, len(el_shape), *mask.shape[3:]).reshape(n).nonzero()[:, 0]
        a = a.reshape(b, n, n)[:, self.free][:, :, self.free]
        self.inverse = torch.cholesky_inverse(torch.linalg.cholesky(a))
        self.n = n

    def select(self, idx: torch.Tensor) -> DenseCoarseSolver:
        """The solver of samples idx only."""
        return take_samples(self, idx, "inverse")

    def solve(self, r: torch.Tensor) -> torch.Tensor:
        """K^-1 r on the free dofs for a nodal field (B, R, d, *nodes), 0 on fixed dofs."""
        rhs = r.reshape(r.shape[0], r.shape[1], self.n).index_select(2, self.free).to(torch.float64)
        x = torch.matmul(rhs, self.inverse).to(r.dtype)  # (B, R, n_free); the inverse is symmetric
        out = r.new_zeros(r.shape[0], r.shape[1], self.n)
        return out.index_copy_(2, self.free, x).reshape(r.shape)


@dataclass
class Level:
    """One multigrid level: operator, free-dof mask (1, 1, 1, *nodes), inverse diagonal (B, 1, d, *nodes)
    (0 on fixed dofs) and, once the damping is known, the smoother's omega D^-1 (same shape)."""

    op: VoxelOperator
    mask: torch.Tensor
    dinv: torch.Tensor
    wdinv: torch.Tensor | None = None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Masked K x."""
        return self.op.apply(x, self.mask)

    def select(self, idx: torch.Tensor) -> Level:
        """The level of samples idx only."""
        wdinv = None if self.wdinv is None else self.wdinv[idx]
        return replace(self, op=self.op.select(idx), dinv=self.dinv[idx], wdinv=wdinv)

    def smooth(self, r: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """``tuning.SMOOTHER_SWEEPS`` damped Jacobi sweeps x += omega D^-1 (r - K x) from x (None: 0); fixed
        dofs stay 0."""
        sweeps = SMOOTHER_SWEEPS
        if x is None:
            x, sweeps = self.wdinv * r, sweeps - 1
        for _ in range(sweeps):
            x = self.op.jacobi(r, x, self.wdinv)  # wdinv is 0 on fixed dofs: no mask needed
        return x


def make_level(op: VoxelOperator, mask: torch.Tensor) -> Level:
    """Level with the Jacobi inverse diagonal (0 on fixed dofs)."""
    diag = op.diagonal()
    return Level(op, mask, mask / torch.where(mask > 0, diag, torch.ones_like(diag)))


def jacobi_weight(level: Level) -> torch.Tensor:
    """Per-sample damping 4 / (3 lambda_max(D^-1 K)) (B, 1, 1, ...), lambda_max by power iteration times a
    safety factor (``tuning.JACOBI_POWER_ITERATIONS``, ``JACOBI_SAFETY``)."""
    dims = tuple(range(1, level.dinv.ndim))
    gen = torch.Generator(device=level.dinv.device).manual_seed(0)
    dinv = level.dinv
    x = torch.rand(dinv.shape, generator=gen, dtype=dinv.dtype, device=dinv.device) * level.mask
    lam_max = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    for _ in range(JACOBI_POWER_ITERATIONS):
        x = x / torch.linalg.vector_norm(x, dim=dims, keepdim=True)
        y = level.dinv * level.apply(x)
        lam_max = torch.sum(x * y, dim=dims, dtype=torch.float64)
        x = y
    return (4.0 / (3.0 * JACOBI_SAFETY * lam_max)).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class Multigrid:
    """Multigrid V-cycle for any fine operator that gives element matrices: Galerkin coarse element matrices,
    damped Jacobi, dense coarsest solve.

    prolongation: "geometric" ((bi/tri)linear, default) or "operator" (face and cell-centre nodes follow
    the operator, see ``transfer.operator_weights``: 7-31% fewer iterations at contrast >= 100; on the
    2-core CPU at contrast 100 as fast as "geometric" for cold 2D batches, slower warm and 1.7-2.1x slower in
    3D, where its per-element Galerkin products dominate).
    """

    def __init__(self, fine: VoxelOperator, mask: torch.Tensor, prolongation: str = "geometric"):
        self.periodic, self.prolongation = fine.periodic, prolongation
        if prolongation not in PROLONGATIONS:
            raise ValueError(f"prolongation must be one of {PROLONGATIONS}, got {prolongation!r}")
        el_shape, op, n = fine.el_shape, fine, coarsenings(fine.el_shape)
        linear = fine.linear_galerkin_matrices(n) if prolongation == "geometric" else None
        self.levels, self.transfers = [make_level(fine, mask)], []
        for lev in range(n):
            el_shape = tuple(m // 2 for m in el_shape)
            if linear is not None:
                transfer, ke = LinearTransfer(self.periodic), linear[lev]
            else:
                transfer, ke = operator_level(op, el_shape, self.periodic)
            op = ElementOperator(ke, el_shape, self.periodic)
            self.transfers.append(transfer)
            mask = coarse_mask(mask)
            self.levels.append(make_level(op, mask))
        self.coarse = DenseCoarseSolver(op.element_matrices(), el_shape, self.periodic, mask)
        for level in self.levels[:-1]:
            level.wdinv = jacobi_weight(level) * level.dinv

    def _cycle(self, lev: int, r: torch.Tensor) -> torch.Tensor:
        if lev == len(self.levels) - 1:
            return self.coarse.solve(r)
        level, transfer = self.levels[lev], self.transfers[lev]
        x = level.smooth(r, None)
        # No masks on the coarse residual or the correction: every step of a level ignores residuals on its
        # fixed dofs (zero smoother weights, the coarsest solve reads free dofs only), so corrections vanish
        # on fixed dofs, and the prolongation maps those only onto fixed fine dofs.
        rc = transfer.restrict(level.op.residual(r, x, level.mask))
        x = transfer.prolong(self._cycle(lev + 1, rc), add_to=x)
        return level.smooth(r, x)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """One symmetric V-cycle applied to a residual (B, R, d, *nodes)."""
        return self._cycle(0, r)

    def with_fine(self, fine: VoxelOperator) -> Multigrid:
        """This hierarchy for a new fine operator on the same grid and batch (a lagged preconditioner): a
        fresh fine level (diagonal and damping), the coarse levels, transfers and coarsest solve kept. The
        V-cycle stays SPD for any SPD coarse operators, so PCG still converges to the new system's solution;
        only its iteration count depends on how far the materials have moved."""
        new = copy.copy(self)
        first = make_level(fine, self.levels[0].mask)
        first.wdinv = jacobi_weight(first) * first.dinv
        new.levels = [first, *self.levels[1:]]
        return new

    def fits(self, fine: VoxelOperator, prolongation: str) -> bool:
        """Whether this hierarchy has the given prolongation and was built for the grid, boundary condition,
        batch size, dtype and device of `fine`."""
        op = self.levels[0].op
        built = (self.prolongation, op.el_shape, op.periodic, op.batch, op.dtype, op.device)
        return built == (prolongation, fine.el_shape, fine.periodic, fine.batch, fine.dtype, fine.device)

    def select(self, idx: torch.Tensor) -> Multigrid:
        """The preconditioner of samples idx only."""
        new = copy.copy(self)
        new.levels = [level.select(idx) for level in self.levels]
        new.transfers = [transfer.select(idx) for transfer in self.transfers]
        new.coarse = self.coarse.select(idx)
        return new


@dataclass
class JacobiPreconditioner:
    """z = D^-1 r with the inverse diagonal (B, 1, d, *nodes), 0 on fixed dofs."""

    dinv: torch.Tensor

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        return self.dinv * r

    def select(self, idx: torch.Tensor) -> JacobiPreconditioner:
        """The preconditioner of samples idx only."""
        return JacobiPreconditioner(self.dinv[idx])


def sparse_stiffness(ke: np.ndarray, el_shape: tuple[int, ...], periodic: bool) -> sp.csc_matrix:
    """Assembled global stiffness (top88 style) from element matrices (n_el, n_loc, n_loc)."""
    edof = element_dofs(el_shape, periodic)
    n = len(el_shape) * int(np.prod(node_shape(el_shape, periodic)))
    rows = np.broadcast_to(edof[:, :, None], ke.shape).ravel()
    cols = np.broadcast_to(edof[:, None, :], ke.shape).ravel()
    return sp.coo_matrix((ke.ravel(), (rows, cols)), shape=(n, n)).tocsc()


class DirectSolver:
    """scipy SuperLU factorization of K_ff per sample (float64), reused for every right-hand side."""

    def __init__(self, op: VoxelOperator, mask: torch.Tensor):
        ke = op.element_matrices().detach().to(torch.float64).cpu().numpy()
        d = len(op.el_shape)
        free = mask.expand(1, 1, d, *mask.shape[3:]).reshape(-1).cpu().numpy() > 0
        self.free = np.flatnonzero(free)
        self.lus = [
            spla.splu(sparse_stiffness(k, op.el_shape, op.periodic)[self.free][:, self.free].tocsc())
            for k in ke
        ]

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """K_ff^-1 b_f for a nodal field (B, R, d, *nodes); fixed dofs stay 0."""
        flat = b.detach().to(torch.float64).cpu().reshape(b.shape[0], b.shape[1], -1).numpy()
        x = np.zeros_like(flat)
        for i, lu in enumerate(self.lus):
            x[i][:, self.free] = lu.solve(np.ascontiguousarray(flat[i][:, self.free].T)).T
        return torch.as_tensor(x, dtype=b.dtype, device=b.device).reshape(b.shape)


@functools.lru_cache(maxsize=16)
def band_layout(el_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """How the element matrices of a 2D Dirichlet grid fill the upper band of K in a dof numbering of
    bandwidth 2 m + 3, m the shorter axis' element count: nodes numbered along the shorter axis first, the
    two components of a node next to each other.

    Returns (band (n,): the band number of each natural dof (``grid.element_dofs``: comp * n_nodes + node);
    entries (k,): flat indices into one sample's element matrices (n_el, n_loc, n_loc) of the entries on or
    above the band's diagonal; rows, cols (k,): their band row and column; the bandwidth)."""
    nodes = tuple(m + 1 for m in el_shape)
    idx = np.arange(nodes[0] * nodes[1]).reshape(nodes)
    node_number = np.empty(idx.size, dtype=np.int64)
    node_number[(idx if nodes[1] <= nodes[0] else idx.T).reshape(-1)] = np.arange(idx.size)
    band = np.concatenate([2 * node_number, 2 * node_number + 1])
    edof = band[element_dofs(el_shape, False)]  # (n_el, n_loc)
    rows = np.broadcast_to(edof[:, :, None], (*edof.shape, edof.shape[1])).reshape(-1)
    cols = np.broadcast_to(edof[:, None, :], (*edof.shape, edof.shape[1])).reshape(-1)
    entries = np.flatnonzero(rows <= cols)
    return band, entries, rows[entries], cols[entries], int((cols - rows).max())


class BandedSolver:
    """K_ff^-1 on 2D Dirichlet grids by LAPACK's banded Cholesky (scipy ``cholesky_banded``), one
    factorization per sample, fixed dofs as identity rows. 2D 32^2, contrast 100, one thread: 1.6 ms per
    factorization against SuperLU's 10-11 ms (2026-12-03). A sample whose matrix is not positive definite is
    factorized by SuperLU instead (``DirectSolver``)."""

    def __init__(self, op: VoxelOperator, mask: torch.Tensor):
        if len(op.el_shape) != 2 or op.periodic:
            raise ValueError("the banded solver serves 2D grids with Dirichlet boundary conditions")
        band, entries, rows, cols, bw = band_layout(tuple(op.el_shape))
        ke = op.element_matrices().detach().to(torch.float64).cpu()
        b, n = ke.shape[0], len(band)
        free = np.empty(n, dtype=bool)
        free[band] = mask.expand(1, 1, 2, *mask.shape[3:]).reshape(-1).cpu().numpy() > 0
        keep = free[rows] & free[cols]
        position = torch.as_tensor((bw + rows[keep] - cols[keep]) * n + cols[keep])
        ab = torch.zeros(b, (bw + 1) * n, dtype=torch.float64)
        ab.index_add_(1, position, ke.reshape(b, -1)[:, torch.as_tensor(entries[keep])])
        ab[:, bw * n + np.flatnonzero(~free)] = 1.0
        self.band, self.n = torch.as_tensor(band), n
        self.factors: list = []
        for i, a in enumerate(ab.reshape(b, bw + 1, n).numpy()):
            try:
                self.factors.append(sla.cholesky_banded(a, overwrite_ab=True, check_finite=False))
            except np.linalg.LinAlgError:
                self.factors.append(DirectSolver(op.select(torch.tensor([i])), mask))

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """K_ff^-1 b_f for a nodal field (B, R, 2, *nodes) with zero fixed dofs; fixed dofs stay 0."""
        flat = b.detach().to(torch.float64).cpu().reshape(b.shape[0], b.shape[1], -1)
        rhs = torch.empty_like(flat)
        rhs[:, :, self.band] = flat  # natural -> band numbering
        x = torch.empty_like(flat)
        for i, factor in enumerate(self.factors):
            if isinstance(factor, DirectSolver):
                x[i] = factor.solve(flat[i : i + 1])[0]
            else:
                sol = sla.cho_solve_banded((factor, False), rhs[i].T.numpy(), check_finite=False)
                x[i] = torch.from_numpy(sol.T)[:, self.band]
        return x.to(dtype=b.dtype, device=b.device).reshape(b.shape)


class LinearSystem:
    """The masked stiffness system of one batch of materials, with the solver of `options` set up once.

    warm: whether the caller warm-starts (steers solver="auto" away from the direct solver); hierarchy: a
    multigrid hierarchy from an earlier call (``WarmStart``); a multigrid solver that it fits
    reuses its coarse levels (``Multigrid.with_fine``, ``reused`` is then True). ``multigrid`` is the V-cycle
    of a multigrid solver (None otherwise). mask: the free-dof mask (1, 1, 1 or d, *nodes), default every
    boundary node fixed (``grid.free_mask``; periodic: node 0).
    """

    def __init__(
        self,
        op: VoxelOperator,
        options: SolveOptions | None = None,
        warm: bool = False,
        hierarchy: Multigrid | None = None,
        mask: torch.Tensor | None = None,
    ):
        options = SolveOptions() if options is None else options
        self.op = op
        self.mask = free_mask(op.el_shape, op.periodic, op.dtype, op.device) if mask is None else mask
        self.solver = choose_solver(options.solver, op.el_shape, op.device, op.batch, warm, op.periodic)
        self.rtol = options.tolerance(op.dtype)
        multigrid = self.solver.startswith("mg")
        self.maxiter = options.iteration_limit(multigrid)
        kind = "operator" if self.solver == "mg-operator" else "geometric"
        self.reused = multigrid and hierarchy is not None and hierarchy.fits(op, kind)
        self.precond: Multigrid | JacobiPreconditioner | None = None
        if self.reused:
            self.precond = hierarchy.with_fine(op)
        elif multigrid:
            self.precond = Multigrid(op, self.mask, kind)
        elif self.solver == "jacobi":
            self.precond = JacobiPreconditioner(make_level(op, self.mask).dinv)
        elif self.solver == "banded":
            self.direct = BandedSolver(op, self.mask)
        else:
            self.direct = DirectSolver(op, self.mask)

    @property
    def multigrid(self) -> Multigrid | None:
        """The V-cycle of a multigrid solver, else None."""
        return self.precond if isinstance(self.precond, Multigrid) else None

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Masked K x for a nodal field (B, R, d, *nodes)."""
        return self.op.apply(x, self.mask)

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """The PCG preconditioner (V-cycle or Jacobi) applied to a residual (B, R, d, *nodes)."""
        return self.precond(r)

    def select(self, idx: torch.Tensor) -> LinearSystem:
        """The system of samples idx only (iterative solvers; PCG drops converged samples with it)."""
        new = copy.copy(self)
        new.op, new.precond = self.op.select(idx), self.precond.select(idx)
        return new

    def solve(self, b: torch.Tensor, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, SolveInfo]:
        """x with K_ff x = b on free dofs (x = 0 on fixed dofs); b (B, R, d, *nodes) already masked."""
        if self.solver in ("direct", "banded"):
            x = self.direct.solve(b)
            res = torch.zeros(b.shape[:2], dtype=torch.float64, device=b.device)
            return x, SolveInfo(
                self.solver, 0, torch.ones(b.shape[:2], dtype=torch.bool, device=b.device), res
            )
        x0 = None if x0 is None else self.mask * x0.to(b.dtype)
        x, it, done, res = pcg(self, b, x0, self.rtol, self.maxiter)
        return x, SolveInfo(self.solver, it, done, res)

"""Boundary-value problems on the unit cell: affine Dirichlet (hydrostatic) and periodic homogenization,
their right-hand sides, warm-start state, and the public displacement solve."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .elements import check_inputs, lame, reference_matrices
from .grid import affine_field, element_affine, scatter
from .operators import IsotropicOperator
from .solvers import ConvergenceError, LinearSystem, Multigrid, SolveInfo

BCS = ("affine", "periodic")


# a reused multigrid hierarchy is dropped (rebuilt on the next call) once a solve with it takes more than this
# many times the fewest PCG iterations it has had (counting the warm-started solve it was built in). Guided
# design, bundled 2D 32^2 model, 50 samples, 100 TFG steps (2-core CPU): 15-20 rebuilds, 7-15 iterations per
# solve as with a fresh hierarchy every step; never rebuilding let the counts drift to 20-41.
REBUILD_GROWTH = 1.25


@dataclass
class WarmStart:
    """Solver state a caller keeps between calls to warm-start PCG (e.g. successive diffusion steps).

    Pass the same object as ``warm_start=`` on every call; each call reads the previous solution of the
    same kind (key "affine", "adjoint" or "periodic") when its shape matches, and stores the new one.
    ``fields[key]`` is a detached nodal field (B, R, d, *nodes); ``iterations[key]`` the last PCG count.
    Multigrid solves also keep their hierarchy (``hierarchies[key]``): later calls on the same grid and batch
    size rebuild only the fine level and reuse the coarse levels (a lagged preconditioner: same solution,
    cheaper setup) until a solve needs more than ``REBUILD_GROWTH`` times the fewest iterations it has had.
    When a call solves its batch in chunks (CPU default, see ``batch_size``) the keys carry the chunk
    start, e.g. "affine@4". Keep one WarmStart per objective and batch layout.
    Direct solves ignore the initial guess but still record their solution.
    """

    fields: dict[str, torch.Tensor] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)
    hierarchies: dict[str, Multigrid] = field(default_factory=dict)
    best_iterations: dict[str, int] = field(default_factory=dict)

    def get(self, key: str, shape: torch.Size, dtype: torch.dtype, device) -> torch.Tensor | None:
        """The stored field for key if it fits the requested shape, else None."""
        x = self.fields.get(key)
        if x is None or x.shape != shape:
            return None
        return x.to(dtype=dtype, device=device)

    def put(
        self,
        key: str,
        x: torch.Tensor,
        info: SolveInfo,
        system: LinearSystem | None = None,
        warm_started: bool = False,
    ) -> None:
        """Store a converged field and its iteration count, and the multigrid hierarchy of `system` if any:
        a new one when its solve was warm-started (a cold count says nothing about later warm ones); a reused
        one is dropped once its solve needed more than REBUILD_GROWTH x the fewest iterations it has had."""
        self.fields[key] = x.detach()
        self.iterations[key] = info.iterations
        if system is None or system.multigrid is None:
            return
        if system.reused:
            if info.iterations > REBUILD_GROWTH * self.best_iterations[key]:
                del self.hierarchies[key]
            else:
                self.best_iterations[key] = min(self.best_iterations[key], info.iterations)
        elif warm_started:
            self.hierarchies[key], self.best_iterations[key] = system.multigrid, info.iterations

    def hierarchy(self, key: str) -> Multigrid | None:
        """The kept multigrid hierarchy for key, if any."""
        return self.hierarchies.get(key)

    def clear(self) -> None:
        """Forget all stored fields and hierarchies (next solve starts cold)."""
        self.fields.clear()
        self.iterations.clear()
        self.hierarchies.clear()
        self.best_iterations.clear()


@dataclass
class FEMSolution:
    """Displacement solve result.

    u: (B, R, d, *nodes) displacement in unit-cell lengths, components in array axis order ((y, x) /
    (z, y, x)); affine BC: R = 1, total displacement on the (n+1)^d closed grid; periodic BC: R = 3 (2D) /
    6 (3D) Voigt load cases, periodic fluctuation on the n^d grid (node n = node 0), node 0 pinned.
    converged: (B, R) bool; residual: (B, R) relative residual; iterations: PCG iterations (0 for direct).
    """

    u: torch.Tensor
    converged: torch.Tensor
    residual: torch.Tensor
    iterations: int
    solver: str


def build_system(
    lam: torch.Tensor,
    mu: torch.Tensor,
    periodic: bool,
    solver: str,
    rtol: float | None,
    maxiter: int | None,
    warm: bool = False,
    hierarchy: Multigrid | None = None,
) -> tuple[LinearSystem, torch.Tensor]:
    """Linear system for Lame fields (B, *el) and the element divergence vector int_e div N (n_loc,); warm:
    whether the caller warm-starts (steers solver="auto" away from the direct solver); hierarchy: a kept
    multigrid hierarchy to reuse if it fits (``WarmStart``)."""
    dvec = reference_matrices(tuple(1.0 / m for m in lam.shape[1:]), lam.dtype, lam.device)[2]
    op = IsotropicOperator(lam, mu, periodic)
    return LinearSystem(op, solver, rtol, maxiter, warm=warm, hierarchy=hierarchy), dvec


def check_converged(info: SolveInfo, what: str) -> None:
    """Raise ConvergenceError if any (sample, rhs) of a solve missed its tolerance."""
    if not bool(info.converged.all()):
        bad = (~info.converged).nonzero()[:, 0].unique().tolist()
        raise ConvergenceError(
            f"{what}: {info.solver}-PCG did not converge in {info.iterations} iterations for samples {bad} "
            f"(worst relative residual {float(info.residual.max()):.3e}); raise maxiter or loosen rtol"
        )


def affine_solve(
    system: LinearSystem, eps0: float = 1.0, x0: torch.Tensor | None = None, extra: torch.Tensor | None = None
):
    """Fluctuation v (B, 1, d, *nodes) (zero on the boundary) and the element vector um (1, n_loc) of
    u = eps0 X relative to each element's first corner: the total field is u = eps0 X + v.

    extra: further masked right-hand sides (B, E, d, *nodes) solved in the same PCG call (an adjoint);
    their solutions follow v along dim 1. Element vectors are formed as um + v_e (never from the total
    field), so float32 keeps its accuracy: k_e annihilates translations, and subtracting them first avoids
    cancellation of O(1/h).
    """
    op = system.op
    d = len(op.el_shape)
    strain = eps0 * torch.eye(d, dtype=op.coef.dtype, device=op.coef.device)[None]
    um = element_affine(op.el_shape, strain)
    rhs = -system.mask * scatter(op.element_forces(um[None, :, :, None]), op.el_shape, False)
    if extra is not None:
        rhs = torch.cat([rhs, extra.to(rhs.dtype)], dim=1)
    v, info = system.solve(rhs, x0)
    return v, um, info


def affine_total(v: torch.Tensor, eps0: float = 1.0) -> torch.Tensor:
    """Total displacement eps0 X + v for a fluctuation v (B, R, d, *nodes) on the closed grid."""
    el = tuple(m - 1 for m in v.shape[3:])
    strain = eps0 * torch.eye(len(el), dtype=v.dtype, device=v.device)[None]
    return affine_field(el, strain)[None] + v


def voigt_strains(dim: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Unit macroscopic strains (R, d, d) in array axis order, Voigt order (xx, yy, [zz, yz, xz,] xy),
    engineering shear (the shear case has eps_pq = eps_qp = 1/2)."""
    pairs = [(0, 0), (1, 1), (0, 1)] if dim == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    eps = torch.zeros(len(pairs), dim, dim, dtype=dtype, device=device)
    for r, (p, q) in enumerate(pairs):  # physical axis p (x=0, y=1, z=2) is array axis dim-1-p
        a, c = dim - 1 - p, dim - 1 - q
        eps[r, a, c] += 0.5
        eps[r, c, a] += 0.5
    return eps


def periodic_solve(system: LinearSystem, x0: torch.Tensor | None = None):
    """Periodic fluctuations (B, R, d, *el) for the Voigt unit strains, macro element vectors (R, n_loc)."""
    op = system.op
    strains = voigt_strains(len(op.el_shape), op.coef.dtype, op.coef.device)
    um = element_affine(op.el_shape, strains)
    rhs = -system.mask * scatter(op.element_forces(um[None, :, :, None]), op.el_shape, True)
    w, info = system.solve(rhs, x0)
    return w, um, info


def solve_displacement(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    bc: str = "affine",
    plane: str = "stress",
    solver: str = "auto",
    rtol: float | None = None,
    maxiter: int | None = None,
    x0: torch.Tensor | None = None,
    eps0: float = 1.0,
    raise_on_failure: bool = True,
) -> FEMSolution:
    """Displacement field for E (GPa), nu (B, H, W) / (B, D, H, W) under affine hydrostatic or periodic BCs.

    bc="affine": u = eps0 X on every boundary node; bc="periodic": fluctuations for the unit Voigt strains.
    x0: warm start, a previous ``FEMSolution.u`` of the same shape. Not differentiable (use bulk_modulus /
    homogenized_stiffness for gradients). Raises ConvergenceError unless raise_on_failure=False, in which
    case check ``FEMSolution.converged``.
    """
    dim = check_inputs(E, nu, plane)
    if bc not in BCS:
        raise ValueError(f"bc must be one of {BCS}, got {bc!r}")
    with torch.no_grad():
        lam, mu = lame(E, nu, dim, plane)
        system, _ = build_system(lam, mu, bc == "periodic", solver, rtol, maxiter, warm=x0 is not None)
        if bc == "affine":
            if x0 is not None:
                x0 = x0 - affine_total(torch.zeros_like(x0), eps0)
            v, _, info = affine_solve(system, eps0, x0)
            u = affine_total(v, eps0)
        else:
            u, _, info = periodic_solve(system, x0)
    if raise_on_failure:
        check_converged(info, f"{bc} displacement solve")
    return FEMSolution(u, info.converged, info.residual, info.iterations, info.solver)

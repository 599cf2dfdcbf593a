"""Boundary-value problems on a box of voxels: affine Dirichlet (hydrostatic) and periodic homogenization,
their right-hand sides, batch chunks, warm-start state, and the public displacement solve."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .elements import element_sizes, voigt_pairs
from .grid import affine_field, element_affine, scatter
from .laws.linear_elastic import LinearElastic, check_inputs, lame
from .options import SolveOptions
from .solvers import ConvergenceError, LinearSystem, Multigrid, SolveInfo
from .tuning import CPU_CHUNK_ELEMENTS, REBUILD_GROWTH

BCS = ("affine", "periodic")


@dataclass
class WarmStart:
    """Solver state a caller keeps between calls to warm-start PCG (e.g. successive diffusion steps).

    Pass the same object as ``warm_start=`` on every call; each call reads the previous solution of the
    same kind (key "affine", "adjoint" or "periodic") when its shape matches, and stores the new one.
    ``fields[key]`` is a detached nodal field (B, R, d, *nodes); ``iterations[key]`` the last PCG count.
    Multigrid solves also keep their hierarchy (``hierarchies[key]``): later calls on the same grid and batch
    size rebuild only the fine level and reuse the coarse levels (a lagged preconditioner: same solution,
    cheaper setup) until a solve needs more than ``tuning.REBUILD_GROWTH`` times the fewest iterations it has
    had. When a call solves its batch in chunks (CPU default, see ``SolveOptions.batch_size``) the keys carry
    the chunk start, e.g. "affine@4". Keep one WarmStart per objective and batch layout.
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
        failed: bool = False,
    ) -> None:
        """Store a solved field and its iteration count, and the multigrid hierarchy of `system` if any:
        a new one when its solve was warm-started (a cold count says nothing about later warm ones); a reused
        one is dropped once its solve needed more than ``tuning.REBUILD_GROWTH`` x the fewest iterations it
        has had. ``failed``: some sample missed its tolerance (its rows of x are zero): the key's hierarchy is
        dropped."""
        self.fields[key] = x.detach()
        self.iterations[key] = info.iterations
        if failed:  # a hierarchy that saw a failure (or a stale one kept from before) is not trusted again
            self.hierarchies.pop(key, None)
            self.best_iterations.pop(key, None)
            return
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


@dataclass(frozen=True)
class WarmSlot:
    """One batch chunk's view of a caller's WarmStart (None: no warm start): its keys carry the chunk's
    suffix (e.g. "affine@4"), see ``WarmStart``."""

    state: WarmStart | None = None
    suffix: str = ""

    @property
    def active(self) -> bool:
        """Whether the caller keeps a WarmStart (steers solver="auto" to an iterative solver)."""
        return self.state is not None

    def initial(self, key: str, like: torch.Tensor) -> torch.Tensor | None:
        """Warm-start field for key shaped like `like`, if the caller keeps one."""
        if self.state is None:
            return None
        return self.state.get(key + self.suffix, like.shape, like.dtype, like.device)

    def hierarchy(self, key: str) -> Multigrid | None:
        """Multigrid hierarchy kept from an earlier call for key, if the caller keeps one."""
        return None if self.state is None else self.state.hierarchy(key + self.suffix)

    def record(
        self,
        key: str,
        x: torch.Tensor,
        info: SolveInfo,
        system: LinearSystem | None = None,
        warm_started: bool = False,
        failed: bool = False,
    ) -> None:
        """Store a solution (and the system's multigrid hierarchy) in the caller's WarmStart."""
        if self.state is not None:
            self.state.put(key + self.suffix, x, info, system, warm_started, failed)


def batch_chunks(E: torch.Tensor, batch_size: int | None) -> list[slice]:
    """Batch slices solved together: `batch_size` samples each if given; else all on CUDA, and on CPU as few
    chunks of at most ``tuning.CPU_CHUNK_ELEMENTS`` elements as possible, of near-equal size (40 2D 64^2
    samples: 14, 14 and 12, not 16, 16 and 8, whose per-op cost few samples share)."""
    b = E.shape[0]
    if batch_size is None:
        per = E[0].numel()
        cap = b if E.device.type != "cpu" else max(1, CPU_CHUNK_ELEMENTS // per)
        batch_size = -(-b // -(-b // cap))
    return [slice(s, min(s + batch_size, b)) for s in range(0, b, batch_size)]


@dataclass
class FEMSolution:
    """Displacement solve result.

    u: (B, R, d, *nodes) displacement in unit lengths, components in array axis order ((y, x) /
    (z, y, x)); affine BC: R = 1, total displacement on the (n+1)^d closed grid; periodic BC: R = 3 (2D) /
    6 (3D) Voigt load cases, periodic fluctuation on the n^d grid (node n = node 0), node 0 pinned.
    converged: (B, R) bool; residual: (B, R) relative residual; iterations: PCG iterations (0 for direct; the
    most over batch chunks); solver: the solver used (comma-separated where chunks chose differently).
    """

    u: torch.Tensor
    converged: torch.Tensor
    residual: torch.Tensor
    iterations: int
    solver: str


@dataclass(frozen=True)
class SolveStatus:
    """Per-sample outcome of ``bulk_modulus`` / ``homogenized_stiffness`` (``return_status=True``).

    converged: (B,) bool, every solve of the sample reached its tolerance (after the retry, if one ran);
    residual: (B,) float64, the worst relative residual of the sample's last solves; retried: (B,) bool,
    solved again cold in float64 (``SolveOptions(on_failure="retry")``).
    """

    converged: torch.Tensor
    residual: torch.Tensor
    retried: torch.Tensor

    def reasons(self) -> list[str]:
        """Why each sample has no value: "" where it converged, else the relative residual it reached."""
        rows = zip(self.converged.tolist(), self.residual.tolist(), self.retried.tolist(), strict=True)
        return ["" if ok else unconverged_reason(res, again) for ok, res, again in rows]


def unconverged_reason(residual: float, retried: bool) -> str:
    """One line on a sample whose FEM solve missed its tolerance."""
    retry = ", float64 retry too" if retried else ""
    return f"FEM solve did not converge (relative residual {residual:.1e}{retry})"


def check_converged(info: SolveInfo, what: str) -> None:
    """Raise ConvergenceError if any (sample, rhs) of a solve missed its tolerance."""
    if not bool(info.converged.all()):
        bad = (~info.converged).nonzero()[:, 0].unique().tolist()
        raise ConvergenceError(
            f"{what}: {info.solver}-PCG did not converge in {info.iterations} iterations for samples {bad} "
            f"(worst relative residual {float(info.residual.max()):.3e}); raise maxiter or loosen rtol"
        )


def failed_samples(info: SolveInfo, options: SolveOptions, what: str) -> torch.Tensor | None:
    """(B,) bool of the samples whose solves missed the tolerance, None when all converged; with
    ``options.on_failure`` "raise" a miss raises ConvergenceError instead."""
    if bool(info.converged.all()):
        return None
    if options.on_failure == "raise":
        check_converged(info, what)
    return ~info.converged.all(1)


def sample_status(info: SolveInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """(converged (B,) bool, worst relative residual (B,) float64) over each sample's right-hand sides."""
    return info.converged.all(1), info.residual.max(1).values


def affine_solve(
    system: LinearSystem,
    h: tuple[float, ...],
    x0: torch.Tensor | None = None,
    extra: torch.Tensor | None = None,
):
    """Fluctuation v (B, 1, d, *nodes) (zero on the boundary) and the element vector um (1, n_loc) of u = X
    relative to each element's first corner, for voxels of sides h: the total field is u = X + v.

    extra: further masked right-hand sides (B, E, d, *nodes) solved in the same PCG call (an adjoint);
    their solutions follow v along dim 1. Element vectors are formed as um + v_e (never from the total
    field), so float32 keeps its accuracy: k_e annihilates translations, and subtracting them first avoids
    cancellation of O(1/h).
    """
    op = system.op
    strain = torch.eye(len(h), dtype=op.dtype, device=op.device)[None]
    um = element_affine(strain, h)
    rhs = -system.mask * scatter(op.element_forces(um[None, :, :, None]), op.el_shape, False)
    if extra is not None:
        rhs = torch.cat([rhs, extra.to(rhs.dtype)], dim=1)
    v, info = system.solve(rhs, x0)
    return v, um, info


def affine_total(v: torch.Tensor, h: tuple[float, ...]) -> torch.Tensor:
    """Total displacement X + v for a fluctuation v (B, R, d, *nodes) on the closed grid of voxels of sides
    h."""
    el = tuple(m - 1 for m in v.shape[3:])
    strain = torch.eye(len(el), dtype=v.dtype, device=v.device)[None]
    return affine_field(el, strain, h)[None] + v


def voigt_strains(dim: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Unit macroscopic strains (R, d, d) in array axis order, Voigt order (xx, yy, [zz, yz, xz,] xy),
    engineering shear (the shear case has eps_pq = eps_qp = 1/2)."""
    pairs = voigt_pairs(dim)
    eps = torch.zeros(len(pairs), dim, dim, dtype=dtype, device=device)
    for r, (a, c) in enumerate(pairs):
        eps[r, a, c] += 0.5
        eps[r, c, a] += 0.5
    return eps


def periodic_solve(system: LinearSystem, h: tuple[float, ...], x0: torch.Tensor | None = None):
    """Periodic fluctuations (B, R, d, *el) for the Voigt unit strains on voxels of sides h, and the macro
    element vectors (R, n_loc)."""
    op = system.op
    um = element_affine(voigt_strains(len(h), op.dtype, op.device), h)
    rhs = -system.mask * scatter(op.element_forces(um[None, :, :, None]), op.el_shape, True)
    w, info = system.solve(rhs, x0)
    return w, um, info


def solve_displacement(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    bc: str = "affine",
    plane: str = "stress",
    voxel_size: float | tuple[float, ...] | None = None,
    x0: torch.Tensor | None = None,
    options: SolveOptions | None = None,
    raise_on_failure: bool = True,
) -> FEMSolution:
    """Displacement field for E (GPa), nu (B, H, W) / (B, D, H, W) under affine hydrostatic or periodic BCs.

    The domain is a box of H x W (x D) voxels of sides voxel_size (unit lengths; one float or one per array
    axis; default 1 / max(H, W[, D]): square / cubic voxels, longest side 1). bc="affine": u = X on every
    boundary node; bc="periodic": fluctuations for the unit Voigt strains. x0: warm start, a previous
    ``FEMSolution.u`` of the same shape. options: ``SolveOptions`` (batch chunks solved one after another).
    Not differentiable (use bulk_modulus / homogenized_stiffness for gradients). Raises ConvergenceError
    unless raise_on_failure=False, in which case check ``FEMSolution.converged``.
    """
    dim = check_inputs(E, nu, plane)
    if bc not in BCS:
        raise ValueError(f"bc must be one of {BCS}, got {bc!r}")
    options = SolveOptions() if options is None else options
    h = element_sizes(E.shape[1:], voxel_size)
    fields, infos = [], []
    with torch.no_grad():
        lam, mu = lame(E, nu, dim, plane)
        for sl in batch_chunks(E, options.batch_size):
            op = LinearElastic(lam[sl], mu[sl]).operator(bc == "periodic", h)
            system = LinearSystem(op, options, warm=x0 is not None)
            guess = None if x0 is None else x0[sl]
            if bc == "affine":
                if guess is not None:
                    guess = guess - affine_total(torch.zeros_like(guess), h)
                v, _, info = affine_solve(system, h, guess)
                fields.append(affine_total(v, h))
            else:
                w, _, info = periodic_solve(system, h, guess)
                fields.append(w)
            infos.append(info)
    info = SolveInfo(
        ",".join(dict.fromkeys(i.solver for i in infos)),
        max(i.iterations for i in infos),
        torch.cat([i.converged for i in infos]),
        torch.cat([i.residual for i in infos]),
    )
    if raise_on_failure:
        check_converged(info, f"{bc} displacement solve")
    return FEMSolution(torch.cat(fields), info.converged, info.residual, info.iterations, info.solver)

"""Effective properties of voxel microstructures: apparent bulk modulus (affine BC) and periodic C_hom."""

from __future__ import annotations

import torch

from .elements import check_inputs, lame
from .functions import AffineEnergy, PeriodicStiffness, SolveConfig
from .problems import WarmStart

# elements per CPU solve (16 2D 64^2 / 2 3D 32^3 samples). Larger solves amortize the per-op cost, smaller
# ones keep the fields in the caches the fused kernels run from. Cold bulk modulus, forward + gradient, per
# sample on the 2-core CPU (2026-12-02, 64 2D / 8 3D samples): 2D 8 / 16 / 32 / 64 samples per solve
# 11.7-12.2 / 9.2-10.2 / 10.2 / 11.4-11.5 ms; 3D 1 / 2 / 4 / 8 samples 127-128 / 115-122 / 129-133 /
# 134-136 ms.
CPU_CHUNK_ELEMENTS = 2**16


def batch_chunks(E: torch.Tensor, batch_size: int | None) -> list[slice]:
    """Batch slices solved together: all on CUDA; on CPU as few chunks of at most CPU_CHUNK_ELEMENTS
    elements as possible, of near-equal size (40 2D 64^2 samples: 14, 14 and 12, not 16, 16 and 8, whose
    per-op cost few samples share)."""
    b = E.shape[0]
    if batch_size is None:
        per = E[0].numel()
        cap = b if E.device.type != "cpu" else max(1, CPU_CHUNK_ELEMENTS // per)
        batch_size = -(-b // -(-b // cap))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [slice(s, min(s + batch_size, b)) for s in range(0, b, batch_size)]


def _solve_in_chunks(fn, E: torch.Tensor, batch_size, solver, rtol, maxiter, warm_start) -> torch.Tensor:
    """torch.cat of fn(batch slice, SolveConfig) over the batch chunks of E (warm-start keys carry the chunk
    start when the batch is chunked)."""
    chunks = batch_chunks(E, batch_size)
    tag = (lambda sl: "") if len(chunks) == 1 else (lambda sl: f"@{sl.start}")
    return torch.cat([fn(sl, SolveConfig(solver, rtol, maxiter, warm_start, tag(sl))) for sl in chunks])


def bulk_modulus(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    solver: str = "auto",
    rtol: float | None = None,
    maxiter: int | None = None,
    warm_start: WarmStart | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Apparent bulk modulus K (B,) in GPa under affine hydrostatic BC u = eps0 X on the boundary (SPEC 3).

    E (GPa), nu: (B, H, W) or (B, D, H, W), float32/float64, any device, axis order (y, x) / (z, y, x).
    K = tr(sigma_bar) / (3 tr(eps_bar)) with volume averages of the full 3D stress and strain; in 2D plane
    stress sigma_zz = 0 and the average eps_zz = -nu/(1-nu) (eps_xx + eps_yy) enters tr(eps_bar), so a
    homogeneous material gives E / (3 (1 - 2 nu)). Differentiable w.r.t. E and nu: 3D by the energy formula
    (no extra solve), 2D with one adjoint solve for the out-of-plane term (eps_zz in plane stress, sigma_zz in
    plane strain). solver: "auto" (on CPU direct for small cold 2D solves, ``solvers.choose_solver``;
    else mg if the grid coarsens, else direct on CPU / jacobi on CUDA), "mg" (multigrid PCG,
    bi/trilinear prolongation), "mg-operator" (multigrid PCG, operator-dependent prolongation), "jacobi"
    (Jacobi-PCG), "direct" (scipy SuperLU, factorization reused by the adjoint).
    rtol: relative residual tolerance (default 1e-6 float32, 1e-10 float64). warm_start: a WarmStart kept by
    the caller between calls. batch_size: samples per solve (default: all on CUDA, 65,536 elements
    per chunk on CPU, ``CPU_CHUNK_ELEMENTS``). Raises ConvergenceError if PCG misses rtol.
    """
    dim = check_inputs(E, nu, plane)
    return _solve_in_chunks(
        lambda sl, cfg: _bulk_modulus(E[sl], nu[sl], dim, plane, cfg),
        E,
        batch_size,
        solver,
        rtol,
        maxiter,
        warm_start,
    )


def _bulk_modulus(E: torch.Tensor, nu: torch.Tensor, dim: int, plane: str, cfg: SolveConfig) -> torch.Tensor:
    """Bulk modulus (B,) of one batch chunk from the affine-BC energy and the out-of-plane term."""
    lam, mu = lame(E, nu, dim, plane)
    if dim == 3:
        w2, _ = AffineEnergy.apply(lam, mu, torch.zeros_like(E), cfg)
        return w2 / 9.0
    if plane == "stress":  # L = volume average of eps_zz
        w2, ell = AffineEnergy.apply(lam, mu, -nu / (1.0 - nu), cfg)
        return w2 / (3.0 * (2.0 + ell))
    w2, ell = AffineEnergy.apply(lam, mu, lam, cfg)  # plane strain: L = volume average of sigma_zz
    return (w2 + ell) / 6.0


def homogenized_stiffness(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    solver: str = "auto",
    rtol: float | None = None,
    maxiter: int | None = None,
    warm_start: WarmStart | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Periodic homogenized stiffness C_hom in GPa, (B, 3, 3) in 2D or (B, 6, 6) in 3D (SPEC 3).

    Voigt order (xx, yy, xy) / (xx, yy, zz, yz, xz, xy) with engineering shear strain; 2D is plane stress
    (default) or plane strain in-plane stiffness. Unit macroscopic strain load cases on a periodic fluctuation
    field with node 0 pinned; gradient from mutual energies (no adjoint). Arguments as in ``bulk_modulus``.
    """
    dim = check_inputs(E, nu, plane)
    lam, mu = lame(E, nu, dim, plane)
    return _solve_in_chunks(
        lambda sl, cfg: PeriodicStiffness.apply(lam[sl], mu[sl], cfg),
        E,
        batch_size,
        solver,
        rtol,
        maxiter,
        warm_start,
    )

"""Effective properties of voxel microstructures: apparent bulk modulus (affine BC) and periodic C_hom."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .functions import AffineEnergy, PeriodicStiffness
from .laws.linear_elastic import check_inputs, lame
from .options import SolveOptions
from .problems import WarmSlot, WarmStart, batch_chunks

VoxelSize = float | tuple[float, ...] | None


def _solve_in_chunks(
    fn: Callable[[slice, SolveOptions, WarmSlot], torch.Tensor],
    E: torch.Tensor,
    options: SolveOptions | None,
    warm_start: WarmStart | None,
) -> torch.Tensor:
    """torch.cat of fn(batch slice, options, warm slot) over the batch chunks of E (warm-start keys carry the
    chunk start when the batch is chunked)."""
    options = SolveOptions() if options is None else options
    chunks = batch_chunks(E, options.batch_size)
    tag = (lambda sl: "") if len(chunks) == 1 else (lambda sl: f"@{sl.start}")
    return torch.cat([fn(sl, options, WarmSlot(warm_start, tag(sl))) for sl in chunks])


def bulk_modulus(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    voxel_size: VoxelSize = None,
    warm_start: WarmStart | None = None,
    options: SolveOptions | None = None,
) -> torch.Tensor:
    """Apparent bulk modulus K (B,) in GPa under affine hydrostatic BC u = X on the boundary (SPEC 3).

    E (GPa), nu: (B, H, W) or (B, D, H, W), float32/float64, any device, axis order (y, x) / (z, y, x). The
    domain is a box of H x W (x D) voxels of sides voxel_size (unit lengths; one float or one per array axis;
    default 1 / max(H, W[, D]): square / cubic voxels, longest side 1; K does not depend on the scale, only on
    the voxels' aspect ratios). K = tr(sigma_bar) / (3 tr(eps_bar)) with volume averages of the full 3D stress
    and strain; in 2D plane stress sigma_zz = 0 and the average eps_zz = -nu/(1-nu) (eps_xx + eps_yy) enters
    tr(eps_bar), so a homogeneous material gives E / (3 (1 - 2 nu)). Differentiable w.r.t. E and nu: 3D by
    the energy formula (no extra solve), 2D with one adjoint solve for the out-of-plane term (eps_zz in plane
    stress, sigma_zz in plane strain). warm_start: a WarmStart kept by the caller between calls. options:
    ``SolveOptions`` (solver, rtol, maxiter, batch_size). Raises ConvergenceError if PCG misses rtol.
    """
    dim = check_inputs(E, nu, plane)
    return _solve_in_chunks(
        lambda sl, opt, warm: _bulk_modulus(E[sl], nu[sl], dim, plane, voxel_size, opt, warm),
        E,
        options,
        warm_start,
    )


def _bulk_modulus(
    E: torch.Tensor,
    nu: torch.Tensor,
    dim: int,
    plane: str,
    voxel_size: VoxelSize,
    options: SolveOptions,
    warm: WarmSlot,
) -> torch.Tensor:
    """Bulk modulus (B,) of one batch chunk from the affine-BC energy and the out-of-plane term."""
    lam, mu = lame(E, nu, dim, plane)
    if dim == 3:
        w2, _ = AffineEnergy.apply(lam, mu, torch.zeros_like(E), options, warm, voxel_size)
        return w2 / 9.0
    if plane == "stress":  # L = volume average of eps_zz
        w2, ell = AffineEnergy.apply(lam, mu, -nu / (1.0 - nu), options, warm, voxel_size)
        return w2 / (3.0 * (2.0 + ell))
    w2, ell = AffineEnergy.apply(lam, mu, lam, options, warm, voxel_size)  # plane strain: L = mean sigma_zz
    return (w2 + ell) / 6.0


def homogenized_stiffness(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    voxel_size: VoxelSize = None,
    warm_start: WarmStart | None = None,
    options: SolveOptions | None = None,
) -> torch.Tensor:
    """Periodic homogenized stiffness C_hom in GPa, (B, 3, 3) in 2D or (B, 6, 6) in 3D (SPEC 3).

    Voigt order (xx, yy, xy) / (xx, yy, zz, yz, xz, xy) with engineering shear strain; 2D is plane stress
    (default) or plane strain in-plane stiffness. The volume average over the periodic box of voxels (domain
    and arguments as in ``bulk_modulus``) for unit macroscopic strain load cases on a periodic fluctuation
    field with node 0 pinned; gradient from mutual energies (no adjoint).
    """
    dim = check_inputs(E, nu, plane)
    lam, mu = lame(E, nu, dim, plane)
    return _solve_in_chunks(
        lambda sl, opt, warm: PeriodicStiffness.apply(lam[sl], mu[sl], opt, warm, voxel_size),
        E,
        options,
        warm_start,
    )

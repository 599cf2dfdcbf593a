"""Effective properties of voxel microstructures: apparent bulk modulus (affine BC) and periodic C_hom."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .functions import AffineEnergy, PeriodicStiffness
from .laws.linear_elastic import check_inputs, lame
from .options import SolveOptions
from .problems import SolveStatus, WarmSlot, WarmStart, batch_chunks

VoxelSize = float | tuple[float, ...] | None
# fn(E, nu, options, warm slot) of one batch chunk -> (values (B, ...), converged (B,), residual (B,))
ChunkSolve = Callable[[torch.Tensor, torch.Tensor, SolveOptions, WarmSlot], tuple[torch.Tensor, ...]]


def _solve_in_chunks(
    fn: ChunkSolve, E: torch.Tensor, nu: torch.Tensor, options: SolveOptions, warm_start: WarmStart | None
) -> tuple[torch.Tensor, ...]:
    """(values, converged, residual) of fn over the batch chunks of E, nu, concatenated (warm-start keys carry
    the chunk start when the batch is chunked)."""
    chunks = batch_chunks(E, options.batch_size)
    tag = (lambda sl: "") if len(chunks) == 1 else (lambda sl: f"@{sl.start}")
    parts = [fn(E[sl], nu[sl], options, WarmSlot(warm_start, tag(sl))) for sl in chunks]
    return tuple(torch.cat(outputs) for outputs in zip(*parts, strict=True))


def _solve(
    fn: ChunkSolve,
    E: torch.Tensor,
    nu: torch.Tensor,
    options: SolveOptions | None,
    warm_start: WarmStart | None,
    return_status: bool,
) -> torch.Tensor | tuple[torch.Tensor, SolveStatus]:
    """fn over the batch, failed samples solved again when options.on_failure is "retry"; with their status
    when asked."""
    options = SolveOptions() if options is None else options
    value, converged, residual = _solve_in_chunks(fn, E, nu, options, warm_start)
    retried = torch.zeros_like(converged)
    if options.on_failure == "retry" and not bool(converged.all()):
        idx = (~converged).nonzero()[:, 0]
        again = options.retry_options(E.ndim - 1)
        v, c, r = _solve_in_chunks(fn, E[idx].double(), nu[idx].double(), again, None)
        value = value.index_put((idx,), v.to(value.dtype))
        converged, residual = converged.index_put((idx,), c), residual.index_put((idx,), r)
        retried = retried.index_fill(0, idx, True)
    return (value, SolveStatus(converged, residual, retried)) if return_status else value


def bulk_modulus(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    voxel_size: VoxelSize = None,
    warm_start: WarmStart | None = None,
    options: SolveOptions | None = None,
    return_status: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SolveStatus]:
    """Apparent bulk modulus K (B,) in GPa under affine hydrostatic BC u = X on the boundary (SPEC 3).

    E (GPa), nu: (B, H, W) or (B, D, H, W), float32/float64, any device, axis order (y, x) / (z, y, x). The
    domain is a box of H x W (x D) voxels of sides voxel_size (unit lengths; one float or one per array axis;
    default 1 / max(H, W[, D]): square / cubic voxels, longest side 1; K does not depend on the scale, only on
    the voxels' aspect ratios). K = tr(sigma_bar) / (3 tr(eps_bar)) with volume averages of the full 3D stress
    and strain; in 2D plane stress sigma_zz = 0 and the average eps_zz = -nu/(1-nu) (eps_xx + eps_yy) enters
    tr(eps_bar), so a homogeneous material gives E / (3 (1 - 2 nu)). Differentiable w.r.t. E and nu: 3D by
    the energy formula (no extra solve), 2D with one adjoint solve for the out-of-plane term (eps_zz in plane
    stress, sigma_zz in plane strain). warm_start: a WarmStart kept by the caller between calls. options:
    ``SolveOptions`` (solver, rtol, maxiter, batch_size, on_failure). Raises ConvergenceError if PCG misses
    rtol, unless options.on_failure says otherwise (failed samples then get NaN). return_status: also return
    the per-sample ``SolveStatus``.
    """
    dim = check_inputs(E, nu, plane)

    def chunk(E: torch.Tensor, nu: torch.Tensor, options: SolveOptions, warm: WarmSlot):
        return _bulk_modulus(E, nu, dim, plane, voxel_size, options, warm)

    return _solve(chunk, E, nu, options, warm_start, return_status)


def _bulk_modulus(
    E: torch.Tensor,
    nu: torch.Tensor,
    dim: int,
    plane: str,
    voxel_size: VoxelSize,
    options: SolveOptions,
    warm: WarmSlot,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bulk modulus (B,), converged (B,), residual (B,)) of one batch chunk from the affine-BC energy and
    the out-of-plane term."""
    lam, mu = lame(E, nu, dim, plane)
    # element weights c of L: none in 3D, the mean eps_zz in plane stress, the mean sigma_zz in plane strain
    c = torch.zeros_like(E) if dim == 3 else -nu / (1.0 - nu) if plane == "stress" else lam
    w2, ell, converged, residual = AffineEnergy.apply(lam, mu, c, options, warm, voxel_size)
    if dim == 3:
        return w2 / 9.0, converged, residual
    k = w2 / (3.0 * (2.0 + ell)) if plane == "stress" else (w2 + ell) / 6.0
    return k, converged, residual


def homogenized_stiffness(
    E: torch.Tensor,
    nu: torch.Tensor,
    *,
    plane: str = "stress",
    voxel_size: VoxelSize = None,
    warm_start: WarmStart | None = None,
    options: SolveOptions | None = None,
    return_status: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SolveStatus]:
    """Periodic homogenized stiffness C_hom in GPa, (B, 3, 3) in 2D or (B, 6, 6) in 3D (SPEC 3).

    Voigt order (xx, yy, xy) / (xx, yy, zz, yz, xz, xy) with engineering shear strain; 2D is plane stress
    (default) or plane strain in-plane stiffness. The volume average over the periodic box of voxels (domain,
    arguments and failures as in ``bulk_modulus``) for unit macroscopic strain load cases on a periodic
    fluctuation field with node 0 pinned; gradient from mutual energies (no adjoint).
    """
    dim = check_inputs(E, nu, plane)

    def chunk(E: torch.Tensor, nu: torch.Tensor, options: SolveOptions, warm: WarmSlot):
        return PeriodicStiffness.apply(*lame(E, nu, dim, plane), options, warm, voxel_size)

    return _solve(chunk, E, nu, options, warm_start, return_status)

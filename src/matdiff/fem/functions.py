"""Custom autograd Functions with implicit (equilibrium) derivatives w.r.t. element Lame parameters.

Outputs are volume averages over the box of voxels (``elements.box_volume``); the derivative of an energy
w.r.t. the operator's coefficients comes from the operator (``IsotropicOperator.coefficient_gradient``).
"""

from __future__ import annotations

import torch

from .elements import box_volume, divergence_vector, element_sizes
from .grid import gather, scatter, sum64
from .laws.linear_elastic import LinearElastic
from .options import SolveOptions
from .problems import WarmSlot, affine_solve, failed_samples, periodic_solve, sample_status
from .solvers import LinearSystem


def zero_failed(x: torch.Tensor | None, failed: torch.Tensor | None) -> torch.Tensor | None:
    """x (B, ...) with the rows of failed samples (B,) bool set to 0: an unconverged solution (it may hold
    anything; zeros keep the warm start cold) or the incoming gradient of a failed sample's NaN value (it
    passes no gradient, so a caller may replace the value, e.g. by a retry's)."""
    if failed is None or x is None:
        return x
    return torch.where(failed.view(-1, *(1,) * (x.ndim - 1)), torch.zeros_like(x), x)


def nan_failed(value: torch.Tensor, failed: torch.Tensor | None) -> torch.Tensor:
    """value (B, ...) with NaN for the failed samples (B,) bool."""
    if failed is None:
        return value
    return value.masked_fill(failed.view(-1, *(1,) * (value.ndim - 1)), float("nan"))


def isotropic_system(
    lam: torch.Tensor,
    mu: torch.Tensor,
    periodic: bool,
    options: SolveOptions,
    warm: WarmSlot,
    voxel_size: float | tuple[float, ...] | None,
) -> tuple[LinearSystem, tuple[float, ...]]:
    """The linear system of isotropic Lame fields (B, *el) under affine (periodic False) or periodic BCs,
    reusing the caller's kept hierarchy, and the voxel sides h."""
    h = element_sizes(tuple(lam.shape[1:]), voxel_size)
    op = LinearElastic(lam, mu).operator(periodic, h)
    key = "periodic" if periodic else "affine"
    return LinearSystem(op, options, warm.active, warm.hierarchy(key)), h


class AffineEnergy(torch.autograd.Function):
    """(W2, L) under u = X on the boundary, interior in equilibrium, for Lame fields (B, *el) in GPa:

    W2 = u^T K u / V (twice the mean strain energy density, GPa; V the box volume), L = sum_e c_e int_e div u
    / V for element weights c (B, *el). options: ``SolveOptions``; warm: ``WarmSlot`` (a caller's WarmStart as
    seen by one batch chunk); voxel_size: as in ``solve_displacement``. Also returns, not differentiable, the
    per-sample status (converged (B,) bool, relative residual (B,)); a sample that failed (options.on_failure
    not "raise") has W2 = L = NaN and passes no gradient back (0).
    dW2/dtheta = u^T dK/dtheta u / V (no adjoint); L needs the adjoint K_ff z = g_f, whose right-hand side
    does not depend on u: when a gradient will be asked for and c is not zero, it is solved in the forward PCG
    call as a second right-hand side (one V-cycle hierarchy, one loop, the kernels' data read once for both).
    """

    @staticmethod
    def forward(
        ctx,
        lam: torch.Tensor,
        mu: torch.Tensor,
        c: torch.Tensor,
        options: SolveOptions | None = None,
        warm: WarmSlot | None = None,
        voxel_size: float | tuple[float, ...] | None = None,
    ):
        ctx.set_materialize_grads(False)
        lam, mu = lam.detach(), mu.detach()
        warm, options = warm or WarmSlot(), options or SolveOptions()
        system, h = isotropic_system(lam, mu, False, options, warm, voxel_size)
        op, el = system.op, tuple(lam.shape[1:])
        dvec = divergence_vector(h, lam.dtype, lam.device)
        b = lam.shape[0]
        like = torch.empty((b, 1, len(el), *system.mask.shape[3:]), dtype=lam.dtype, device=lam.device)
        x0 = warm.initial("affine", like)
        adjoint = None
        if any(ctx.needs_input_grad[:3]) and bool(c.any()):
            g = c.detach().reshape(b, 1, 1, -1) * dvec.view(1, 1, -1, 1)
            adjoint = system.mask * scatter(g, el, False)
            z0 = warm.initial("adjoint", like)
            if x0 is not None or z0 is not None:
                x0 = torch.cat([torch.zeros_like(like) if x is None else x for x in (x0, z0)], dim=1)
        vz, um, info = affine_solve(system, h, x0, adjoint)
        failed = failed_samples(info, options, "bulk modulus (affine BC) solve")
        vz = zero_failed(vz, failed)
        v, z = vz[:, :1], vz[:, 1:] if adjoint is not None else None
        warm.record("affine", v, info, system, x0 is not None, failed is not None)
        if z is not None:
            warm.record("adjoint", z, info, failed=failed is not None)
        volume = box_volume(el, h)
        ue = um[None, :, :, None] + gather(v, False)  # (B, 1, n_loc, n_el), translation-free element vectors
        w2 = sum64(ue * op.element_forces(ue), (1, 2, 3)) / volume
        div = torch.matmul(dvec, ue[:, 0])  # (B, n_el), int_e div u
        ell = sum64(c.reshape(b, -1) * div, (1,)) / volume
        ctx.save_for_backward(v, um, c, z)
        ctx.op, ctx.dvec, ctx.volume, ctx.failed = op, dvec, volume, failed
        converged, residual = sample_status(info)
        ctx.mark_non_differentiable(converged, residual)
        return nan_failed(w2, failed), nan_failed(ell, failed), converged, residual

    @staticmethod
    def backward(ctx, g_w2, g_ell, _converged, _residual):
        g_w2, g_ell = zero_failed(g_w2, ctx.failed), zero_failed(g_ell, ctx.failed)
        v, um, c, z = ctx.saved_tensors
        op, dvec = ctx.op, ctx.dvec
        b = v.shape[0]
        ue = um[None, :, :, None] + gather(v, False)
        w = torch.zeros_like(ue) if g_w2 is None else g_w2.view(b, 1, 1, 1) * ue
        grad_c = None
        if g_ell is not None:
            if z is not None:  # z = 0 where c = 0 (no adjoint was solved)
                w = w - g_ell.view(b, 1, 1, 1) * gather(z, False)
            grad_c = (g_ell.view(b, 1) * torch.matmul(dvec, ue[:, 0])).reshape(c.shape) / ctx.volume
        grad = op.coefficient_gradient(w, ue) / ctx.volume
        return grad[:, 0], grad[:, 1], grad_c, None, None, None


class PeriodicStiffness(torch.autograd.Function):
    """Homogenized stiffness C (B, R, R) in GPa, Voigt order, engineering shear, periodic BCs, for Lame fields
    (B, *el) in GPa on a box of voxels of sides voxel_size; arguments as in ``AffineEnergy``.

    C_rs = sum_e (u^r_e)^T k_e u^s_e / V (the volume average) with u^r = macro strain r + periodic
    fluctuation; gradient from the mutual energies dC_rs/dtheta_e = (u^r_e)^T dk_e/dtheta u^s_e / V (no
    adjoint). Returns the status beside C as ``AffineEnergy`` does (C = NaN for a failed sample).
    """

    @staticmethod
    def forward(
        ctx,
        lam: torch.Tensor,
        mu: torch.Tensor,
        options: SolveOptions | None = None,
        warm: WarmSlot | None = None,
        voxel_size: float | tuple[float, ...] | None = None,
    ):
        lam, mu = lam.detach(), mu.detach()
        warm, options = warm or WarmSlot(), options or SolveOptions()
        system, h = isotropic_system(lam, mu, True, options, warm, voxel_size)
        op, el = system.op, tuple(lam.shape[1:])
        d = len(el)
        shape = (lam.shape[0], d * (d + 1) // 2, d, *el)  # one field per Voigt unit strain
        x0 = warm.initial("periodic", torch.empty(shape, dtype=lam.dtype, device=lam.device))
        w, um, info = periodic_solve(system, h, x0)
        failed = failed_samples(info, options, "homogenized stiffness (periodic) solve")
        w = zero_failed(w, failed)
        warm.record("periodic", w, info, system, x0 is not None, failed is not None)
        volume = box_volume(el, h)
        u = gather(w, True) + um[None, :, :, None]
        c = torch.einsum("brkn,bskn->brs", u, op.element_forces(u)) / volume
        ctx.save_for_backward(w, um)
        ctx.op, ctx.volume, ctx.failed = op, volume, failed
        converged, residual = sample_status(info)
        ctx.mark_non_differentiable(converged, residual)
        return nan_failed(0.5 * (c + c.transpose(1, 2)), failed), converged, residual

    @staticmethod
    def backward(ctx, g, _converged, _residual):
        g = zero_failed(g, ctx.failed)
        w, um = ctx.saved_tensors
        u = gather(w, True) + um[None, :, :, None]
        gu = torch.einsum("brs,brkn->bskn", 0.5 * (g + g.transpose(1, 2)), u)
        grad = ctx.op.coefficient_gradient(gu, u) / ctx.volume
        return grad[:, 0], grad[:, 1], None, None, None

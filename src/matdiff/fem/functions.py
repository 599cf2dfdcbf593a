"""Custom autograd Functions with implicit (equilibrium) derivatives w.r.t. element Lame parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grid import gather, scatter
from .problems import WarmStart, affine_solve, build_system, check_converged, periodic_solve


@dataclass
class SolveConfig:
    """Solver options carried through an autograd Function (not differentiable)."""

    solver: str = "auto"
    rtol: float | None = None
    maxiter: int | None = None
    warm: WarmStart | None = None
    tag: str = ""  # batch-chunk suffix of the warm-start keys

    def initial(self, key: str, like: torch.Tensor) -> torch.Tensor | None:
        """Warm-start field for key shaped like `like`, if the caller keeps one."""
        if self.warm is None:
            return None
        return self.warm.get(key + self.tag, like.shape, like.dtype, like.device)

    def hierarchy(self, key: str):
        """Multigrid hierarchy kept from an earlier call for key, if the caller keeps one."""
        return None if self.warm is None else self.warm.hierarchy(key + self.tag)

    def record(self, key: str, x: torch.Tensor, info, system=None, warm_started: bool = False) -> None:
        """Store a solution (and the system's multigrid hierarchy) in the caller's warm-start state."""
        if self.warm is not None:
            self.warm.put(key + self.tag, x, info, system, warm_started)


def _sum64(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Sum with float64 accumulation, cast back to x's dtype."""
    return torch.sum(x, dim=dims, dtype=torch.float64).to(x.dtype)


class AffineEnergy(torch.autograd.Function):
    """(W2, L) under u = X on the boundary (eps0 = 1), interior in equilibrium, for Lame fields (B, *el):

    W2 = u^T K u (twice the strain energy, GPa x volume), L = sum_e c_e int_e div u for element
    weights c (B, *el).
    dW2/dtheta = u^T dK/dtheta u (no adjoint); L needs the adjoint K_ff z = g_f, whose right-hand side does
    not depend on u: when a gradient will be asked for and c is not zero, it is solved in the forward PCG
    call as a second right-hand side (one V-cycle hierarchy, one loop, the kernels' data read once for both).
    """

    @staticmethod
    def forward(ctx, lam: torch.Tensor, mu: torch.Tensor, c: torch.Tensor, cfg: SolveConfig):
        ctx.set_materialize_grads(False)
        lam, mu = lam.detach(), mu.detach()
        system, dvec = build_system(
            lam, mu, False, cfg.solver, cfg.rtol, cfg.maxiter, cfg.warm is not None, cfg.hierarchy("affine")
        )
        b, el = lam.shape[0], system.op.el_shape
        like = torch.empty((b, 1, len(el), *system.mask.shape[3:]), dtype=lam.dtype, device=lam.device)
        x0 = cfg.initial("affine", like)
        adjoint = None
        if any(ctx.needs_input_grad[:3]) and bool(c.any()):
            g = c.detach().reshape(b, 1, 1, -1) * dvec.view(1, 1, -1, 1)
            adjoint = system.mask * scatter(g, el, False)
            z0 = cfg.initial("adjoint", like)
            if x0 is not None or z0 is not None:
                x0 = torch.cat([torch.zeros_like(like) if x is None else x for x in (x0, z0)], dim=1)
        vz, um, info = affine_solve(system, 1.0, x0, adjoint)
        check_converged(info, "bulk modulus (affine BC) solve")
        v, z = vz[:, :1], vz[:, 1:] if adjoint is not None else None
        cfg.record("affine", v, info, system, x0 is not None)
        if z is not None:
            cfg.record("adjoint", z, info)
        ue = um[None, :, :, None] + gather(v, False)  # (B, 1, n_loc, n_el), translation-free element vectors
        w2 = _sum64(ue * system.op.element_forces(ue), (1, 2, 3))
        div = torch.matmul(dvec, ue[:, 0])  # (B, n_el), int_e div u
        ell = _sum64(c.reshape(b, -1) * div, (1,))
        ctx.save_for_backward(v, um, c, z)
        ctx.op, ctx.dvec = system.op, dvec
        return w2, ell

    @staticmethod
    def backward(ctx, g_w2, g_ell):
        v, um, c, z = ctx.saved_tensors
        op, dvec = ctx.op, ctx.dvec
        b, el = v.shape[0], op.el_shape
        ue = um[None, :, :, None] + gather(v, False)
        w = torch.zeros_like(ue) if g_w2 is None else g_w2.view(b, 1, 1, 1) * ue
        grad_c = None
        if g_ell is not None:
            if z is not None:  # z = 0 where c = 0 (no adjoint was solved)
                w = w - g_ell.view(b, 1, 1, 1) * gather(z, False)
            grad_c = (g_ell.view(b, 1) * torch.matmul(dvec, ue[:, 0])).reshape(c.shape)
        grad_lam = _sum64(w * torch.matmul(op.k_lam, ue), (1, 2)).reshape(b, *el)
        grad_mu = _sum64(w * torch.matmul(op.k_mu, ue), (1, 2)).reshape(b, *el)
        return grad_lam, grad_mu, grad_c, None


class PeriodicStiffness(torch.autograd.Function):
    """Homogenized stiffness C (B, R, R), Voigt order, engineering shear, periodic BCs, unit cell volume 1.

    C_rs = sum_e (u^r_e)^T k_e u^s_e with u^r = macro strain r + periodic fluctuation; gradient from the
    mutual energies dC_rs/dtheta_e = (u^r_e)^T dk_e/dtheta u^s_e (no adjoint).
    """

    @staticmethod
    def forward(ctx, lam: torch.Tensor, mu: torch.Tensor, cfg: SolveConfig):
        lam, mu = lam.detach(), mu.detach()
        system, _ = build_system(
            lam, mu, True, cfg.solver, cfg.rtol, cfg.maxiter, cfg.warm is not None, cfg.hierarchy("periodic")
        )
        d = lam.ndim - 1
        shape = (lam.shape[0], d * (d + 1) // 2, d, *lam.shape[1:])  # one field per Voigt unit strain
        x0 = cfg.initial("periodic", torch.empty(shape, dtype=lam.dtype, device=lam.device))
        w, um, info = periodic_solve(system, x0)
        check_converged(info, "homogenized stiffness (periodic) solve")
        cfg.record("periodic", w, info, system, x0 is not None)
        u = gather(w, True) + um[None, :, :, None]
        c = torch.einsum("brkn,bskn->brs", u, system.op.element_forces(u))
        ctx.save_for_backward(w, um)
        ctx.op = system.op
        return 0.5 * (c + c.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        w, um = ctx.saved_tensors
        op = ctx.op
        u = gather(w, True) + um[None, :, :, None]
        gu = torch.einsum("brs,brkn->bskn", 0.5 * (g + g.transpose(1, 2)), u)
        b = u.shape[0]
        grad_lam = _sum64(gu * torch.matmul(op.k_lam, u), (1, 2)).reshape(b, *op.el_shape)
        grad_mu = _sum64(gu * torch.matmul(op.k_mu, u), (1, 2)).reshape(b, *op.el_shape)
        return grad_lam, grad_mu, None

"""Small-strain perfect J2 plasticity with radial return, genopt's 2-D variant (seed B sec. 3.4, eq. 37;
SPEC 7).

Only the in-plane 2 x 2 tensors exist: eps = sym(grad u), the elastic law sigma = lam tr(eps) I + 2 mu eps
with plane-strain Lame constants (sigma_zz is not tracked), and the deviator is the 2-D one,
s = sigma - (1/2) tr(sigma) I (as genopt's fem/plasticity.py computes it; a 3-D J2 law would include
sigma_zz). One increment from the history (sigma_n, eps_n) of the last converged increment:

    sigma_tr = sigma_n + C : (eps - eps_n),   s = dev2(sigma_tr),   s_eq = sqrt(3/2 s : s)
    sigma    = sigma_tr - max(s_eq - sigma_0, 0) s / s_eq

and its consistent tangent, elastic C below the yield surface and on it (n = s / |s|, P_dev = I_sym -
(1/2) I x I):

    d sigma / d eps = (lam + mu) I x I + 2 mu (sigma_0 / s_eq) (P_dev - n x n).

The return is the closest point of the (convex) elastic domain to sigma_tr in the energy norm |t|_C^-1 (C is
2 (lam + mu) on the trace part and 2 mu on the 2-D deviator, along which the return runs), so sigma is the
gradient of the convex incremental potential (Moreau)

    phi(eps) = 1/2 |sigma_tr|^2_C^-1 - 1/2 |sigma_tr - sigma|^2_C^-1
             = tr(sigma_tr)^2 / (8 (lam + mu)) + (|s|^2 - |sigma_tr - sigma|^2) / (4 mu),

which ``step`` returns as the energy: the increment is the minimizer of its integral, and Newton's line search
backtracks on it (``newton``).
"""

from __future__ import annotations

import math

import torch

from .base import GaussResponse, MaterialLaw, State
from .linear_elastic import isotropic_tangent, lame


class J2Plastic(MaterialLaw):
    """Perfect J2 plasticity with per-element lam, mu (plane strain) and yield stress sigma_0 (B, H, W), all
    in the same stress unit (seed B: MPa).

    History per Gauss point: "stress" and "strain" (B, n_el, n_gauss, 2, 2) of the last converged increment.
    ``step`` returns the Cauchy stress, the consistent tangent (B, n_el, n_gauss, 2, 2, 2, 2), the new history
    and as energy the increment's potential phi (B, n_el, n_gauss) (not a stored energy: the law is path
    dependent).
    """

    dim = 2

    def __init__(self, lam: torch.Tensor, mu: torch.Tensor, sigma_0: torch.Tensor):
        self.lam, self.mu, self.sigma_0 = lam, mu, sigma_0

    @classmethod
    def from_young(cls, E: torch.Tensor, nu: torch.Tensor, sigma_0: torch.Tensor) -> J2Plastic:
        """The law of Young's modulus E, Poisson's ratio nu and yield stress sigma_0 per element (B, H, W)."""
        return cls(*lame(E, nu, 2, plane="strain"), sigma_0)

    def initial_state(self, grad_u: torch.Tensor) -> State:
        zero = torch.zeros_like(grad_u)
        return {"stress": zero, "strain": zero.clone()}

    def step(self, grad_u: torch.Tensor, state: State) -> GaussResponse:
        b = grad_u.shape[0]
        lam, mu, sigma_0 = (p.reshape(b, -1, 1) for p in (self.lam, self.mu, self.sigma_0))  # (B, n_el, 1)
        eye = torch.eye(2, dtype=grad_u.dtype, device=grad_u.device)
        eps = 0.5 * (grad_u + grad_u.transpose(-1, -2))
        d_eps = eps - state["strain"]
        tr = d_eps.diagonal(dim1=-2, dim2=-1).sum(-1)
        trial = state["stress"] + (lam * tr)[..., None, None] * eye + 2.0 * mu[..., None, None] * d_eps
        s = trial - 0.5 * trial.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] * eye
        s_norm = torch.sqrt((s * s).sum((-2, -1)))
        s_eq = math.sqrt(1.5) * s_norm
        plastic = s_eq > sigma_0
        s_eq_safe = torch.where(plastic, s_eq, torch.ones_like(s_eq))
        excess = torch.where(plastic, s_eq - sigma_0, torch.zeros_like(s_eq))
        stress = trial - (excess / s_eq_safe)[..., None, None] * s
        elastic = isotropic_tangent(lam.expand_as(s_eq), mu.expand_as(s_eq), 2)
        n = s / torch.where(plastic, s_norm, torch.ones_like(s_norm))[..., None, None]
        vol = torch.einsum("ij,kl->ijkl", eye, eye)
        dev = (
            0.5 * (torch.einsum("ik,jl->ijkl", eye, eye) + torch.einsum("il,jk->ijkl", eye, eye)) - 0.5 * vol
        )
        ratio = (sigma_0 / s_eq_safe)[..., None, None, None, None]
        return_map = (lam + mu)[..., None, None, None, None] * vol + 2.0 * mu[
            ..., None, None, None, None
        ] * ratio * (dev - torch.einsum("...ij,...kl->...ijkl", n, n))
        tangent = torch.where(plastic[..., None, None, None, None], return_map, elastic)
        returned = trial - stress
        potential = trial.diagonal(dim1=-2, dim2=-1).sum(-1) ** 2 / (8.0 * (lam + mu)) + (
            s_norm**2 - (returned * returned).sum((-2, -1))
        ) / (4.0 * mu)
        return GaussResponse(stress, tangent, {"stress": stress, "strain": eps}, potential)

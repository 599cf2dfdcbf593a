"""Compressible Neo-Hookean hyperelasticity in plane strain (seed B sec. 3.3, eq. 33; SPEC 7).

With the in-plane deformation gradient F = I + grad u (2 x 2) embedded in 3D with F33 = 1, J = det F and
I1 = tr(F^T F) + 1 (the 1 of F33):

    psi = mu/2 (J^(-2/3) I1 - 3) + kappa/2 (J - 1)^2,        mu = E / (2 (1 + nu)), kappa = E / (3 (1 - 2 nu))
    P   = mu J^(-2/3) F - (mu I1 / 3) J^(-5/3) cof F + kappa (J - 1) cof F,          cof F = J F^-T
    A   = dP/dF = mu J^(-2/3) 1 - (2/3) mu J^(-5/3) (F x cof + cof x F) + ((5/9) mu I1 J^(-8/3) + kappa)
          cof x cof + (kappa (J - 1) - (mu I1 / 3) J^(-5/3)) dcof/dF

(x the dyadic product over index pairs; dcof/dF is constant in 2D, e_ik e_jl with e the 2D rotation by 90
degrees). Everything is a function of invariants and cof, so it holds in any axis order, array order included.
"""

from __future__ import annotations

import torch

from .base import GaussResponse, MaterialLaw, State


def bulk_shear(E: torch.Tensor, nu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(kappa, mu) in GPa of Young's modulus E and Poisson's ratio nu (3D moduli, seed B eq. 33)."""
    return E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))


def cofactor(F: torch.Tensor) -> torch.Tensor:
    """cof F = J F^-T of 2 x 2 matrices F (..., 2, 2)."""
    a, b, c, d = F[..., 0, 0], F[..., 0, 1], F[..., 1, 0], F[..., 1, 1]
    return torch.stack([torch.stack([d, -c], -1), torch.stack([-b, a], -1)], -2)


def cofactor_derivative(dtype: torch.dtype, device) -> torch.Tensor:
    """d cof_ij / d F_kl = e_ik e_jl (2, 2, 2, 2), e = [[0, 1], [-1, 0]]."""
    e = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=dtype, device=device)
    return torch.einsum("ik,jl->ijkl", e, e)


class NeoHookean(MaterialLaw):
    """Plane-strain compressible Neo-Hookean law with per-element moduli kappa, mu (B, H, W) in GPa.

    ``step`` takes grad u (B, n_el, n_gauss, 2, 2) and returns the first Piola-Kirchhoff stress, its tangent
    dP/dF (B, n_el, n_gauss, 2, 2, 2, 2) and psi (B, n_el, n_gauss); no history. Where J <= 0 (an inverted
    element) the energy is +inf and stress and tangent are NaN: the Newton line search backs off from such
    steps.
    """

    dim = 2

    def __init__(self, kappa: torch.Tensor, mu: torch.Tensor):
        self.kappa, self.mu = kappa, mu

    @classmethod
    def from_young(cls, E: torch.Tensor, nu: torch.Tensor) -> NeoHookean:
        """The law of Young's modulus E (GPa) and Poisson's ratio nu per element (B, H, W)."""
        return cls(*bulk_shear(E, nu))

    def step(self, grad_u: torch.Tensor, state: State) -> GaussResponse:
        b = grad_u.shape[0]
        kappa, mu = (p.reshape(b, -1, 1) for p in (self.kappa, self.mu))  # (B, n_el, 1)
        eye = torch.eye(2, dtype=grad_u.dtype, device=grad_u.device)
        F = eye + grad_u
        J = F[..., 0, 0] * F[..., 1, 1] - F[..., 0, 1] * F[..., 1, 0]
        I1 = (F * F).sum((-2, -1)) + 1.0
        ok = J > 0
        Jp = torch.where(ok, J, torch.ones_like(J))  # safe powers; the energy marks the bad points
        j23, j53 = Jp.pow(-2.0 / 3.0), Jp.pow(-5.0 / 3.0)
        cof = cofactor(F)
        energy = 0.5 * mu * (j23 * I1 - 3.0) + 0.5 * kappa * (J - 1.0) ** 2
        energy = torch.where(ok, energy, torch.full_like(energy, torch.inf))
        stress = (mu * j23)[..., None, None] * F + (kappa * (J - 1.0) - mu * I1 * j53 / 3.0)[
            ..., None, None
        ] * cof

        f, c = F.flatten(-2), cof.flatten(-2)  # (..., 4): the tangent is built as 4 x 4 matrices

        def dyad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x[..., :, None] * y[..., None, :]

        def scalar(x: torch.Tensor) -> torch.Tensor:
            return x[..., None, None]

        identity = torch.eye(4, dtype=F.dtype, device=F.device)
        dcof = cofactor_derivative(F.dtype, F.device).reshape(4, 4)
        tangent = (
            scalar(mu * j23) * identity
            - scalar(2.0 / 3.0 * mu * j53) * (dyad(f, c) + dyad(c, f))
            + scalar(5.0 / 9.0 * mu * I1 * Jp.pow(-8.0 / 3.0) + kappa) * dyad(c, c)
            + scalar(kappa * (J - 1.0) - mu * I1 * j53 / 3.0) * dcof
        ).reshape(*F.shape, 2, 2)
        bad = ~ok[..., None, None]
        stress = stress.masked_fill(bad, torch.nan)
        tangent = tangent.masked_fill(bad[..., None, None], torch.nan)
        return GaussResponse(stress, tangent, state, energy)

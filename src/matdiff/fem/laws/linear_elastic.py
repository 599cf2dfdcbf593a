"""Isotropic linear elasticity: Lame parameters per element, the law at Gauss points, and its fast operator.

At a Gauss point, sigma = lam tr(eps) I + 2 mu eps with eps = sym(grad u), so an element matrix is
k_e = lam_e K_lam + mu_e K_mu with two reference matrices of the voxel (``reference_matrices``, the law's
tangent with (lam, mu) = (1, 0) and (0, 1) through ``elements.element_matrices``). ``IsotropicOperator``
keeps only the two coefficient fields: fused CPU kernels (``native``) for its products and a one-GEMM-per-
level linear Galerkin hierarchy straight from the coefficients.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .. import native
from ..elements import PLANES, element_matrices, element_sizes
from ..grid import children, scatter, sum64, take_samples
from ..operators import VoxelOperator
from ..transfer import linear_child_prolongations
from .base import GaussResponse, MaterialLaw, State


def lame(
    E: torch.Tensor, nu: torch.Tensor, dim: int, plane: str = "stress"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lame parameters (lam, mu) in GPa per element; 2D plane stress uses lam* = E nu / (1 - nu^2)."""
    mu = E / (2.0 * (1.0 + nu))
    if dim == 2 and plane == "stress":
        return E * nu / (1.0 - nu * nu), mu
    return E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu)), mu


def check_inputs(E: torch.Tensor, nu: torch.Tensor, plane: str = "stress") -> int:
    """Validate element properties (B, H, W) / (B, D, H, W); return the dimension or raise ValueError."""
    for name, t in (("E", E), ("nu", nu)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} must be float32 or float64, got {t.dtype}")
    if E.shape != nu.shape:
        raise ValueError(f"E and nu shapes differ: {tuple(E.shape)} vs {tuple(nu.shape)}")
    if E.dtype != nu.dtype or E.device != nu.device:
        raise ValueError(
            f"E and nu must share dtype and device, got {E.dtype}/{E.device} and {nu.dtype}/{nu.device}"
        )
    if E.ndim not in (3, 4):
        raise ValueError(f"E and nu must be (B, H, W) or (B, D, H, W), got ndim={E.ndim}")
    if E.shape[0] < 1 or min(E.shape[1:]) < 2:
        raise ValueError(f"need a batch >= 1 and at least 2 elements per axis, got shape {tuple(E.shape)}")
    if plane not in PLANES:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    with torch.no_grad():
        if not bool(torch.isfinite(E).all()):
            raise ValueError("E contains NaN or inf")
        if not bool(torch.isfinite(nu).all()):
            raise ValueError("nu contains NaN or inf")
        if not bool((E > 0).all()):
            raise ValueError(f"E must be > 0 GPa, min is {float(E.min())}")
        if not bool(((nu > -1) & (nu < 0.5)).all()):
            raise ValueError(f"nu must lie in (-1, 0.5), range is [{float(nu.min())}, {float(nu.max())}]")
    return E.ndim - 1


def isotropic_tangent(lam: torch.Tensor, mu: torch.Tensor, dim: int) -> torch.Tensor:
    """C_abcd = lam d_ab d_cd + mu (d_ac d_bd + d_ad d_bc), (*lam.shape, d, d, d, d) in GPa."""
    eye = torch.eye(dim, dtype=lam.dtype, device=lam.device)
    vol = torch.einsum("ab,cd->abcd", eye, eye)
    dev = torch.einsum("ac,bd->abcd", eye, eye) + torch.einsum("ad,bc->abcd", eye, eye)
    return lam[..., None, None, None, None] * vol + mu[..., None, None, None, None] * dev


@functools.lru_cache(maxsize=32)
def _reference_numpy(h: tuple[float, ...]) -> np.ndarray:
    """(K_lam, K_mu) stacked, (2, n_loc, n_loc) float64, for a voxel of sides h."""
    unit = torch.eye(2, dtype=torch.float64)
    tangents = isotropic_tangent(unit[:, 0], unit[:, 1], len(h))  # (2, d, d, d, d)
    return element_matrices(tangents[None, :, None], h)[0].numpy()


def reference_matrices(
    h: tuple[float, ...], dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """K_lam, K_mu (n_loc, n_loc) of a voxel of sides h (unit lengths): k_e = lam_e K_lam + mu_e K_mu."""
    k = torch.as_tensor(_reference_numpy(tuple(h)), dtype=dtype, device=device)
    return k[0], k[1]


class LinearElastic(MaterialLaw):
    """Isotropic linear elasticity with Lame parameters lam, mu (B, *el) in GPa per element (``lame``)."""

    def __init__(self, lam: torch.Tensor, mu: torch.Tensor):
        self.lam, self.mu, self.dim = lam, mu, lam.ndim - 1

    def step(self, grad_u: torch.Tensor, state: State) -> GaussResponse:
        """sigma = lam tr(eps) I + 2 mu eps with eps = sym(grad u) at every Gauss point; no history."""
        b = grad_u.shape[0]
        lam, mu = (p.reshape(b, -1, 1) for p in (self.lam, self.mu))  # (B, n_el, 1)
        eps = 0.5 * (grad_u + grad_u.transpose(-1, -2))
        tr = eps.diagonal(dim1=-2, dim2=-1).sum(-1)  # (B, n_el, n_gauss)
        eye = torch.eye(self.dim, dtype=grad_u.dtype, device=grad_u.device)
        stress = (lam * tr)[..., None, None] * eye + 2.0 * mu[..., None, None] * eps
        energy = 0.5 * (stress * eps).sum((-2, -1))
        return GaussResponse(stress, isotropic_tangent(lam, mu, self.dim), state, energy)

    def operator(self, periodic: bool, h: tuple[float, ...] | None = None) -> IsotropicOperator:
        """The stiffness operator on the voxel grid of sides h (default ``elements.element_sizes``)."""
        return IsotropicOperator(self.lam, self.mu, periodic, h)


@functools.lru_cache(maxsize=32)
def _linear_references(h: tuple[float, ...], levels: int, dtype: torch.dtype, device) -> torch.Tensor:
    """R (2^(d levels) * 2, n_loc^2) in rows (path, k): R[path, k] = Q^T K_k Q with K_k = (K_lam, K_mu) of
    voxels of sides h and Q = P_c1 ... P_cl the linear prolongation from a coarse element `levels`
    coarsenings up to its fine element at path (c_l, ..., c_1) (the order of repeated ``grid.children``);
    computed in float64, kept per dtype and device."""
    p = linear_child_prolongations(len(h))  # (2^d, n_loc, n_loc)
    refs = _reference_numpy(h)[:, None]  # (2, paths, n_loc, n_loc)
    for _ in range(levels):
        refs = np.einsum("cia,kRij,cjb->kcRab", p, refs, p).reshape(2, -1, *refs.shape[2:])
    rows = refs.transpose(1, 0, 2, 3).reshape(-1, refs.shape[-1] ** 2)
    return torch.as_tensor(np.ascontiguousarray(rows), dtype=dtype, device=device)


class IsotropicOperator(VoxelOperator):
    """K u for per-element isotropic material: k_e = lam_e K_lam + mu_e K_mu with the reference matrices of
    voxels of sides h (default ``elements.element_sizes``; the fused 3D kernel evaluates the same quadrature);
    lam, mu (B, *el) in GPa."""

    def __init__(
        self, lam: torch.Tensor, mu: torch.Tensor, periodic: bool, h: tuple[float, ...] | None = None
    ):
        self.el_shape = tuple(lam.shape[1:])
        self.periodic = periodic
        self.h = element_sizes(self.el_shape, h)
        self.coef = torch.stack([lam, mu], 1).reshape(lam.shape[0], 2, 1, 1, -1)  # (B, 2, 1, 1, n_el)
        k_lam, k_mu = reference_matrices(self.h, lam.dtype, lam.device)
        self.k_stack = torch.stack([k_lam, k_mu])  # (2, n_loc, n_loc)
        self.k_lam, self.k_mu = k_lam, k_mu
        self.sizes = torch.tensor(self.h, dtype=lam.dtype)  # for the fused 3D kernel
        self.dtype, self.device = lam.dtype, lam.device

    @property
    def batch(self) -> int:
        return self.coef.shape[0]

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        """k_e u_e = lam_e K_lam u_e + mu_e K_mu u_e for element vectors (B or 1, R, n_loc, n_el or 1) ->
        (B, R, n_loc, n_el): two n_loc x n_loc GEMMs (one GEMM with the stacked 2 n_loc x n_loc matrix and
        several right-hand sides ran ~2x slower in torch 2.13 on this CPU)."""
        f = torch.matmul(self.k_lam, ue) * self.coef[:, 0]
        return f.addcmul_(torch.matmul(self.k_mu, ue), self.coef[:, 1])

    def coefficient_gradient(self, w: torch.Tensor, ue: torch.Tensor) -> torch.Tensor:
        """d/d(lam_e, mu_e) of sum_r w_r^T k_e u_r for element vectors w, ue (B, R, n_loc, n_el): (B, 2, *el),
        float64-accumulated."""
        grads = [sum64(w * torch.matmul(k, ue), (1, 2)) for k in (self.k_lam, self.k_mu)]
        return torch.stack(grads, 1).reshape(ue.shape[0], 2, *self.el_shape)

    def _native(self, u, mode, r, w):
        if not native.usable(u, self.coef):
            return None
        coef = self.coef.reshape(self.coef.shape[0], 2, -1)
        matrices = (coef, self.k_stack, self.sizes)
        return native.product("isotropic", u, self.el_shape, self.periodic, matrices, mode, r, w)

    def select(self, idx: torch.Tensor) -> IsotropicOperator:
        return take_samples(self, idx, "coef")

    def diagonal(self) -> torch.Tensor:
        dg = torch.stack([self.k_lam.diagonal(), self.k_mu.diagonal()])  # (2, n_loc)
        de = (self.coef[:, :, 0, 0, None, :] * dg[None, :, :, None]).sum(1)  # (B, n_loc, n_el)
        return scatter(de[:, None], self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        c = self.coef[:, :, 0, 0]  # (B, 2, n_el)
        return torch.einsum("bkn,kij->bnij", c, self.k_stack)

    def child_matrices(self) -> torch.Tensor:
        c = children(self.coef[:, :, 0, 0].transpose(1, 2), self.el_shape)  # (B, n_elc, 2^d, 2)
        return torch.einsum("bnck,kij->bncij", c, self.k_stack)

    def linear_galerkin_matrices(self, levels: int) -> list[torch.Tensor]:
        """The coarse levels straight from the fine Lame coefficients: a coarse element's matrix is the sum
        over its 2^(d l) fine elements e of lam_e R_lam + mu_e R_mu with the composite projections R of
        ``_linear_references`` (the same as l nested Galerkin products, which are linear in the fine
        matrices): one GEMM per level (3D: 38M multiply-adds per sample and level), no dense intermediate
        levels."""
        b, el = self.coef.shape[0], self.el_shape
        n_loc = self.k_lam.shape[-1]
        coef = self.coef[:, :, 0, 0].transpose(1, 2)  # (B, n_el, 2)
        out = []
        for level in range(1, levels + 1):
            coef = children(coef, el)  # (B, n_elc, 2^d, path below, 2)
            el = tuple(m // 2 for m in el)
            coef = coef.reshape(b, coef.shape[1], -1)  # (B, n_elc, (path c_l .. c_1, k))
            ke = coef.reshape(-1, coef.shape[-1]) @ _linear_references(self.h, level, self.dtype, self.device)
            out.append(ke.reshape(b, -1, n_loc, n_loc))
        return out

"""Reference element matrices of bilinear quads / trilinear hexes and Lame parameters per element.

Local degree-of-freedom order of an element: corner-major, component-minor, ``dof = corner * d + comp``.
Corners are the 2^d offsets in ``itertools.product((0, 1), repeat=d)`` over the spatial axes in array
order ((y, x) in 2D, (z, y, x) in 3D); displacement components are in the same axis order.
An isotropic element matrix is ``k_e = lam_e * K_lam + mu_e * K_mu`` with two constant reference matrices.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch

PLANES = ("stress", "strain")


def corner_offsets(dim: int) -> np.ndarray:
    """Element corner offsets, shape (2^dim, dim), lexicographic over the spatial axes."""
    return np.array(list(itertools.product((0, 1), repeat=dim)), dtype=np.int64)


@functools.lru_cache(maxsize=32)
def _reference_numpy(h: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K_lam, K_mu (n_loc, n_loc) and the divergence vector int_e div N (n_loc,) for element sizes h."""
    d = len(h)
    corners = corner_offsets(d)
    g = (1.0 + np.array([-1.0, 1.0]) / np.sqrt(3.0)) / 2.0
    pts = np.array(list(itertools.product(g, repeat=d)))  # (n_gauss, d) in [0, 1]^d
    weight = np.prod(h) / 2**d
    f = np.where(corners[None] == 1, pts[:, None], 1.0 - pts[:, None])  # (n_gauss, n_corner, d)
    sign = np.where(corners == 1, 1.0, -1.0)  # (n_corner, d)
    dn = np.stack(
        [np.prod(np.delete(f, a, axis=2), axis=2) * sign[:, a] / h[a] for a in range(d)], axis=2
    )  # dN_c / dX_a, (n_gauss, n_corner, d)
    grad = np.einsum("gcb,ai->gciab", dn, np.eye(d))  # d u_a / d X_b for dof (c, i)
    eps = 0.5 * (grad + grad.swapaxes(-1, -2))
    eps = eps.reshape(len(pts), corners.shape[0] * d, d, d)
    div = np.trace(eps, axis1=-2, axis2=-1)  # (n_gauss, n_loc)
    k_lam = weight * np.einsum("gi,gj->ij", div, div)
    k_mu = weight * 2.0 * np.einsum("giab,gjab->ij", eps, eps)
    return k_lam, k_mu, weight * div.sum(axis=0)


def reference_matrices(
    h: tuple[float, ...], dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K_lam, K_mu (n_loc, n_loc) and div vector (n_loc,) for an element of sizes h (unit-cell lengths)."""
    return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in _reference_numpy(tuple(h)))


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

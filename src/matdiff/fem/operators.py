"""Matrix-free stiffness operators on voxel grids: fine level from (lam, mu), coarse levels from element
matrices."""

from __future__ import annotations

import numpy as np
import torch

from .elements import corner_offsets
from .grid import children, gather, scatter


class IsotropicOperator:
    """K u for per-element isotropic material: k_e = lam_e K_lam + mu_e K_mu; lam, mu (B, *el) in GPa."""

    def __init__(
        self, lam: torch.Tensor, mu: torch.Tensor, k_lam: torch.Tensor, k_mu: torch.Tensor, periodic: bool
    ):
        self.el_shape = tuple(lam.shape[1:])
        self.periodic = periodic
        self.n_loc = k_lam.shape[0]
        self.coef = torch.stack([lam, mu], 1).reshape(lam.shape[0], 2, 1, 1, -1)  # (B, 2, 1, 1, n_el)
        self.k_stack = torch.stack([k_lam, k_mu])  # (2, n_loc, n_loc)
        self.k_lam, self.k_mu = k_lam, k_mu

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        """k_e u_e for element vectors (B or 1, R, n_loc, n_el) -> (B, R, n_loc, n_el)."""
        f = torch.matmul(self.k_stack.reshape(2 * self.n_loc, self.n_loc), ue)  # (B, R, 2 n_loc, n_el)
        f = f.reshape(f.shape[0], f.shape[1], 2, self.n_loc, f.shape[-1])
        return f[:, :, 0] * self.coef[:, 0] + f[:, :, 1] * self.coef[:, 1]

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """K u for a nodal field (B, R, d, *nodes)."""
        return scatter(self.element_forces(gather(u, self.periodic)), self.el_shape, self.periodic)

    def diagonal(self) -> torch.Tensor:
        """Assembled diagonal of K, (B, 1, d, *nodes)."""
        dg = torch.stack([self.k_lam.diagonal(), self.k_mu.diagonal()])  # (2, n_loc)
        de = (self.coef[:, :, 0, 0, None, :] * dg[None, :, :, None]).sum(1)  # (B, n_loc, n_el)
        return scatter(de[:, None], self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        """Dense element matrices (B, n_el, n_loc, n_loc)."""
        c = self.coef[:, :, 0, 0]  # (B, 2, n_el)
        return torch.einsum("bkn,kij->bnij", c, self.k_stack)

    def coarse_element_matrices(self, p_child: torch.Tensor) -> torch.Tensor:
        """Galerkin coarse element matrices sum_c P_c^T k_child P_c, (B, n_el_coarse, n_loc, n_loc)."""
        refs = torch.einsum("cia,kij,cjb->kcab", p_child, self.k_stack, p_child)  # (2, nc, n_loc, n_loc)
        c = children(self.coef[:, :, 0, 0].transpose(1, 2), self.el_shape)  # (B, n_elc, nc, 2)
        return torch.einsum("znck,kcij->znij", c, refs)


class ElementOperator:
    """K u from dense element matrices (Galerkin coarse levels), stored as (B, n_loc_j, n_loc_i, n_el)."""

    def __init__(self, ke: torch.Tensor, el_shape: tuple[int, ...], periodic: bool):
        self.kt = ke.permute(0, 3, 2, 1).contiguous()  # kt[b, j, i, n] = k_n[i, j]
        self.el_shape, self.periodic = tuple(el_shape), periodic

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        """k_e u_e for element vectors (B, R, n_loc, n_el): one multiply-add per local column."""
        fe = self.kt[:, None, 0] * ue[:, :, 0:1]
        for j in range(1, self.kt.shape[1]):
            fe.addcmul_(self.kt[:, None, j], ue[:, :, j : j + 1])
        return fe

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """K u for a nodal field (B, R, d, *nodes)."""
        return scatter(self.element_forces(gather(u, self.periodic)), self.el_shape, self.periodic)

    def diagonal(self) -> torch.Tensor:
        """Assembled diagonal of K, (B, 1, d, *nodes)."""
        diag = self.kt.diagonal(dim1=1, dim2=2).transpose(1, 2)[:, None]
        return scatter(diag, self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        """Dense element matrices (B, n_el, n_loc, n_loc)."""
        return self.kt.permute(0, 3, 2, 1)

    def coarse_element_matrices(self, p_child: torch.Tensor) -> torch.Tensor:
        """Galerkin coarse element matrices sum_c P_c^T k_child P_c, (B, n_el_coarse, n_loc, n_loc)."""
        kc = children(self.element_matrices(), self.el_shape)  # (B, n_elc, nc, n_loc, n_loc)
        return torch.einsum("cia,zncij,cjb->znab", p_child, kc, p_child)


def child_prolongations(dim: int, dtype: torch.dtype, device) -> torch.Tensor:
    """P_c (2^d, n_loc, n_loc): coarse-element dofs -> dofs of its child element c (multilinear weights)."""
    corners = corner_offsets(dim).astype(np.float64)
    pos = (corners[:, None, :] + corners[None, :, :]) / 2.0  # (child, fine corner, d) in [0, 1]
    w = np.prod(np.where(corners[None, None] == 1, pos[:, :, None], 1.0 - pos[:, :, None]), axis=-1)
    p = np.einsum("cfk,ij->cfikj", w, np.eye(dim)).reshape(len(corners), len(corners) * dim, -1)
    return torch.as_tensor(p, dtype=dtype, device=device)

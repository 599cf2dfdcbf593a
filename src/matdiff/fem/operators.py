"""Matrix-free stiffness operators on voxel grids: the interface the solvers use (``VoxelOperator``) and the
operator of dense per-element matrices (``ElementOperator``: Galerkin coarse levels, Gauss-point tangents of
any material law). Isotropic linear elasticity has its own fast operator, ``laws.linear_elastic``."""

from __future__ import annotations

import torch

from . import native
from .grid import children, gather, local_matvec, scatter, take_samples
from .transfer import linear_galerkin


class VoxelOperator:
    """What the solvers ask of a stiffness operator on a voxel grid, for nodal fields (B, R, d, *nodes):
    K u, masked, as a residual or as a damped Jacobi step (on CPU one fused kernel call, ``native``, does
    each; elsewhere the PyTorch product and separate elementwise ops), its diagonal, its element matrices and
    their linear Galerkin coarse levels (what multigrid builds its hierarchy from)."""

    el_shape: tuple[int, ...]
    periodic: bool
    dtype: torch.dtype
    device: torch.device

    @property
    def batch(self) -> int:
        """Number of samples B."""
        raise NotImplementedError

    def _native(self, u: torch.Tensor, mode: int, r: torch.Tensor | None, w: torch.Tensor | None):
        """The fused kernel's epilogue `mode` of K u (see ``native.product``), or None where the kernel does
        not serve."""
        raise NotImplementedError

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        """k_e u_e for element vectors (B or 1, R, n_loc, n_el or 1) -> (B, R, n_loc, n_el)."""
        raise NotImplementedError

    def element_matrices(self) -> torch.Tensor:
        """Dense element matrices (B, n_el, n_loc, n_loc)."""
        raise NotImplementedError

    def diagonal(self) -> torch.Tensor:
        """Assembled diagonal of K, (B, 1, d, *nodes)."""
        raise NotImplementedError

    def select(self, idx: torch.Tensor) -> VoxelOperator:
        """The operator of samples idx only."""
        raise NotImplementedError

    def child_matrices(self) -> torch.Tensor:
        """Element matrices grouped by coarse element, (B, n_elc, 2^d, n_loc, n_loc) (``grid.children``)."""
        return children(self.element_matrices(), self.el_shape)

    def linear_galerkin_matrices(self, levels: int) -> list[torch.Tensor]:
        """Galerkin coarse element matrices (B, n_elc, n_loc, n_loc) of 1..levels coarsenings under
        (bi/tri)linear prolongation."""
        return linear_galerkin(self.element_matrices(), self.el_shape, levels)

    def product(self, u: torch.Tensor) -> torch.Tensor:
        """K u in PyTorch: gather, element products, scatter."""
        return scatter(self.element_forces(gather(u, self.periodic)), self.el_shape, self.periodic)

    def apply(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """K u, times the free-dof mask if given: (1, 1, 1, *nodes) per node, or (1, 1, d, *nodes) per
        component (mixed boundary conditions; the fused kernel masks per node, so these are masked here)."""
        if mask is None or mask.shape[2] > 1:
            y = self._native(u, native.PRODUCT, None, None)
            y = self.product(u) if y is None else y
            return y if mask is None else mask * y
        y = self._native(u, native.MASKED, None, mask)
        return mask * self.product(u) if y is None else y

    def residual(self, r: torch.Tensor, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """r - K u, times the free-dof mask (per node or per component, ``apply``) if given."""
        if mask is not None and mask.shape[2] > 1:
            return mask * self.residual(r, u)
        y = self._native(u, native.RESIDUAL, r, mask)
        if y is not None:
            return y
        y = r - self.product(u)
        return y if mask is None else mask * y

    def jacobi(self, r: torch.Tensor, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """One damped Jacobi step u + weight (r - K u), weight (B, 1, d, *nodes)."""
        y = self._native(u, native.JACOBI, r, weight)
        return u.addcmul(weight, r - self.product(u)) if y is None else y


class ElementOperator(VoxelOperator):
    """K u from dense symmetric element matrices ke (B, n_el, n_loc, n_loc) in GPa x length^(d-2) (Galerkin
    coarse levels, or ``elements.element_matrices`` of a law's Gauss-point tangents), kept in two layouts:
    ke for grouping children (contiguous rows), and for the products either the packed upper triangles of
    the fused CPU kernel (``native.pack_upper``, half the memory traffic) or, where that kernel does not
    serve (CUDA), kt (B, n_loc_j, n_loc_i, n_el)."""

    def __init__(self, ke: torch.Tensor, el_shape: tuple[int, ...], periodic: bool):
        self.ke = ke.contiguous()
        self.el_shape, self.periodic = tuple(el_shape), periodic
        self.dtype, self.device = ke.dtype, ke.device
        self.packed = native.pack_upper(self.ke, self.el_shape) if native.usable(self.ke) else None
        self.kt = None if self.packed is not None else ke.permute(0, 3, 2, 1).contiguous()  # k_n[i, j]

    @property
    def batch(self) -> int:
        return self.ke.shape[0]

    def _native(self, u, mode, r, w):
        if self.packed is None or not native.usable(u):
            return None
        return native.product("packed", u, self.el_shape, self.periodic, (self.packed,), mode, r, w)

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        kt = self.kt if self.kt is not None else self.ke.permute(0, 3, 2, 1)  # kt[b, j, i, n] = k_n[i, j]
        return local_matvec(kt, ue)

    def select(self, idx: torch.Tensor) -> ElementOperator:
        return take_samples(self, idx, "ke", "packed" if self.packed is not None else "kt")

    def diagonal(self) -> torch.Tensor:
        diag = self.ke.diagonal(dim1=2, dim2=3).transpose(1, 2)[:, None]
        return scatter(diag, self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        return self.ke

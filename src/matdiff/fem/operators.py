"""Matrix-free stiffness operators on voxel grids: fine level from (lam, mu), coarse levels from element
matrices."""

from __future__ import annotations

import torch

from . import native
from .elements import reference_matrices
from .grid import children, gather, scatter, take_samples

# floats (2 MB, the L2 cache here) of the product temporary up to which local_matvec forms one product
BROADCAST_LIMIT = 2**19


def local_matvec(mt: torch.Tensor, ve: torch.Tensor) -> torch.Tensor:
    """Per-element matrix-vector products: mt[b, j, i, n] = m_n[i, j] (b and n may be 1), element vectors
    ve (B, R, n_j, n_el) -> (B, R, n_i, n_el).

    Small problems (the coarser 3D levels) form the whole product and sum it (two ops); larger ones do one
    multiply-add per column, which keeps the temporaries in cache. Measured on the 2-core CPU (torch 2.13),
    product vs columns: 3D 8^3 elements, one sample, 0.035 vs 0.13 ms; 2D 32^2, 64 samples, 0.96 vs 0.38
    ms; 3D 16^3, one sample, 0.28-0.34 vs 0.58 ms alone but no faster inside a solve, hence the 2 MB limit.
    """
    b, r = max(mt.shape[0], ve.shape[0]), ve.shape[1]
    if b * r * mt.shape[1] * mt.shape[2] * max(mt.shape[3], ve.shape[3]) <= BROADCAST_LIMIT:
        return (mt.transpose(1, 2)[:, None] * ve[:, :, None]).sum(3)
    out = mt[:, None, 0] * ve[:, :, 0:1]
    for j in range(1, mt.shape[1]):
        out.addcmul_(mt[:, None, j], ve[:, :, j : j + 1])
    return out


class VoxelOperator:
    """What the solvers ask of a stiffness operator on a voxel grid, for nodal fields (B, R, d, *nodes):
    K u, masked, as a residual or as a damped Jacobi step. On CPU one fused kernel call (``native``) does
    each; elsewhere the subclass's PyTorch product and separate elementwise ops."""

    el_shape: tuple[int, ...]
    periodic: bool

    def _native(self, u: torch.Tensor, mode: int, r: torch.Tensor | None, w: torch.Tensor | None):
        """The fused kernel's epilogue `mode` of K u (see ``native.product``), or None where the kernel does
        not serve."""
        raise NotImplementedError

    def product(self, u: torch.Tensor) -> torch.Tensor:
        """K u in PyTorch: gather, element products, scatter."""
        raise NotImplementedError

    def apply(self, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """K u, times the free-node mask (1, 1, 1, *nodes) if given."""
        if mask is None:
            y = self._native(u, native.PRODUCT, None, None)
            return self.product(u) if y is None else y
        y = self._native(u, native.MASKED, None, mask)
        return mask * self.product(u) if y is None else y

    def residual(self, r: torch.Tensor, u: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """r - K u, times the free-node mask if given."""
        y = self._native(u, native.RESIDUAL, r, mask)
        if y is not None:
            return y
        y = r - self.product(u)
        return y if mask is None else mask * y

    def jacobi(self, r: torch.Tensor, u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """One damped Jacobi step u + weight (r - K u), weight (B, 1, d, *nodes)."""
        y = self._native(u, native.JACOBI, r, weight)
        return u.addcmul(weight, r - self.product(u)) if y is None else y


class IsotropicOperator(VoxelOperator):
    """K u for per-element isotropic material on the unit cell: k_e = lam_e K_lam + mu_e K_mu with the
    reference matrices of elements of size 1 / n per axis (``elements.reference_matrices``, which the fused
    3D kernel evaluates by the same quadrature); lam, mu (B, *el) in GPa."""

    def __init__(self, lam: torch.Tensor, mu: torch.Tensor, periodic: bool):
        self.el_shape = tuple(lam.shape[1:])
        self.periodic = periodic
        self.coef = torch.stack([lam, mu], 1).reshape(lam.shape[0], 2, 1, 1, -1)  # (B, 2, 1, 1, n_el)
        k_lam, k_mu, _ = reference_matrices(tuple(1.0 / m for m in self.el_shape), lam.dtype, lam.device)
        self.k_stack = torch.stack([k_lam, k_mu])  # (2, n_loc, n_loc)
        self.k_lam, self.k_mu = k_lam, k_mu
        self.dtype, self.device = lam.dtype, lam.device

    def element_forces(self, ue: torch.Tensor) -> torch.Tensor:
        """k_e u_e = lam_e K_lam u_e + mu_e K_mu u_e for element vectors (B or 1, R, n_loc, n_el or 1) ->
        (B, R, n_loc, n_el): two n_loc x n_loc GEMMs (one GEMM with the stacked 2 n_loc x n_loc matrix and
        several right-hand sides ran ~2x slower in torch 2.13 on this CPU)."""
        f = torch.matmul(self.k_lam, ue) * self.coef[:, 0]
        return f.addcmul_(torch.matmul(self.k_mu, ue), self.coef[:, 1])

    def _native(self, u, mode, r, w):
        if not native.usable(u, self.coef):
            return None
        coef = self.coef.reshape(self.coef.shape[0], 2, -1)
        matrices = (coef, self.k_stack)
        return native.product("isotropic", u, self.el_shape, self.periodic, matrices, mode, r, w)

    def product(self, u: torch.Tensor) -> torch.Tensor:
        return scatter(self.element_forces(gather(u, self.periodic)), self.el_shape, self.periodic)

    def select(self, idx: torch.Tensor) -> IsotropicOperator:
        """The operator of samples idx only."""
        return take_samples(self, idx, "coef")

    def diagonal(self) -> torch.Tensor:
        """Assembled diagonal of K, (B, 1, d, *nodes)."""
        dg = torch.stack([self.k_lam.diagonal(), self.k_mu.diagonal()])  # (2, n_loc)
        de = (self.coef[:, :, 0, 0, None, :] * dg[None, :, :, None]).sum(1)  # (B, n_loc, n_el)
        return scatter(de[:, None], self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        """Dense element matrices (B, n_el, n_loc, n_loc)."""
        c = self.coef[:, :, 0, 0]  # (B, 2, n_el)
        return torch.einsum("bkn,kij->bnij", c, self.k_stack)

    def child_matrices(self) -> torch.Tensor:
        """Element matrices grouped by coarse element, (B, n_elc, 2^d, n_loc, n_loc) (``grid.children``)."""
        c = children(self.coef[:, :, 0, 0].transpose(1, 2), self.el_shape)  # (B, n_elc, 2^d, 2)
        return torch.einsum("bnck,kij->bncij", c, self.k_stack)


class ElementOperator(VoxelOperator):
    """K u from dense element matrices (Galerkin coarse levels), kept in two layouts: ke (B, n_el, n_loc,
    n_loc) for grouping children (contiguous rows), and for the products either the packed upper triangles
    of the fused CPU kernel (``native.pack_upper``, half the memory traffic) or, where that kernel does not
    serve (CUDA), kt (B, n_loc_j, n_loc_i, n_el)."""

    def __init__(self, ke: torch.Tensor, el_shape: tuple[int, ...], periodic: bool):
        self.ke = ke.contiguous()
        self.el_shape, self.periodic = tuple(el_shape), periodic
        self.dtype, self.device = ke.dtype, ke.device
        self.packed = native.pack_upper(self.ke, self.el_shape) if native.usable(self.ke) else None
        self.kt = None if self.packed is not None else ke.permute(0, 3, 2, 1).contiguous()  # k_n[i, j]

    def _native(self, u, mode, r, w):
        if self.packed is None or not native.usable(u):
            return None
        return native.product("packed", u, self.el_shape, self.periodic, (self.packed,), mode, r, w)

    def product(self, u: torch.Tensor) -> torch.Tensor:
        kt = self.kt if self.kt is not None else self.ke.permute(0, 3, 2, 1)  # kt[b, j, i, n] = k_n[i, j]
        return scatter(local_matvec(kt, gather(u, self.periodic)), self.el_shape, self.periodic)

    def select(self, idx: torch.Tensor) -> ElementOperator:
        """The operator of samples idx only."""
        return take_samples(self, idx, "ke", "packed" if self.packed is not None else "kt")

    def diagonal(self) -> torch.Tensor:
        """Assembled diagonal of K, (B, 1, d, *nodes)."""
        diag = self.ke.diagonal(dim1=2, dim2=3).transpose(1, 2)[:, None]
        return scatter(diag, self.el_shape, self.periodic)

    def element_matrices(self) -> torch.Tensor:
        """Dense element matrices (B, n_el, n_loc, n_loc)."""
        return self.ke

    def child_matrices(self) -> torch.Tensor:
        """Element matrices grouped by coarse element, (B, n_elc, 2^d, n_loc, n_loc) (``grid.children``)."""
        return children(self.element_matrices(), self.el_shape)

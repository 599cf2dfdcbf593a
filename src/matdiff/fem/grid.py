"""Structured-grid operations: element gather/scatter, per-element products, masks, affine fields,
coarse-element grouping.

A nodal field is a tensor (B, R, d, *nodes): batch, right-hand sides (load cases), displacement
components in array axis order, and nodes. Dirichlet grids have n+1 nodes per axis, periodic grids n
(node n is node 0). Element vectors are (B, R, n_loc, n_el) with the local order of ``elements``. Node
coordinates X are node index times the voxel sides h (``elements.element_sizes``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .elements import corner_offsets
from .tuning import BROADCAST_LIMIT


def node_shape(el_shape: tuple[int, ...], periodic: bool) -> tuple[int, ...]:
    """Nodes per axis of a grid with el_shape elements."""
    return tuple(el_shape) if periodic else tuple(m + 1 for m in el_shape)


def wrap_pad(u: torch.Tensor, n_spatial: int) -> torch.Tensor:
    """Append the first node slice at the end of every spatial axis (periodic -> closed grid)."""
    for ax in range(u.ndim - n_spatial, u.ndim):
        u = torch.cat([u, u.narrow(ax, 0, 1)], dim=ax)
    return u


def fold(u: torch.Tensor, n_spatial: int) -> torch.Tensor:
    """Add the last node slice of every spatial axis onto the first and drop it (closed -> periodic grid)."""
    for ax in range(u.ndim - n_spatial, u.ndim):
        m = u.shape[ax] - 1
        u = torch.cat([u.narrow(ax, 0, 1) + u.narrow(ax, m, 1), u.narrow(ax, 1, m - 1)], dim=ax)
    return u


def gather(u: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Element vectors (B, R, n_loc, n_el) from a nodal field (B, R, d, *nodes)."""
    d = u.ndim - 3
    if periodic:
        u = wrap_pad(u, d)
    el = [s - 1 for s in u.shape[3:]]
    parts = [
        u[(Ellipsis, *(slice(o, o + m) for o, m in zip(off, el, strict=True)))] for off in corner_offsets(d)
    ]
    return torch.stack(parts, dim=2).reshape(u.shape[0], u.shape[1], -1, int(np.prod(el)))


def scatter(fe: torch.Tensor, el_shape: tuple[int, ...], periodic: bool) -> torch.Tensor:
    """Nodal field (B, R, d, *nodes) summing element vectors (B, R, n_loc, n_el) onto their nodes."""
    d = len(el_shape)
    b, r = fe.shape[:2]
    fe = fe.reshape(b, r, 2**d, d, *el_shape)
    out = fe.new_zeros(b, r, d, *(m + 1 for m in el_shape))
    for k, off in enumerate(corner_offsets(d)):
        out[(Ellipsis, *(slice(o, o + m) for o, m in zip(off, el_shape, strict=True)))].add_(fe[:, :, k])
    return fold(out, d) if periodic else out


def free_mask(el_shape: tuple[int, ...], periodic: bool, dtype: torch.dtype, device) -> torch.Tensor:
    """1 on free nodes, 0 on fixed ones, (1, 1, 1, *nodes): boundary (Dirichlet) or node 0 (periodic)."""
    shape = node_shape(el_shape, periodic)
    mask = torch.ones(shape, dtype=dtype, device=device)
    if periodic:
        mask[(0,) * len(shape)] = 0
    else:
        for ax in range(len(shape)):
            mask[(slice(None),) * ax + (0,)] = 0
            mask[(slice(None),) * ax + (-1,)] = 0
    return mask[None, None, None]


def coarse_mask(mask: torch.Tensor) -> torch.Tensor:
    """The free-dof mask (1, 1, 1 or d, *nodes) of the grid coarsened 2x: the fine mask at the coarse nodes
    (every second node per axis). Fixed sets made of whole boundary edges / faces and corner nodes stay
    such sets, and (bi/tri)linear prolongation maps coarse fixed dofs only onto fine fixed ones or, with
    their zero corrections, onto nothing."""
    spatial = tuple(slice(None, None, 2) for _ in range(mask.ndim - 3))
    return mask[(Ellipsis, *spatial)].contiguous()


def affine_field(el_shape: tuple[int, ...], strain: torch.Tensor, h: tuple[float, ...]) -> torch.Tensor:
    """Nodal field u = strain @ X on the closed grid of voxels of sides h, shape (R, d, *nodes); strain
    (R, d, d) in axis order."""
    d = len(el_shape)
    axes = [
        torch.arange(m + 1, dtype=strain.dtype, device=strain.device) * s
        for m, s in zip(el_shape, h, strict=True)
    ]
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (d, *nodes)
    return torch.einsum("rij,j...->ri...", strain, x).reshape(strain.shape[0], d, *x.shape[1:])


def element_affine(strain: torch.Tensor, h: tuple[float, ...]) -> torch.Tensor:
    """Element vector of u = strain @ (X - X_corner0), shape (R, n_loc), for voxels of sides h: the same in
    every element."""
    sizes = torch.tensor(h, dtype=strain.dtype, device=strain.device)
    off = torch.as_tensor(corner_offsets(len(h)), dtype=strain.dtype, device=strain.device) * sizes  # (nc, d)
    return torch.einsum("rij,cj->rci", strain, off).reshape(strain.shape[0], -1)


def local_matvec(mt: torch.Tensor, ve: torch.Tensor) -> torch.Tensor:
    """Per-element matrix-vector products: mt[b, j, i, n] = m_n[i, j] (b and n may be 1), element vectors
    ve (B, R, n_j, n_el) -> (B, R, n_i, n_el).

    Small problems (the coarser 3D levels) form the whole product and sum it (two ops); larger ones do one
    multiply-add per column, which keeps the temporaries in cache (``tuning.BROADCAST_LIMIT``).
    """
    b, r = max(mt.shape[0], ve.shape[0]), ve.shape[1]
    if b * r * mt.shape[1] * mt.shape[2] * max(mt.shape[3], ve.shape[3]) <= BROADCAST_LIMIT:
        return (mt.transpose(1, 2)[:, None] * ve[:, :, None]).sum(3)
    out = mt[:, None, 0] * ve[:, :, 0:1]
    for j in range(1, mt.shape[1]):
        out.addcmul_(mt[:, None, j], ve[:, :, j : j + 1])
    return out


def sum64(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Sum over dims with float64 accumulation, cast back to x's dtype."""
    return torch.sum(x, dim=dims, dtype=torch.float64).to(x.dtype)


def element_dofs(el_shape: tuple[int, ...], periodic: bool) -> np.ndarray:
    """Global dof index (n_el, n_loc) with dof = comp * n_nodes + flat node index (matches (d, *nodes))."""
    d = len(el_shape)
    nodes = node_shape(el_shape, periodic)
    idx = np.stack(np.meshgrid(*[np.arange(m) for m in el_shape], indexing="ij"), -1).reshape(-1, 1, d)
    corner = idx + corner_offsets(d)[None]  # (n_el, nc, d)
    if periodic:
        corner = corner % np.array(nodes)
    flat = np.ravel_multi_index(tuple(np.moveaxis(corner, -1, 0)), nodes)  # (n_el, nc)
    n_nodes = int(np.prod(nodes))
    return (flat[:, :, None] + n_nodes * np.arange(d)[None, None]).reshape(len(flat), -1)


def children(x: torch.Tensor, el_shape: tuple[int, ...]) -> torch.Tensor:
    """Per-element data (B, n_el, *rest) grouped by coarse element: (B, n_el_coarse, 2^d, *rest)."""
    d = len(el_shape)
    b, rest = x.shape[0], x.shape[2:]
    split = [s for m in el_shape for s in (m // 2, 2)]
    x = x.reshape(b, *split, *rest)
    perm = [0] + [1 + 2 * a for a in range(d)] + [2 + 2 * a for a in range(d)]
    perm += list(range(1 + 2 * d, x.ndim))
    return x.permute(perm).reshape(b, -1, 2**d, *rest)


def take_samples(obj, idx: torch.Tensor, *names: str):
    """Shallow copy of obj whose per-sample tensor attributes `names` (batch first) keep only samples idx."""
    new = copy.copy(obj)
    for name in names:
        setattr(new, name, getattr(obj, name)[idx])
    return new

"""Multigrid grid transfer on voxel grids: (bi/tri)linear prolongation by strided slices
(``LinearTransfer``) or operator-dependent prolongation stored per coarse element (``ElementTransfer``),
and the Galerkin coarse element matrices of each (``linear_galerkin``, ``operator_level``).

A per-element prolongation is given for each coarse element E by the weights of the fine nodes 2E + q
of its closure (local positions q in {0, 1, 2}^d) on its 2^d corner nodes, W (B, n_elc, 3^d, 2^d, d, d).
A fine node's weights depend only on data of the coarse cells that share it, so neighbouring elements
agree and the Galerkin product P^T K P stays a sum of coarse element matrices sum_c P_c^T k_c P_c over
the 2^d children.

Operator-dependent weights (after Dendy's BoxMG, see ``operator_weights``): face and cell-centre fine
nodes take the value that zeroes their own (collapsed) row of K given their already interpolated
neighbours, so across stiff/soft interfaces the coarse space follows displacement kinks that
(bi/tri)linear interpolation cannot represent. Rigid translations are reproduced exactly.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch
import torch.nn.functional as F

from . import native
from .elements import corner_offsets
from .grid import children, gather, local_matvec, scatter, take_samples

PROLONGATIONS = ("geometric", "operator")


def _base3(v) -> int:
    """Index of a vector with entries in {0, 1, 2} in lexicographic order."""
    return int(sum(int(x) * 3 ** (len(v) - 1 - a) for a, x in enumerate(v)))


def _base2(v) -> int:
    """Index of a corner offset in {0, 1}^d in ``corner_offsets`` order."""
    return int(sum(int(x) * 2 ** (len(v) - 1 - a) for a, x in enumerate(v)))


def _neighbour_values(x: torch.Tensor, el_c: tuple[int, ...], shift, periodic: bool) -> torch.Tensor:
    """Per-coarse-element data x (B, n_elc, ...) read at element E + shift (shift in {-1, 0, 1}^d); outside
    a non-periodic grid the value is 0."""
    d = len(el_c)
    x = x.reshape(x.shape[0], *el_c, *x.shape[2:])
    for ax, sh in enumerate(shift):
        if sh == 0:
            continue
        if periodic:
            x = torch.roll(x, -sh, dims=1 + ax)
        else:
            kept = x.narrow(1 + ax, 1, el_c[ax] - 1) if sh > 0 else x.narrow(1 + ax, 0, el_c[ax] - 1)
            pad = torch.zeros_like(x.narrow(1 + ax, 0, 1))
            x = torch.cat([kept, pad] if sh > 0 else [pad, kept], dim=1 + ax)
    return x.reshape(x.shape[0], -1, *x.shape[1 + d :])


def stencil_at(kc: torch.Tensor, el_c: tuple[int, ...], q: tuple[int, ...], periodic: bool) -> torch.Tensor:
    """Assembled block stencil of the fine K at the fine nodes 2E + q (q in {0, 1, 2}^d) of all coarse
    elements E: S[b, E, s, i, j] = K[(2E + q, i), (2E + q + s, j)] with s over the 3^d offsets in
    {-1, 0, 1}^d, (B, n_elc, 3^d, d, d); kc: fine element matrices grouped by coarse element
    (B, n_elc, 2^d, n_loc, n_loc)."""
    d, (b, n_elc) = len(el_c), kc.shape[:2]
    corners = corner_offsets(d)
    blocks = kc.reshape(b, n_elc, 2**d, 2**d, d, 2**d, d)
    out = kc.new_zeros(b, n_elc, 3**d, d, d)
    for a, off_a in enumerate(corners):  # the fine element that has node 2E + q as its corner a
        g = np.asarray(q) - off_a  # its position 2 (E + shift) + child offset
        child = _base2(g % 2)
        row = blocks[:, :, child, a].permute(0, 1, 3, 2, 4)  # (B, n_elc, corner b, d, d)
        row = _neighbour_values(row, el_c, tuple(int(x) for x in g // 2), periodic)
        offsets = torch.tensor([_base3(off_b - off_a + 1) for off_b in corners], device=kc.device)
        out.index_add_(2, offsets, row)
    return out


def linear_weights(dim: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Scalar (bi/tri)linear interpolation weights (3^d, 2^d) of the local positions on the corners."""
    corners = corner_offsets(dim)
    pos = np.array(list(itertools.product(range(3), repeat=dim)), dtype=np.float64) / 2.0  # (3^d, d)
    w = np.prod(np.where(corners[None] == 1, pos[:, None], 1.0 - pos[:, None]), axis=-1)
    return torch.as_tensor(w, dtype=dtype, device=device)


def operator_weights(kc: torch.Tensor, el_c: tuple[int, ...], periodic: bool) -> torch.Tensor:
    """Operator-dependent weights W (B, n_elc, 3^d, 2^d, d, d) of the fine K with child element matrices
    kc (B, n_elc, 2^d, n_loc, n_loc).

    Coarse nodes are injected and edge nodes interpolate linearly; a node odd along two or more axes
    (face or cell centre) solves its own row, with the block stencil summed over its even axes, for its value
    given its neighbours in the odd axes. Collapsing onto edges as well (full BoxMG) lumps couplings into a
    near-singular 1D centre block on Galerkin coarse levels of elasticity and breaks the hierarchy.
    """
    d, (b, n_elc) = len(el_c), kc.shape[:2]
    linear = linear_weights(d, kc.dtype, kc.device)
    eye = torch.eye(d, dtype=kc.dtype, device=kc.device)
    solved: dict[tuple[int, ...], torch.Tensor] = {}  # position -> (B, n_elc, 2^d, d, d)
    for q in sorted(itertools.product(range(3), repeat=d), key=lambda v: v.count(1)):
        odd = [a for a in range(d) if q[a] == 1]
        if len(odd) < 2:
            continue
        s = stencil_at(kc, el_c, q, periodic).reshape(b, n_elc, *(3,) * d, d, d)
        even = [2 + a for a in range(d) if a not in odd]
        collapsed = s.sum(dim=even) if even else s  # (B, n_elc, 3 per odd axis, d, d)
        rhs = 0.0
        for t in itertools.product((-1, 0, 1), repeat=len(odd)):
            if any(t):
                nb = list(q)
                for a, ta in zip(odd, t, strict=True):
                    nb[a] += ta
                block = collapsed[(slice(None), slice(None), *(ta + 1 for ta in t))][:, :, None]
                if tuple(nb) in solved:
                    rhs = rhs + block @ solved[tuple(nb)]
                else:  # linear neighbour: scalar weights times the identity
                    rhs = rhs + block * linear[_base3(nb)].view(1, 1, -1, 1, 1)
        centre = collapsed[(slice(None), slice(None), *(1,) * len(odd))]
        solved[q] = -torch.linalg.solve(centre[:, :, None], rhs)
    positions = itertools.product(range(3), repeat=d)
    return torch.stack(
        [
            solved[q]
            if q in solved
            else (linear[_base3(q)].view(1, 1, -1, 1, 1) * eye).expand(b, n_elc, -1, -1, -1)
            for q in positions
        ],
        dim=2,
    )


def child_prolongations(weights: torch.Tensor) -> torch.Tensor:
    """P_c (B, n_elc, 2^d, n_loc, n_loc): coarse-element dofs -> dofs of child element c, from W."""
    b, n, _, nc, d, _ = weights.shape
    corners = corner_offsets(d)
    qidx = torch.tensor([[_base3(oc + ok) for ok in corners] for oc in corners], device=weights.device)
    p = weights[:, :, qidx]  # (B, n_elc, child, child corner, coarse corner, d, d)
    return p.permute(0, 1, 2, 3, 5, 4, 6).reshape(b, n, nc, nc * d, nc * d)


def galerkin_coarse(kc: torch.Tensor, p_child: torch.Tensor) -> torch.Tensor:
    """Galerkin coarse element matrices sum_c P_c^T k_c P_c, (B, n_elc, n_loc, n_loc), from the fine
    element matrices grouped by coarse element kc (B, n_elc, 2^d, n_loc, n_loc) and the child
    prolongations (B or 1, n_elc or 1, 2^d, n_loc, n_loc)."""
    b, n, nc, n_loc, _ = kc.shape
    kp = (kc @ p_child).reshape(b, n, nc * n_loc, n_loc)  # children stacked: one GEMM per coarse element
    return p_child.expand(b, n, -1, -1, -1).reshape(b, n, nc * n_loc, n_loc).transpose(-1, -2) @ kp


class ElementTransfer:
    """Prolongation given per coarse element (operator-dependent weights) and its transpose.

    Each fine node 2E + q with q in {0, 1}^d is owned by coarse element E (the child-0 rows of P_c);
    fine nodes at the far end of a non-periodic grid are boundary (fixed) nodes, prolonged to 0 and not
    read by ``restrict`` (fine residuals vanish on fixed nodes).
    """

    def __init__(self, p_child: torch.Tensor, el_shape: tuple[int, ...], periodic: bool):
        self.mt = p_child[:, :, 0].permute(0, 3, 2, 1).contiguous()  # mt[b, j, i, n] = P_own[n][i, j]
        self.mt_transposed = self.mt.transpose(1, 2).contiguous()
        self.el_shape, self.periodic = tuple(el_shape), periodic

    def select(self, idx: torch.Tensor) -> ElementTransfer:
        """The transfer of samples idx only."""
        return take_samples(self, idx, "mt", "mt_transposed")

    def prolong(self, xc: torch.Tensor, add_to: torch.Tensor | None = None) -> torch.Tensor:
        """Fine nodal field (B, R, d, *nodes_f) interpolated from a coarse one (B, R, d, *nodes_c), plus the
        fine field add_to if given."""
        d = len(self.el_shape)
        u = local_matvec(self.mt, gather(xc, self.periodic))  # (B, R, n_loc, n_elc)
        u = u.reshape(*u.shape[:2], *(2,) * d, d, *self.el_shape)
        perm = [0, 1, 2 + d] + [a for ax in range(d) for a in (3 + d + ax, 2 + ax)]
        u = u.permute(perm).reshape(*u.shape[:2], d, *(2 * m for m in self.el_shape))
        u = u if self.periodic else F.pad(u, (0, 1) * d)
        return u if add_to is None else add_to + u

    def restrict(self, rf: torch.Tensor) -> torch.Tensor:
        """Transpose of ``prolong``: a fine nodal field (B, R, d, *nodes_f) onto the coarse grid."""
        d = len(self.el_shape)
        if not self.periodic:
            rf = rf[(Ellipsis, *(slice(0, 2 * m) for m in self.el_shape))]
        split = [s for m in self.el_shape for s in (m, 2)]
        r = rf.reshape(*rf.shape[:3], *split)
        perm = [0, 1] + [4 + 2 * a for a in range(d)] + [2] + [3 + 2 * a for a in range(d)]
        r = r.permute(perm).reshape(rf.shape[0], rf.shape[1], 2**d * d, -1)
        return scatter(local_matvec(self.mt_transposed, r), self.el_shape, self.periodic)


class LinearTransfer:
    """(Bi/tri)linear prolongation between a coarse grid and the twice finer grid, and its transpose (no
    per-element data): the fused CPU kernels (``native``), else strided slices in PyTorch."""

    def __init__(self, periodic: bool):
        self.periodic = periodic

    def select(self, idx: torch.Tensor) -> LinearTransfer:
        """The same transfer (it holds no per-sample data)."""
        return self

    def prolong(self, xc: torch.Tensor, add_to: torch.Tensor | None = None) -> torch.Tensor:
        """Fine nodal field (B, R, d, *nodes_f) interpolated from a coarse one (B, R, d, *nodes_c), plus the
        fine field add_to if given."""
        if native.usable(xc):
            return native.linear_prolong(xc, self.periodic, add_to)
        for ax in range(3, xc.ndim):
            if self.periodic:
                odd = 0.5 * (xc + torch.roll(xc, -1, dims=ax))
                xc = torch.stack([xc, odd], dim=ax + 1).flatten(ax, ax + 1)
            else:
                m = xc.shape[ax] - 1
                left, right = xc.narrow(ax, 0, m), xc.narrow(ax, 1, m)
                inter = torch.stack([left, 0.5 * (left + right)], dim=ax + 1).flatten(ax, ax + 1)
                xc = torch.cat([inter, right.narrow(ax, m - 1, 1)], dim=ax)
        return xc if add_to is None else add_to + xc

    def restrict(self, xf: torch.Tensor) -> torch.Tensor:
        """Transpose of ``prolong``: a fine nodal field (B, R, d, *nodes_f) onto the coarse grid."""
        if native.usable(xf):
            return native.linear_restrict(xf, self.periodic)
        for ax in range(3, xf.ndim):
            even = xf[(slice(None),) * ax + (slice(0, None, 2),)]
            odd = 0.5 * xf[(slice(None),) * ax + (slice(1, None, 2),)]
            if self.periodic:
                xf = even + odd + torch.roll(odd, 1, dims=ax)
            else:
                pad = torch.zeros_like(even.narrow(ax, 0, 1))
                xf = even + torch.cat([odd, pad], dim=ax) + torch.cat([pad, odd], dim=ax)
        return xf


@functools.lru_cache(maxsize=8)
def linear_child_prolongations(dim: int) -> np.ndarray:
    """(Bi/tri)linear P_c (2^d, n_loc, n_loc), float64: coarse-element dofs -> dofs of child element c."""
    w = linear_weights(dim, torch.float64, "cpu")[:, :, None, None] * torch.eye(dim, dtype=torch.float64)
    return child_prolongations(w[None, None])[0, 0].numpy()


def linear_galerkin(ke: torch.Tensor, el_shape: tuple[int, ...], levels: int) -> list[torch.Tensor]:
    """Galerkin coarse element matrices (B, n_elc, n_loc, n_loc) of 1..levels coarsenings under (bi/tri)linear
    prolongation from fine element matrices ke (B, n_el, n_loc, n_loc): nested products over the children."""
    p = torch.as_tensor(linear_child_prolongations(len(el_shape)), dtype=ke.dtype, device=ke.device)
    out = []
    for _ in range(levels):
        ke = galerkin_coarse(children(ke, el_shape), p[None, None])
        el_shape = tuple(m // 2 for m in el_shape)
        out.append(ke)
    return out


def operator_level(op, el_c: tuple[int, ...], periodic: bool) -> tuple[ElementTransfer, torch.Tensor]:
    """Operator-dependent grid transfer between the coarse grid of el_c elements and the grid of operator op,
    and the Galerkin coarse element matrices (B, n_elc, n_loc, n_loc). (Linear prolongation needs no
    per-level data: ``LinearTransfer`` and the operator's ``linear_galerkin_matrices``.)"""
    kc = op.child_matrices()
    p_child = child_prolongations(operator_weights(kc, el_c, periodic))
    return ElementTransfer(p_child, el_c, periodic), galerkin_coarse(kc, p_child)

"""Multigrid grid transfer: prolong/restrict, Galerkin coarse operators, operator-dependent weights."""

import numpy as np
import pytest
import torch
from test_fem_solvers import particles

from matdiff.fem import SolveOptions
from matdiff.fem.grid import free_mask, node_shape
from matdiff.fem.laws import IsotropicOperator, lame
from matdiff.fem.problems import affine_solve, periodic_solve
from matdiff.fem.solvers import LinearSystem, sparse_stiffness
from matdiff.fem.transfer import LinearTransfer, operator_level


def fine_operator(dim, n, periodic, contrast=100.0, seed=0):
    """IsotropicOperator of a random two-phase sample (1, n^dim elements), float64."""
    E, nu = particles((1,) + (n,) * dim, seed, contrast)
    lam, mu = lame(E, nu, dim)
    return IsotropicOperator(lam, mu, periodic)


def dense_prolongation(transfer, el_c, periodic):
    """P as a dense (n_fine_dofs, n_coarse_dofs) matrix, column by column from the transfer's prolong."""
    d = len(el_c)
    n_c = d * int(np.prod(node_shape(el_c, periodic)))
    unit = torch.eye(n_c, dtype=torch.float64).reshape(n_c, 1, d, *node_shape(el_c, periodic))
    return transfer.prolong(unit).reshape(n_c, -1).T


def hierarchy_level(dim, n, periodic, kind, contrast=100.0):
    """Fine operator, the grid transfer, the coarse element matrices and the coarse grid shape."""
    op = fine_operator(dim, n, periodic, contrast)
    el_c = tuple(m // 2 for m in op.el_shape)
    if kind == "geometric":
        return op, LinearTransfer(periodic), op.linear_galerkin_matrices(1)[0], el_c
    transfer, ke_coarse = operator_level(op, el_c, periodic)
    return op, transfer, ke_coarse, el_c


def free_dofs(el_shape, periodic):
    """Boolean mask of the free dofs of a grid, in the order of ``sparse_stiffness``."""
    free = free_mask(el_shape, periodic, torch.float64, "cpu")
    return free.expand(1, 1, len(el_shape), *free.shape[3:]).reshape(-1).numpy() > 0


@pytest.mark.parametrize("kind", ["operator", "geometric"])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
def test_element_galerkin_equals_assembled_ptkp(dim, n, periodic, kind):
    """Coarse element matrices assemble exactly to P^T K P on the free coarse dofs."""
    op, transfer, kc_coarse, el_c = hierarchy_level(dim, n, periodic, kind)
    P = dense_prolongation(transfer, el_c, periodic).numpy()
    K = sparse_stiffness(op.element_matrices()[0].numpy(), op.el_shape, periodic).toarray()
    Kc = sparse_stiffness(kc_coarse[0].numpy(), el_c, periodic).toarray()
    free = free_dofs(el_c, periodic)
    ptkp = (P.T @ K @ P)[np.ix_(free, free)]
    err = np.abs(ptkp - Kc[np.ix_(free, free)]).max() / np.abs(Kc).max()
    print(f"element Galerkin vs P^T K P, {dim}D periodic={periodic} {kind}: {err:.2e}")
    assert err < 1e-12, f"element Galerkin vs P^T K P: {err:.2e}"


@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("dim,n", [(2, 16), (3, 8)])
def test_linear_galerkin_two_levels_down_equals_nested_products(dim, n, periodic):
    """The level-2 matrices taken straight from the fine coefficients assemble to P2^T P1^T K P1 P2."""
    op = fine_operator(dim, n, periodic)
    el1 = tuple(m // 2 for m in op.el_shape)
    el2 = tuple(m // 2 for m in el1)
    transfer = LinearTransfer(periodic)
    P1, P2 = dense_prolongation(transfer, el1, periodic).numpy(), dense_prolongation(transfer, el2, periodic)
    K = sparse_stiffness(op.element_matrices()[0].numpy(), op.el_shape, periodic).toarray()
    nested = P2.numpy().T @ P1.T @ K @ P1 @ P2.numpy()
    K2 = sparse_stiffness(op.linear_galerkin_matrices(2)[1][0].numpy(), el2, periodic).toarray()
    free = free_dofs(el2, periodic)
    err = np.abs(nested[np.ix_(free, free)] - K2[np.ix_(free, free)]).max() / np.abs(K2).max()
    assert err < 1e-12, f"two-level linear Galerkin: {err:.2e}"


@pytest.mark.parametrize("kind", ["operator", "geometric"])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
def test_restrict_is_transpose_of_prolong(dim, n, periodic, kind):
    _, transfer, _, el_c = hierarchy_level(dim, n, periodic, kind)
    g = torch.Generator().manual_seed(1)
    xc = torch.randn(1, 2, dim, *node_shape(el_c, periodic), generator=g, dtype=torch.float64)
    fine_el = tuple(2 * m for m in el_c)
    yf = torch.randn(1, 2, dim, *node_shape(fine_el, periodic), generator=g, dtype=torch.float64)
    yf = yf * free_mask(fine_el, periodic, torch.float64, "cpu")  # residuals vanish on fixed nodes
    lhs = (transfer.prolong(xc) * yf).sum()
    rhs = (xc * transfer.restrict(yf)).sum()
    assert abs(float(lhs - rhs)) < 1e-12 * float(lhs.abs())


@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
def test_operator_prolongation_keeps_translations_and_zeroes_centre_rows(dim, n):
    """Rigid translations are interpolated exactly; cell-centre nodes zero their own row of K P."""
    op, transfer, _, el_c = hierarchy_level(dim, n, True, "operator", contrast=1000.0)
    const = torch.zeros(1, dim, dim, *node_shape(el_c, True), dtype=torch.float64)
    for i in range(dim):
        const[0, i, i] = 1.0
    fine = transfer.prolong(const)
    assert torch.allclose(fine, fine[..., :1, :1, *([slice(0, 1)] * (dim - 2))].expand_as(fine), atol=1e-12)
    g = torch.Generator().manual_seed(2)
    xc = torch.randn(1, 1, dim, *node_shape(el_c, True), generator=g, dtype=torch.float64)
    kpx = op.apply(transfer.prolong(xc))
    centres = kpx[(Ellipsis, *([slice(1, None, 2)] * dim))]
    assert float(centres.abs().max()) < 1e-10 * float(kpx.abs().max())


def test_operator_prolongation_differs_from_linear_across_interfaces():
    _, op_transfer, _, el_c = hierarchy_level(2, 8, True, "operator", contrast=100.0)
    _, lin_transfer, _, _ = hierarchy_level(2, 8, True, "geometric", contrast=100.0)
    xc = torch.randn(
        1, 1, 2, *node_shape(el_c, True), generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    diff = op_transfer.prolong(xc) - lin_transfer.prolong(xc)
    assert float(diff.abs().max()) > 0.05 * float(xc.abs().max())


@pytest.mark.parametrize("dim,n,periodic", [(2, 32, False), (3, 16, False), (3, 16, True)])
def test_operator_prolongation_needs_fewer_iterations_at_high_contrast(dim, n, periodic):
    """Contrast 1000: operator-dependent multigrid converges in fewer PCG iterations, to the same answer."""
    E, nu = particles((1,) + (n,) * dim, 3, contrast=1000.0)
    lam, mu = lame(E, nu, dim)
    its, fields = {}, {}
    for solver in ("mg-operator", "mg"):
        op = IsotropicOperator(lam, mu, periodic)
        system = LinearSystem(op, SolveOptions(solver))
        fields[solver], _, info = (periodic_solve if periodic else affine_solve)(system, op.h)
        its[solver] = info.iterations
    print(f"PCG iterations at contrast 1000, {dim}D n={n} periodic={periodic}: {its}")
    assert its["mg-operator"] < its["mg"], its
    scale = float(fields["mg"].abs().max())
    assert float((fields["mg-operator"] - fields["mg"]).abs().max()) < 1e-7 * scale

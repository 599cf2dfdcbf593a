"""Multigrid PCG on a generic element-matrix operator (``ElementOperator``): the isotropic problem through
dense element matrices gives the isotropic path's answers, and an anisotropic Gauss-point tangent solves
like scipy's direct solver on the same mesh."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from test_fem_solvers import particles

from matdiff.fem import ElementOperator, IsotropicOperator, SolveOptions
from matdiff.fem.elements import element_matrices, element_sizes, voigt_to_tensor
from matdiff.fem.grid import affine_field, element_affine, element_dofs, free_mask, gather
from matdiff.fem.laws import lame
from matdiff.fem.problems import affine_solve, periodic_solve, voigt_strains
from matdiff.fem.solvers import LinearSystem, coarsenings, sparse_stiffness


def solve(op, h, periodic, solver):
    """Fluctuation field, element vectors of the total field (B, R, n_loc, n_el) and PCG info."""
    system = LinearSystem(op, SolveOptions(solver, rtol=1e-12))
    w, um, info = (periodic_solve if periodic else affine_solve)(system, h)
    return w, um[None, :, :, None] + gather(w, periodic), info


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("dim,el", [(2, (16, 16)), (2, (32, 16)), (3, (8, 8, 8))])
def test_element_operator_multigrid_matches_isotropic_path(dim, el, periodic):
    E, nu = particles((2, *el), 9)
    lam, mu = lame(E, nu, dim)
    iso = IsotropicOperator(lam, mu, periodic)
    elem = ElementOperator(iso.element_matrices(), el, periodic)
    n = coarsenings(el)
    assert n >= 1
    for fast, generic in zip(iso.linear_galerkin_matrices(n), elem.linear_galerkin_matrices(n), strict=True):
        assert float((fast - generic).abs().max()) < 1e-12 * float(fast.abs().max())
    for solver in ("mg", "mg-operator"):
        w_iso, ue_iso, info_iso = solve(iso, iso.h, periodic, solver)
        w_el, ue_el, info_el = solve(elem, iso.h, periodic, solver)
        assert bool(info_el.converged.all()) and bool(info_iso.converged.all())
        assert float((w_el - w_iso).abs().max()) < 1e-9 * float(w_iso.abs().max())
        energy_iso = (ue_iso * iso.element_forces(ue_iso)).sum((2, 3))
        energy_el = (ue_el * elem.element_forces(ue_el)).sum((2, 3))
        assert torch.allclose(energy_el, energy_iso, rtol=1e-10)
        its = (info_iso.iterations, info_el.iterations)
        print(f"{dim}D {el} periodic={periodic} {solver}: iterations isotropic / element operator {its}")


def anisotropic_operator(el, periodic, seed, contrast=100.0):
    """ElementOperator of a random SPD Voigt stiffness per element (GPa), contrast up to `contrast`."""
    d = len(el)
    nv = 3 if d == 2 else 6
    g = torch.Generator().manual_seed(seed)
    n_el = int(np.prod(el))
    a = torch.randn(1, n_el, nv, nv, generator=g, dtype=torch.float64)
    scale = contrast ** torch.rand(1, n_el, 1, 1, generator=g, dtype=torch.float64)
    c = scale * (a @ a.transpose(-1, -2) + 0.5 * torch.eye(nv, dtype=torch.float64))
    h = element_sizes(el)
    return ElementOperator(element_matrices(voigt_to_tensor(c)[:, :, None], h), el, periodic), h


@pytest.mark.parametrize("solver", ["mg", "mg-operator"])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("el", [(16, 16), (32, 16), (8, 8, 8)])
def test_anisotropic_tangent_matches_scipy_direct(el, periodic, solver):
    """A non-isotropic Gauss-point tangent (random SPD Voigt matrix per element): multigrid PCG vs scipy
    spsolve of the assembled matrix, affine (u = X on the boundary) or periodic (unit Voigt strains)."""
    op, h = anisotropic_operator(el, periodic, seed=len(el) + periodic)
    w, _, info = solve(op, h, periodic, solver)
    assert bool(info.converged.all())
    K = sparse_stiffness(op.element_matrices()[0].numpy(), el, periodic)
    mask = free_mask(el, periodic, torch.float64, "cpu")
    free = np.flatnonzero(mask.expand(1, 1, len(el), *mask.shape[3:]).reshape(-1).numpy() > 0)
    if periodic:  # -(K u_macro): element forces of the macro strains, assembled top88 style
        um = element_affine(voigt_strains(len(el), torch.float64, "cpu"), h).numpy()  # (R, n_loc)
        fe = np.einsum("nij,rj->nri", op.element_matrices()[0].numpy(), um)
        b = np.zeros((K.shape[0], len(um)))
        np.add.at(b, element_dofs(el, True), -fe.transpose(0, 2, 1))
        b = b.T
    else:
        x = affine_field(el, torch.eye(len(el), dtype=torch.float64)[None], h).reshape(-1).numpy()
        b = -(K @ x)[None]
    ref = np.zeros((b.shape[0], K.shape[0]))
    ref[:, free] = spla.spsolve(K[free][:, free].tocsc(), b[:, free].T).T.reshape(b.shape[0], -1)
    got = w[0].reshape(b.shape[0], -1).numpy()
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"anisotropic {el} periodic={periodic} {solver}: {info.iterations} iterations, rel err {err:.2e}")
    assert err < 1e-9

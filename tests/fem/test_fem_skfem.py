"""Independent FEM (scikit-fem) on the same mesh: bulk modulus from the volume-averaged stress (SPEC 3), and
periodic C_hom from scikit-fem's assembled stiffness with the periodic nodes identified by hand."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from matdiff.fem import bulk_modulus, element_sizes, homogenized_stiffness

skfem = pytest.importorskip("skfem")
from skfem import (  # noqa: E402
    Basis,
    BilinearForm,
    ElementHex1,
    ElementQuad1,
    ElementVector,
    Functional,
    MeshHex,
    MeshQuad,
    asm,
    condense,
    solve,
)
from skfem.helpers import ddot, sym_grad, trace  # noqa: E402


def skfem_problem(E: np.ndarray, nu: np.ndarray, h: tuple[float, ...]):
    """Mesh of the box of E.shape voxels of sides h (array axis order), vector basis, per-element fields
    (lam, mu, eps_zz factor) at the quadrature points, and the assembled stiffness; 2D plane stress."""
    dim, n = E.ndim, E.shape
    t = [np.linspace(0.0, m * s, m + 1) for m, s in zip(n[::-1], h[::-1], strict=True)]  # physical x, y, z
    mesh = (MeshQuad if dim == 2 else MeshHex).init_tensor(*t)
    basis = Basis(mesh, ElementVector(ElementQuad1() if dim == 2 else ElementHex1()))
    centre = mesh.p[:, mesh.t].mean(axis=1)[::-1]  # (dim, n_el) coordinates in array axis order
    idx = tuple(np.floor(centre[a] / h[a]).astype(int) for a in range(dim))
    e_el, nu_el = E[idx], nu[idx]
    lam = e_el * nu_el / (1 - nu_el**2) if dim == 2 else e_el * nu_el / ((1 + nu_el) * (1 - 2 * nu_el))
    mu = e_el / (2 * (1 + nu_el))
    ez = -nu_el / (1 - nu_el)
    qp = basis.X.shape[-1]
    fields = {k: np.repeat(v[:, None], qp, axis=1) for k, v in (("lam", lam), ("mu", mu), ("ez", ez))}

    @BilinearForm
    def stiffness(u, v, w):
        eu, ev = sym_grad(u), sym_grad(v)
        return w.lam * trace(eu) * trace(ev) + 2.0 * w.mu * ddot(eu, ev)

    return mesh, basis, fields, asm(stiffness, basis, **fields)


def skfem_bulk_modulus(E: np.ndarray, nu: np.ndarray, h: tuple[float, ...]) -> float:
    """K = tr(sigma_bar) / (3 tr(eps_bar)), u = X on the boundary of the box of voxels of sides h."""
    dim = E.ndim
    mesh, basis, fields, K = skfem_problem(E, nu, h)

    @Functional
    def trace_stress(w):
        return (dim * w.lam + 2.0 * w.mu) * trace(sym_grad(w.u))

    @Functional
    def strain_zz(w):
        return w.ez * trace(sym_grad(w.u))

    x = np.zeros(basis.N)
    for a in range(dim):
        x[basis.nodal_dofs[a]] = mesh.p[a]
    D = basis.get_dofs().all()
    u = solve(*condense(K, x=x, D=D))
    uh = basis.interpolate(u)
    volume = float(np.prod([m * s for m, s in zip(E.shape, h, strict=True)]))
    tr_sigma = asm(trace_stress, basis, u=uh, **fields) / volume
    tr_eps = 3.0 if dim == 3 else 2.0 + asm(strain_zz, basis, u=uh, **fields) / volume
    return tr_sigma / (3.0 * tr_eps)


def skfem_homogenized_stiffness(E: np.ndarray, nu: np.ndarray, h: tuple[float, ...]) -> np.ndarray:
    """Volume-averaged C (Voigt, physical order, engineering shear) of the periodic box of voxels of sides h:
    fluctuations periodic through a node identification matrix, one node pinned."""
    dim, n = E.ndim, E.shape
    mesh, basis, _, K = skfem_problem(E, nu, h)
    period = np.array([m * s for m, s in zip(n[::-1], h[::-1], strict=True)])  # physical x, y, z
    ijk = np.rint(mesh.p / np.array(h[::-1])[:, None]).astype(int) % np.array(n[::-1])[:, None]
    node = np.ravel_multi_index(tuple(ijk), n[::-1])  # periodic node of every mesh node
    n_per = int(np.prod(n))
    rows = np.concatenate([basis.nodal_dofs[a] for a in range(dim)])
    cols = np.concatenate([a * n_per + node for a in range(dim)])
    P = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(basis.N, dim * n_per))
    pairs = [(0, 0), (1, 1), (0, 1)] if dim == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    macro = np.zeros((basis.N, len(pairs)))
    for r, (p, q) in enumerate(pairs):
        eps = np.zeros((dim, dim))
        eps[p, q] = eps[q, p] = 1.0 if p == q else 0.5
        for a in range(dim):
            macro[basis.nodal_dofs[a], r] = eps[a] @ mesh.p
    free = np.setdiff1d(np.arange(dim * n_per), [a * n_per for a in range(dim)])  # periodic node 0 pinned
    A = (P.T @ K @ P).tocsc()[free][:, free]
    w = np.zeros((dim * n_per, len(pairs)))
    w[free] = spla.spsolve(A, -(P.T @ K @ macro)[free])
    u = macro + P @ w
    return u.T @ (K @ u) / period.prod()


@pytest.mark.parametrize("shape", [(8, 8), (12, 8), (4, 4, 4), (4, 6, 4)])
def test_bulk_modulus_matches_scikit_fem(shape):
    """The unit square / cube of stretched elements (sides 1 / n per axis), through voxel_size."""
    rng = np.random.default_rng(7)
    m = rng.random(shape) < 0.4
    E = np.where(m, 150.0, 1.5)
    nu = np.where(m, 0.2, 0.4)
    h = tuple(1.0 / s for s in shape)
    ref = skfem_bulk_modulus(E, nu, h)
    ours = float(bulk_modulus(torch.tensor(E[None]), torch.tensor(nu[None]), voxel_size=h)[0])
    err = abs(ours - ref) / ref
    print(f"scikit-fem {shape}: K skfem {ref:.10f} matdiff {ours:.10f} rel err {err:.2e}")
    assert err < 1e-6


@pytest.mark.parametrize(
    "shape,voxel_size",
    [
        ((12, 10), None),
        ((12, 10), 0.5),
        ((12, 10), (0.3, 0.2)),
        ((6, 8, 4), None),
        ((6, 8, 4), (0.1, 0.2, 0.15)),
    ],
)
def test_non_square_box_matches_scikit_fem(shape, voxel_size):
    """A non-square box of square / cubic voxels (default and scaled) or of anisotropic voxels: K and C_hom of
    a random two-phase field against scikit-fem on the same mesh."""
    rng = np.random.default_rng(11)
    m = rng.random(shape) < 0.4
    E = np.where(m, 120.0, 2.0)
    nu = np.where(m, 0.22, 0.38)
    h = element_sizes(shape, voxel_size)
    Et, nut = torch.tensor(E[None]), torch.tensor(nu[None])
    k_ref, c_ref = skfem_bulk_modulus(E, nu, h), skfem_homogenized_stiffness(E, nu, h)
    k = float(bulk_modulus(Et, nut, voxel_size=voxel_size)[0])
    c = homogenized_stiffness(Et, nut, voxel_size=voxel_size)[0].numpy()
    err_k, err_c = abs(k - k_ref) / k_ref, np.abs(c - c_ref).max() / np.abs(c_ref).max()
    print(f"scikit-fem {shape} h={h}: K rel err {err_k:.2e}, C_hom rel err {err_c:.2e}")
    assert err_k < 1e-6 and err_c < 1e-6

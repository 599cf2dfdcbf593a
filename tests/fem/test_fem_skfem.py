"""Independent FEM (scikit-fem) on the same mesh: bulk modulus from the volume-averaged stress (SPEC 3)."""

import numpy as np
import pytest
import torch

from matdiff.fem import bulk_modulus

skfem = pytest.importorskip("skfem")
from skfem import (  # noqa: E402  # noqa: E402
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


def skfem_bulk_modulus(E: np.ndarray, nu: np.ndarray) -> float:
    """K = tr(sigma_bar) / (3 tr(eps_bar)), u = X on the boundary; 2D plane stress; E, nu (H, W) or 3D."""
    dim = E.ndim
    n = E.shape
    t = [np.linspace(0.0, 1.0, m + 1) for m in n[::-1]]  # physical x, y, z
    mesh = (MeshQuad if dim == 2 else MeshHex).init_tensor(*t)
    basis = Basis(mesh, ElementVector(ElementQuad1() if dim == 2 else ElementHex1()))
    centre = mesh.p[:, mesh.t].mean(axis=1)  # (dim, n_el) physical coordinates
    idx = tuple(np.floor(centre[::-1][a] * n[a]).astype(int) for a in range(dim))  # array (z, y, x) index
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

    @Functional
    def trace_stress(w):
        return (dim * w.lam + 2.0 * w.mu) * trace(sym_grad(w.u))

    @Functional
    def strain_zz(w):
        return w.ez * trace(sym_grad(w.u))

    K = asm(stiffness, basis, **fields)
    x = np.zeros(basis.N)
    for a in range(dim):
        x[basis.nodal_dofs[a]] = mesh.p[a]
    D = basis.get_dofs().all()
    u = solve(*condense(K, x=x, D=D))
    uh = basis.interpolate(u)
    tr_sigma = asm(trace_stress, basis, u=uh, **fields)
    tr_eps = 3.0 if dim == 3 else 2.0 + asm(strain_zz, basis, u=uh, **fields)
    return tr_sigma / (3.0 * tr_eps)


@pytest.mark.parametrize("shape", [(8, 8), (12, 8), (4, 4, 4), (4, 6, 4)])
def test_bulk_modulus_matches_scikit_fem(shape):
    rng = np.random.default_rng(7)
    m = rng.random(shape) < 0.4
    E = np.where(m, 150.0, 1.5)
    nu = np.where(m, 0.2, 0.4)
    ref = skfem_bulk_modulus(E, nu)
    ours = float(bulk_modulus(torch.tensor(E[None]), torch.tensor(nu[None]))[0])
    err = abs(ours - ref) / ref
    print(f"scikit-fem {shape}: K skfem {ref:.10f} matdiff {ours:.10f} rel err {err:.2e}")
    assert err < 1e-6

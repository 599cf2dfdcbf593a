"""The material-law interface at Gauss points and the generic element pieces (gradient / strain operators,
element matrices from tangents, internal forces from stresses) against the isotropic reference matrices."""

import itertools

import numpy as np
import pytest
import torch

from matdiff.fem import IsotropicOperator, LinearElastic, MaterialLaw, reference_matrices
from matdiff.fem.elements import (
    corner_offsets,
    displacement_gradient,
    divergence_vector,
    element_matrices,
    element_sizes,
    internal_forces,
    strain_operator,
    voigt_to_tensor,
)

SIZES = [(0.25, 0.25), (0.3, 0.2), (0.125, 0.125, 0.125), (0.1, 0.2, 0.15)]


def textbook_reference(h):
    """K_lam, K_mu and int_e div N of a voxel of sides h, written out independently of matdiff: 2x2(x2) Gauss
    points, B matrices of eps, K_lam = sum w div^T div, K_mu = sum w 2 eps:eps."""
    d = len(h)
    corners = corner_offsets(d)
    k_lam, k_mu, div_sum = np.zeros((2**d * d,) * 2), np.zeros((2**d * d,) * 2), np.zeros(2**d * d)
    w = np.prod(h) / 2**d
    for gp in itertools.product((0.5 - 0.5 / np.sqrt(3), 0.5 + 0.5 / np.sqrt(3)), repeat=d):
        eps = np.zeros((2**d * d, d, d))
        for c, off in enumerate(corners):
            for b in range(d):  # dN_c / dX_b
                dn = np.prod([(gp[a] if off[a] else 1 - gp[a]) for a in range(d) if a != b])
                dn *= (1 if off[b] else -1) / h[b]
                for i in range(d):  # dof (c, i): u_i = N_c
                    eps[c * d + i, i, b] += 0.5 * dn
                    eps[c * d + i, b, i] += 0.5 * dn
        div = np.trace(eps, axis1=1, axis2=2)
        k_lam += w * np.outer(div, div)
        k_mu += w * 2 * np.einsum("iab,jab->ij", eps, eps)
        div_sum += w * div
    return k_lam, k_mu, div_sum


def random_lame(shape, seed):
    g = torch.Generator().manual_seed(seed)
    lam = 0.1 + 10 * torch.rand(shape, generator=g, dtype=torch.float64)
    mu = 0.1 + 10 * torch.rand(shape, generator=g, dtype=torch.float64)
    return lam, mu


@pytest.mark.parametrize("h", SIZES)
def test_reference_matrices_match_textbook(h):
    k_lam, k_mu, div = textbook_reference(h)
    ours = reference_matrices(h, torch.float64, "cpu")
    assert np.abs(ours[0].numpy() - k_lam).max() < 1e-13 * np.abs(k_lam).max()
    assert np.abs(ours[1].numpy() - k_mu).max() < 1e-13 * np.abs(k_mu).max()
    assert np.abs(divergence_vector(h, torch.float64, "cpu").numpy() - div).max() < 1e-14 * np.abs(div).max()


@pytest.mark.parametrize("h", SIZES)
def test_linear_elastic_step_assembles_to_isotropic_element_matrices(h):
    """sum_g w_g B_g^T C_g B_g of the law's Gauss-point tangents equals lam K_lam + mu K_mu (independent
    reference matrices), and the IsotropicOperator's element matrices."""
    d = len(h)
    el = (4, 2, 2)[:d] if d == 3 else (4, 2)
    lam, mu = random_lame((2, *el), 0)
    law = LinearElastic(lam, mu)
    grad_u = torch.zeros(2, int(np.prod(el)), 2**d, d, d, dtype=torch.float64)
    response = law.step(grad_u, law.initial_state(grad_u))
    ke = element_matrices(response.tangent, h)
    k_lam, k_mu, _ = textbook_reference(h)
    ref = lam.reshape(2, -1, 1, 1) * torch.tensor(k_lam) + mu.reshape(2, -1, 1, 1) * torch.tensor(k_mu)
    assert float((ke - ref).abs().max()) < 1e-13 * float(ref.abs().max())
    iso = law.operator(False, h)
    assert isinstance(iso, IsotropicOperator) and iso.h == tuple(h)
    assert float((iso.element_matrices() - ke).abs().max()) < 1e-13 * float(ref.abs().max())
    assert response.state == {}


@pytest.mark.parametrize("h", SIZES)
def test_stress_energy_and_internal_forces(h):
    """At a random displacement: sigma = C : grad u, energy = sigma : eps / 2 integrates to u^T k u / 2, and
    the internal forces from the Gauss-point stresses are k_e u_e."""
    d = len(h)
    el = (2, 3, 2)[:d] if d == 3 else (3, 2)
    lam, mu = random_lame((2, *el), 1)
    law = LinearElastic(lam, mu)
    ue = torch.randn(
        2, 2**d * d, int(np.prod(el)), dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    grad_u = displacement_gradient(ue, h)
    r = law.step(grad_u, {})
    assert torch.allclose(
        r.stress, torch.einsum("zngabcd,zngcd->zngab", r.tangent.expand(-1, -1, 2**d, -1, -1, -1, -1), grad_u)
    )
    ke = element_matrices(r.tangent, h)
    ku = torch.einsum("znij,zjn->zin", ke, ue)
    assert torch.allclose(internal_forces(r.stress, h), ku, rtol=1e-12, atol=1e-12 * float(ku.abs().max()))
    w = float(np.prod(h)) / 2**d
    energy = w * r.energy.sum((1, 2))
    assert torch.allclose(energy, 0.5 * (ue * ku).sum((1, 2)), rtol=1e-12)
    iso = law.operator(False, h)
    assert torch.allclose(
        iso.element_forces(ue[:, None])[:, 0], ku, rtol=1e-12, atol=1e-12 * float(ku.abs().max())
    )


@pytest.mark.parametrize("h", SIZES)
def test_strain_operator_and_voigt_tangent(h):
    """sum_g w B_g^T C B_g with a random SPD Voigt C equals the element matrix of its fourth-order tangent,
    and B of a homogeneous strain field gives that strain in Voigt order (physical axes, engineering
    shear)."""
    d = len(h)
    nv = 3 if d == 2 else 6
    g = torch.Generator().manual_seed(3)
    a = torch.randn(nv, nv, generator=g, dtype=torch.float64)
    c = a @ a.T + nv * torch.eye(nv, dtype=torch.float64)
    b = strain_operator(h, torch.float64, "cpu")  # (n_gauss, nv, n_loc)
    ref = float(np.prod(h)) / 2**d * torch.einsum("gvi,vw,gwj->ij", b, c, b)
    ke = element_matrices(voigt_to_tensor(c)[None, None, None], h)[0, 0]
    assert torch.allclose(ke, ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))
    # u = eps X with eps_xy = eps_yx = 1/2 (physical x = last array axis): engineering shear gamma_xy = 1
    eps = torch.zeros(d, d, dtype=torch.float64)
    eps[d - 1, d - 2] = eps[d - 2, d - 1] = 0.5
    x = torch.as_tensor(corner_offsets(d), dtype=torch.float64) * torch.tensor(h, dtype=torch.float64)
    ue = (x @ eps.T).reshape(-1)  # dof = corner * d + component
    strain = b @ ue
    assert torch.allclose(strain, torch.eye(nv, dtype=torch.float64)[-1].expand_as(strain), atol=1e-12)


def test_material_law_is_abstract():
    with pytest.raises(TypeError):
        MaterialLaw()


def test_element_sizes():
    assert element_sizes((8, 8)) == (0.125, 0.125)
    assert element_sizes((12, 10)) == (1 / 12, 1 / 12)
    assert element_sizes((6, 8, 4), 0.5) == (0.5, 0.5, 0.5)
    assert element_sizes((6, 8), (0.1, 0.2)) == (0.1, 0.2)
    for bad in (0.0, -1.0, (0.1,), (0.1, float("nan"))):
        with pytest.raises(ValueError, match="voxel_size"):
            element_sizes((6, 8), bad)

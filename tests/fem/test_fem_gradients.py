"""Finite-difference checks of the implicit gradients (custom autograd Functions and public functions)."""

import pytest
import torch

from matdiff.fem import AffineEnergy, PeriodicStiffness, SolveOptions, bulk_modulus, homogenized_stiffness


def material(shape, seed):
    """Random smooth-ish heterogeneous E (GPa) and nu (B, *spatial), float64, requiring grad."""
    g = torch.Generator().manual_seed(seed)
    E = (1.0 + 99.0 * torch.rand(shape, generator=g, dtype=torch.float64)).requires_grad_()
    nu = (0.1 + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)).requires_grad_()
    return E, nu


def test_affine_energy_function_gradcheck():
    lam, mu = material((2, 3, 4), 0)
    c = (-0.5 * torch.rand(2, 3, 4, dtype=torch.float64)).requires_grad_()
    cfg = SolveOptions(solver="direct")

    def energy(a, b, w):
        return AffineEnergy.apply(a, b, w, cfg)[:2]  # the status outputs are not differentiable

    assert torch.autograd.gradcheck(energy, (lam, mu, c), atol=1e-6)


def test_periodic_stiffness_function_gradcheck():
    lam, mu = material((1, 3, 2, 2), 1)
    cfg = SolveOptions(solver="direct")
    assert torch.autograd.gradcheck(lambda a, b: PeriodicStiffness.apply(a, b, cfg)[0], (lam, mu), atol=1e-6)


@pytest.mark.parametrize(
    "shape,plane", [((2, 3, 4), "stress"), ((2, 3, 4), "strain"), ((1, 2, 3, 2), "stress")]
)
def test_bulk_modulus_gradcheck(shape, plane):
    E, nu = material(shape, 2)
    assert torch.autograd.gradcheck(
        lambda e, n: bulk_modulus(e, n, plane=plane, options=SolveOptions("direct")), (E, nu)
    )


def test_homogenized_stiffness_gradcheck_2d():
    E, nu = material((1, 3, 4), 3)
    assert torch.autograd.gradcheck(
        lambda e, n: homogenized_stiffness(e, n, options=SolveOptions("direct")), (E, nu)
    )


@pytest.mark.parametrize("dim,n", [(2, 16), (3, 8)])
def test_multigrid_gradient_directional_fd(dim, n):
    """Directional central differences of the multigrid-PCG outputs, and agreement with the direct solver."""
    E, nu = material((2,) + (n,) * dim, 4)
    g = torch.Generator().manual_seed(5)
    dE, dnu = (
        torch.randn(E.shape, generator=g, dtype=torch.float64),
        0.01 * torch.randn(E.shape, generator=g, dtype=torch.float64),
    )
    worst = 0.0
    for name, f in (
        ("K", lambda e, v: bulk_modulus(e, v, options=SolveOptions("mg", rtol=1e-12)).sum()),
        ("C", lambda e, v: (homogenized_stiffness(e, v, options=SolveOptions("mg", rtol=1e-12)) ** 2).sum()),
    ):
        ge, gn = torch.autograd.grad(f(E, nu), (E, nu))
        h = 1e-4
        with torch.no_grad():
            fd = (f(E + h * dE, nu + h * dnu) - f(E - h * dE, nu - h * dnu)) / (2 * h)
        an = (ge * dE).sum() + (gn * dnu).sum()
        err = float((an.detach() - fd).abs() / fd.abs())
        worst = max(worst, err)
        print(f"FD dim={dim} {name}: analytic {float(an.detach()):.8e} fd {float(fd):.8e} rel err {err:.2e}")
        assert err < 1e-6
    Ed, nud = E.detach().clone().requires_grad_(), nu.detach().clone().requires_grad_()
    gm = torch.autograd.grad(bulk_modulus(E, nu, options=SolveOptions("mg", rtol=1e-12)).sum(), (E, nu))
    gd = torch.autograd.grad(bulk_modulus(Ed, nud, options=SolveOptions("direct")).sum(), (Ed, nud))
    diff = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(gm, gd, strict=True))
    print(f"mg vs direct gradient dim={dim}: rel diff {diff:.2e}")
    assert diff < 1e-8


def test_euler_homogeneity():
    """K is homogeneous of degree 1 in E: sum_e E_e dK/dE_e = K."""
    E, nu = material((2, 3, 4, 4), 6)
    k = bulk_modulus(E, nu)
    (ge,) = torch.autograd.grad(k.sum(), E)
    err = float(((ge * E).flatten(1).sum(1) - k).detach().abs().max() / k.detach().abs().max())
    print(f"Euler sum E dK/dE = K: rel err {err:.2e}")
    assert err < 1e-8


@pytest.mark.parametrize("voxel_size", [(0.3, 0.2), 0.5])
def test_gradcheck_with_voxel_size(voxel_size):
    """Volume averages over a box that is not the unit square: values and gradients divide by its area."""
    E, nu = material((1, 3, 4), 7)
    direct = SolveOptions("direct")
    assert torch.autograd.gradcheck(
        lambda e, n: bulk_modulus(e, n, voxel_size=voxel_size, options=direct), (E, nu)
    )
    assert torch.autograd.gradcheck(
        lambda e, n: homogenized_stiffness(e, n, voxel_size=voxel_size, options=direct), (E, nu)
    )

"""Seed B's nonlinear laws and curves (SPEC 7): laws against autograd, homogeneous blocks against closed
forms, gradients against finite differences (the energy's explicit partial derivative, the J2 path adjoint
across the yield point), solvers against each other, per-sample failures and input errors. The independent
scikit-fem oracle on the same mesh is tests/fem/test_fem_nonlinear_skfem.py."""

import math

import numpy as np
import pytest
import scipy.optimize as so
import torch

import matdiff.fem.newton as newton
from matdiff.fem import (
    ConvergenceError,
    J2Plastic,
    NeoHookean,
    SolveOptions,
    Tension,
    strain_energy_curve,
    stress_displacement_curve,
)
from matdiff.fem.elements import element_matrices, element_sizes
from matdiff.fem.laws import isotropic_tangent, lame
from matdiff.fem.newton import solve_load_path
from matdiff.fem.operators import ElementOperator
from matdiff.fem.solvers import LinearSystem

F64 = torch.float64


def tangent_by_autograd(fn, grad_u: torch.Tensor) -> torch.Tensor:
    """d fn(grad_u) / d grad_u (..., 2, 2, 2, 2) for a Gauss-point map fn to (..., 2, 2)."""
    g = grad_u.clone().requires_grad_(True)
    out = fn(g)
    rows = [
        torch.autograd.grad(out[..., i, j].sum(), g, retain_graph=True)[0] for i in range(2) for j in range(2)
    ]
    return torch.stack(rows, -3).reshape(*grad_u.shape, 2, 2)


def two_phase(b: int, shape: tuple[int, int], seed: int, low: float, high: float) -> torch.Tensor:
    """Random binary fields (b, *shape) of values low / high (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, *shape, generator=g, dtype=F64) > 0.5).to(F64)
    return low + (high - low) * x


def test_neo_hookean_stress_and_tangent_are_the_derivatives_of_its_energy():
    torch.manual_seed(0)
    E = 1 + 99 * torch.rand(2, 3, 3, dtype=F64)
    law = NeoHookean.from_young(E, torch.full_like(E, 0.3))
    grad_u = 0.2 * torch.randn(2, 9, 4, 2, 2, dtype=F64)
    response = law.step(grad_u, {})
    g = grad_u.clone().requires_grad_(True)
    (P,) = torch.autograd.grad(law.step(g, {}).energy.sum(), g)
    assert torch.allclose(P, response.stress, atol=1e-11)
    A = tangent_by_autograd(lambda x: law.step(x, {}).stress, grad_u)
    assert torch.allclose(A, response.tangent, atol=1e-10)
    assert torch.allclose(response.tangent, response.tangent.permute(0, 1, 2, 5, 6, 3, 4), atol=1e-10)


def test_neo_hookean_marks_inverted_elements():
    law = NeoHookean.from_young(torch.ones(1, 1, 1, dtype=F64), torch.full((1, 1, 1), 0.3, dtype=F64))
    grad_u = torch.zeros(1, 1, 4, 2, 2, dtype=F64)
    grad_u[..., 0, 0] = -1.5  # J = -0.5
    r = law.step(grad_u, {})
    assert torch.isinf(r.energy).all() and torch.isnan(r.stress).all()


def test_j2_tangent_is_consistent_and_the_return_lands_on_the_yield_surface():
    torch.manual_seed(1)
    E = 1e3 + 99e3 * torch.rand(2, 3, 3, dtype=F64)
    sigma_0 = 30 + 270 * torch.rand_like(E)
    law = J2Plastic.from_young(E, torch.full_like(E, 0.3), sigma_0)
    grad_u = 3e-3 * torch.randn(2, 9, 4, 2, 2, dtype=F64)
    sym = lambda t: 0.5 * (t + t.transpose(-1, -2))  # noqa: E731
    state = {"stress": sym(50 * torch.randn_like(grad_u)), "strain": sym(1e-3 * torch.randn_like(grad_u))}
    r = law.step(grad_u, state)
    A = tangent_by_autograd(lambda x: law.step(x, state).stress, grad_u)
    assert torch.allclose(A, r.tangent, rtol=1e-9, atol=1e-6)
    s = r.stress - 0.5 * r.stress.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] * torch.eye(
        2, dtype=F64
    )
    s_eq = torch.sqrt(1.5 * (s * s).sum((-2, -1))) / sigma_0.reshape(2, -1, 1)
    assert float(s_eq.max()) <= 1 + 1e-12
    assert 0.2 < float((s_eq > 1 - 1e-12).to(F64).mean()) < 0.9  # both branches were tested


@pytest.mark.parametrize(("E", "sigma_0"), [(1e3, 300.0), (1e5, 30.0), (5e4, 100.0)])
def test_homogeneous_j2_block_is_in_uniaxial_stress_then_perfectly_plastic(E, sigma_0):
    """SPEC 7: sigma_yy = E d / (1 - nu^2) up to 2 sigma_0 / sqrt(3), then flat (plane strain, 2-D
    deviator)."""
    shape, nu, d = (1, 6, 5), 0.3, np.arange(1, 21) * 5e-4
    s = stress_displacement_curve(torch.full(shape, E, dtype=F64), torch.full(shape, nu, dtype=F64),
                                  torch.full(shape, sigma_0, dtype=F64), d)  # fmt: skip
    expected = np.minimum(E * d / (1 - nu**2), 2 * sigma_0 / math.sqrt(3))
    np.testing.assert_allclose(s[0].numpy(), expected, rtol=1e-9)


def test_homogeneous_neo_hookean_block_on_rollers_matches_the_uniaxial_closed_form():
    """A homogeneous block with the bottom on rollers is in homogeneous plane-strain uniaxial tension:
    F = diag(1 + d, lambda_x) in (y, x) with P_xx(lambda_x) = 0 (a scalar root); energy = psi(F) x area."""
    E, nu, shape = 7.0, 0.3, (5, 4)
    kappa, mu = E / (3 * (1 - 2 * nu)), E / (2 * (1 + nu))

    def psi(ly, lx):
        J, I1 = ly * lx, ly * ly + lx * lx + 1.0
        return 0.5 * mu * (J ** (-2 / 3) * I1 - 3) + 0.5 * kappa * (J - 1) ** 2

    def p_xx(lx, ly):
        return (psi(ly, lx + 1e-7) - psi(ly, lx - 1e-7)) / 2e-7

    ds = [0.05, 0.2, 0.5]
    law = NeoHookean.from_young(torch.full((1, *shape), E, dtype=F64), torch.full((1, *shape), nu, dtype=F64))
    h = element_sizes(shape)
    path = solve_load_path(law, Tension(shape, "roller"), ds, h, SolveOptions(), 1, F64, "cpu")
    assert bool(path.status.converged.all())
    area = shape[0] * shape[1] * h[0] * h[1]
    for d, u in zip(ds, path.u, strict=True):
        ly = 1 + d / (shape[0] * h[0])
        lx = so.brentq(p_xx, 0.5, 1.5, args=(ly,), xtol=1e-14)
        energy = float(law.step(newton.gauss_gradient(u, h), {}).energy.sum()) * h[0] * h[1] / 4
        assert energy == pytest.approx(psi(ly, lx) * area, rel=1e-8)
        width = float(u[0, 0, 1, :, -1].mean() - u[0, 0, 1, :, 0].mean()) + shape[1] * h[1]
        assert width == pytest.approx(lx * shape[1] * h[1], rel=1e-8)


def test_energy_curve_of_a_homogeneous_block_is_close_to_seed_b_fit_p1():
    """Seed B's P1 (eq. 34) is a cubic fitted to the stiff material's curve; ours stays within its fit
    error."""
    E = torch.full((1, 8, 8), 100.0, dtype=F64)
    ds = np.arange(1, 11) * 0.05
    p1 = -19.880 * ds**3 + 51.245 * ds**2 + 0.472 * ds
    energy = strain_energy_curve(E, torch.full_like(E, 0.3), ds)[0].numpy()
    assert np.abs(energy - p1).max() < 0.05 * p1.max()


def test_energy_gradient_is_the_explicit_partial_derivative():
    E = two_phase(1, (6, 6), 0, 1.0, 100.0)
    nu = torch.full_like(E, 0.3) + 0.05 * torch.rand(
        E.shape, generator=torch.Generator().manual_seed(3), dtype=F64
    )
    ds = [0.1, 0.3, 0.5]
    weights = torch.tensor([1.0, -0.5, 0.25], dtype=F64)
    E_ = E.clone().requires_grad_(True)
    nu_ = nu.clone().requires_grad_(True)
    (strain_energy_curve(E_, nu_, ds) * weights).sum().backward()
    g = torch.Generator().manual_seed(5)
    for field, grad in ((E, E_.grad), (nu, nu_.grad)):
        direction = torch.randn(E.shape, generator=g, dtype=F64)
        step = 1e-5 * float(field.abs().max())

        def loss(t, field=field, direction=direction):
            args = (t, nu) if field is E else (E, t)
            return float((strain_energy_curve(*args, ds) * weights).sum())

        fd = (loss(field + step * direction) - loss(field - step * direction)) / (2 * step)
        assert float((grad * direction).sum()) == pytest.approx(fd, rel=1e-6)


def test_stress_curve_adjoint_matches_finite_differences_across_the_yield_point():
    shape = (6, 6)
    E = two_phase(2, shape, 1, 1e3, 1e5)
    sigma_0 = two_phase(2, shape, 2, 30.0, 300.0)
    nu = torch.full_like(E, 0.3)
    ds = np.arange(1, 11) * 1e-3  # yielding starts within the path
    curve = stress_displacement_curve(E, nu, sigma_0, ds)
    slope = curve[:, 1:] / curve[:, :-1]
    assert bool((slope < 1.9).any())  # the curves bend: some material yielded
    weights = torch.linspace(1.0, 2.0, len(ds), dtype=F64)
    params = [t.clone().requires_grad_(True) for t in (E, nu, sigma_0)]
    (stress_displacement_curve(*params, ds) * weights).sum().backward()
    g = torch.Generator().manual_seed(7)
    for k, base in enumerate((E, nu, sigma_0)):
        direction = torch.randn(base.shape, generator=g, dtype=F64)
        step = 1e-6 * float(base.abs().max())

        def loss(t, k=k):
            args = [E, nu, sigma_0]
            args[k] = t
            return float((stress_displacement_curve(*args, ds) * weights).sum())

        fd = (loss(base + step * direction) - loss(base - step * direction)) / (2 * step)
        assert float((params[k].grad * direction).sum()) == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize("solver", ["direct", "mg", "banded"])
def test_tangent_solvers_give_the_same_curves(solver):
    E = two_phase(2, (8, 8), 3, 1.0, 100.0)
    nu = torch.full_like(E, 0.3)
    reference = strain_energy_curve(E, nu, [0.1, 0.4], options=SolveOptions(solver="direct"))
    result = strain_energy_curve(E, nu, [0.1, 0.4], options=SolveOptions(solver=solver), return_result=True)
    torch.testing.assert_close(result.values, reference, rtol=1e-9, atol=0)
    linear = result.status.linear_iterations
    assert bool((linear > 0).all()) if solver == "mg" else bool((linear == 0).all())
    assert bool((result.status.newton_iterations >= 2).all())


@pytest.mark.parametrize("shape", [(6, 9), (9, 6)])
def test_banded_cholesky_solves_a_mixed_boundary_system_like_superlu(shape):
    E = two_phase(2, shape, 4, 1.0, 100.0)
    lam, mu = lame(E, torch.full_like(E, 0.3), 2, "strain")
    tangent = isotropic_tangent(lam.reshape(2, -1, 1), mu.reshape(2, -1, 1), 2)
    op = ElementOperator(element_matrices(tangent, element_sizes(shape)), shape, False)
    mask = Tension(shape, "roller").mask(F64, "cpu")
    rhs = mask * torch.randn(2, 3, 2, shape[0] + 1, shape[1] + 1, dtype=F64)
    x_lu, _ = LinearSystem(op, SolveOptions(solver="direct"), mask=mask).solve(rhs)
    x_band, _ = LinearSystem(op, SolveOptions(solver="banded"), mask=mask).solve(rhs)
    x_mg, info = LinearSystem(op, SolveOptions(solver="mg"), mask=mask).solve(rhs)
    torch.testing.assert_close(x_band, x_lu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_mg, x_lu, rtol=1e-7, atol=1e-9)
    assert bool(info.converged.all()) and bool((x_lu * (1 - mask) == 0).all())


def test_a_sample_whose_newton_fails_is_reported_and_gets_nan(monkeypatch):
    monkeypatch.setattr(newton, "NEWTON_MAXITER", 3)
    E = torch.stack([torch.full((6, 6), 5.0, dtype=F64), two_phase(1, (6, 6), 5, 1.0, 100.0)[0]])
    nu = torch.full_like(E, 0.3)
    with pytest.raises(ConvergenceError, match="sample 0: load step 2 .d = 0.5.: Newton did not converge"):
        strain_energy_curve(E, nu, [0.05, 0.5])
    result = strain_energy_curve(E[:1], nu[:1], [0.05, 0.5], options=SolveOptions(on_failure="nan"),
                                 return_result=True)  # fmt: skip
    assert bool(torch.isnan(result.values).all()) and result.status.failed_step.tolist() == [1]
    assert result.status.newton_iterations.tolist() == [[3, 3]]


def test_a_failing_tangent_solve_leaves_the_other_samples_alone(monkeypatch):
    class FailsSecondSample(LinearSystem):
        def solve(self, b, x0=None):
            x, info = super().solve(b, x0)
            if b.shape[0] == 2:
                info.converged[1] = False
            return x, info

    monkeypatch.setattr(newton, "LinearSystem", FailsSecondSample)
    E = two_phase(2, (6, 6), 5, 1.0, 100.0)
    nu = torch.full_like(E, 0.3)
    result = strain_energy_curve(
        E, nu, [0.1, 0.2], options=SolveOptions(on_failure="nan"), return_result=True
    )
    alone = strain_energy_curve(E[:1], nu[:1], [0.1, 0.2])
    torch.testing.assert_close(result.values[0], alone[0], rtol=1e-12, atol=0)
    assert bool(torch.isnan(result.values[1]).all())
    assert result.status.converged.tolist() == [True, False]
    assert result.status.reasons()[0] == ""
    assert result.status.reasons()[1] == "load step 1 (d = 0.1): tangent solve did not converge " + (
        "(is the tangent positive definite?)"
    )


def test_displacement_output_is_in_image_orientation():
    E = torch.full((1, 4, 5), 10.0, dtype=F64)
    result = strain_energy_curve(E, torch.full_like(E, 0.3), [0.2], return_result=True)
    u = result.displacement[0]  # (u_x, u_y), (H + 1, W + 1), row 0 = top
    assert u.shape == (2, 5, 6)
    torch.testing.assert_close(u[1, 0], torch.full((6,), 0.2, dtype=F64))  # top row lifted
    assert bool((u[:, -1] == 0).all())  # clamped bottom
    assert float(u[0, 2, 0]) > 0 > float(u[0, 2, -1])  # the sides neck inwards


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda E, nu: strain_energy_curve(E, nu, []), "non-empty 1-D"),
        (lambda E, nu: strain_energy_curve(E, nu, [[0.1]]), "1-D"),
        (lambda E, nu: strain_energy_curve(E, nu, [0.1, float("nan")]), "finite"),
        (lambda E, nu: strain_energy_curve(E.expand(2, 4, 4)[None], nu.expand(2, 4, 4)[None], [0.1]), "2-D"),
        (lambda E, nu: strain_energy_curve(-E, nu, [0.1]), "E must be > 0"),
        (lambda E, nu: stress_displacement_curve(E, nu, -E, [0.1]), "sigma_0 must be finite and > 0"),
        (lambda E, nu: stress_displacement_curve(E, nu, E[:, :2], [0.1]), "sigma_0 must be a tensor shaped"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(call, message):
    E = torch.ones(1, 4, 4, dtype=F64)
    with pytest.raises(ValueError, match=message):
        call(E, torch.full_like(E, 0.3))


def test_j2_laminate_with_equal_yield_strains_averages_its_layers():
    """Vertical layers (columns) of (E, sigma_0) = (1e4, 30) and (1e5, 300), nu = 0.3 both: equal plane-strain
    lateral contraction while elastic, equal yield strain, and equal (isochoric, 2-D) plastic flow after it,
    so every layer stays in uniaxial stress and sigma_yy_avg = sum_i f_i min(E_i d / (1 - nu^2),
    2 sigma_0_i / sqrt(3))."""
    cols = torch.tensor([0, 1, 1, 0, 1, 0, 1, 1], dtype=F64)  # layer of each column: f_stiff = 5/8
    E = (1e4 + 9e4 * cols).expand(1, 8, 8).contiguous()  # the unit square (height 1: strain = d)
    sigma_0 = E * 3e-3
    d = np.arange(1, 21) * 5e-4
    s = stress_displacement_curve(E, torch.full_like(E, 0.3), sigma_0, d)[0].numpy()
    layers = [(1e4, 30.0, 3 / 8), (1e5, 300.0, 5 / 8)]
    expected = sum(f * np.minimum(e * d / (1 - 0.09), 2 * s0 / math.sqrt(3)) for e, s0, f in layers)
    np.testing.assert_allclose(s, expected, rtol=1e-8)
    assert expected[-1] < expected[5] * 2  # the path crossed the yield point


def test_neo_hookean_laminate_on_rollers_scales_the_homogeneous_energy():
    """Vertical layers of E = 1 and 100, nu = 0.3 both, bottom on rollers: the lateral stretch of plane-strain
    uniaxial tension depends on nu only, so the layers deform alike and the energy is the homogeneous one
    (E = 1) times the mean of E."""
    shape = (4, 6)
    cols = torch.tensor([1, 0, 0, 1, 1, 0], dtype=F64)
    h = element_sizes(shape)
    energies = []
    for E in ((1 + 99 * cols).expand(1, *shape), torch.ones(1, *shape, dtype=F64)):
        law = NeoHookean.from_young(E.contiguous(), torch.full((1, *shape), 0.3, dtype=F64))
        path = solve_load_path(law, Tension(shape, "roller"), [0.1, 0.4], h, SolveOptions(), 1, F64, "cpu")
        energies.append([float(law.step(newton.gauss_gradient(u, h), {}).energy.sum()) for u in path.u])
    np.testing.assert_allclose(energies[0], np.array(energies[1]) * float((1 + 99 * cols).mean()), rtol=1e-9)

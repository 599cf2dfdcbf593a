"""Per-sample solve failures: a zero right-hand side, NaN or retried samples with their status, and options
that make no sense refused up front."""

import pytest
import torch

from matdiff.fem import ConvergenceError, SolveOptions, WarmStart, bulk_modulus, homogenized_stiffness
from matdiff.fem.laws import IsotropicOperator, lame
from matdiff.fem.solvers import LinearSystem

# mg PCG at rtol 1e-3 in 8 iterations: the contrast-2 sample 0 converges, the 1e5-contrast sample 1 does not
MISSES_SAMPLE_1 = dict(solver="mg", rtol=1e-3, maxiter=8)


def two_samples(dtype=torch.float64):
    """E (GPa), nu (2, 16, 16): random mixes of 20 and 10 GPa (sample 0) and of 1000 and 0.01 GPa (1)."""
    g = torch.Generator().manual_seed(0)
    E = torch.empty((2, 16, 16), dtype=dtype)
    E[0] = torch.where(torch.rand(16, 16, generator=g) > 0.5, 20.0, 10.0)
    E[1] = torch.where(torch.rand(16, 16, generator=g) > 0.5, 1000.0, 0.01)
    return E, torch.full_like(E, 0.3)


def test_zero_right_hand_side_has_the_zero_solution_at_once():
    lam, mu = lame(*two_samples(), dim=2)
    system = LinearSystem(IsotropicOperator(lam, mu, False), SolveOptions("mg"))
    b = torch.zeros(2, 1, 2, 17, 17, dtype=torch.float64)
    guess = system.mask * torch.rand(b.shape, generator=torch.Generator().manual_seed(1), dtype=b.dtype)
    x, info = system.solve(b, guess)  # a warm start can never meet rtol * ||b|| = 0: it must be dropped
    assert bool(info.converged.all()) and info.iterations == 0 and not bool(x.any())


def test_sample_of_uniform_nu_after_a_warm_start_converges():
    E = two_samples(torch.float32)[0][:1]
    nu = 0.2 + 0.2 * torch.rand(E.shape, generator=torch.Generator().manual_seed(2))
    warm, options = WarmStart(), SolveOptions("mg", rtol=1e-5, maxiter=50)
    bulk_modulus(E, nu.requires_grad_(), warm_start=warm, options=options).sum().backward()
    nu = torch.full_like(E, 0.499)  # constant eps_zz weights: the adjoint right-hand side is exactly zero
    K = bulk_modulus(E, nu.requires_grad_(), warm_start=warm, options=options)
    K.sum().backward()
    assert bool(torch.isfinite(K).all()) and bool(torch.isfinite(nu.grad).all())


def test_a_failing_sample_raises_for_the_batch_by_default():
    with pytest.raises(ConvergenceError, match=r"samples \[1\]"):
        bulk_modulus(*two_samples(), options=SolveOptions(**MISSES_SAMPLE_1))


@pytest.mark.parametrize("quantity", [bulk_modulus, homogenized_stiffness])
def test_a_failing_sample_is_nan_passes_no_gradient_and_spares_the_others(quantity):
    E, nu = two_samples()
    E.requires_grad_()
    value, status = quantity(
        E, nu, options=SolveOptions(**MISSES_SAMPLE_1, on_failure="nan"), return_status=True
    )
    assert status.converged.tolist() == [True, False] and not bool(status.retried.any())
    assert bool(value[1].isnan().all()) and bool(torch.isfinite(value[0]).all())
    assert status.reasons()[0] == "" and "did not converge" in status.reasons()[1]
    torch.where(value.isnan(), 0.0, value).sum().backward()
    alone = E[:1].detach().requires_grad_()
    quantity(alone, nu[:1], options=SolveOptions(**MISSES_SAMPLE_1)).sum().backward()
    assert not bool(E.grad[1].any())
    torch.testing.assert_close(E.grad[:1], alone.grad)


def test_retry_solves_a_failing_float32_sample_again_in_float64():
    E, nu = two_samples()
    E32 = E.float().requires_grad_()
    K, status = bulk_modulus(
        E32, nu.float(), options=SolveOptions(**MISSES_SAMPLE_1, on_failure="retry"), return_status=True
    )
    assert (
        status.retried.tolist() == [False, True] and bool(status.converged.all()) and K.dtype == torch.float32
    )
    K.sum().backward()
    reference = E.requires_grad_()
    K64 = bulk_modulus(reference, nu)
    K64.sum().backward()
    torch.testing.assert_close(K.double(), K64, rtol=1e-3, atol=0)
    torch.testing.assert_close(E32.grad[1].double(), reference.grad[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(rtol=2.0),
        dict(rtol=1.0),
        dict(rtol=0.0),
        dict(rtol=-1e-6),
        dict(rtol=float("nan")),
        dict(maxiter=-1),
        dict(maxiter=2.5),
        dict(batch_size=0),
        dict(on_failure="ignore"),
        dict(solver="cg"),
    ],
)
def test_solve_options_refuse_what_would_give_wrong_or_endless_solves(kwargs):
    with pytest.raises(ValueError):
        SolveOptions(**kwargs)

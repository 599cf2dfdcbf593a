"""One bad sample never ends or poisons a guided batch: it is left out of the step; the record says why."""

import pytest
import torch

from matdiff.guidance import GuidanceConfig, guided_sample, target_bulk_modulus
from matdiff.materials import load_catalogue


def sample(model, objective, method, n=3):
    """Guided samples of the tiny prior, 4 steps (3 guided), deterministic."""
    config = GuidanceConfig(method=method, steps=4, eta=0.0)
    generator = torch.Generator().manual_seed(0)
    return guided_sample(model, objective, n, load_catalogue(), config, generator, progress=False)


@pytest.mark.parametrize("method", ["tfg", "dps"])
def test_a_sample_whose_fem_solve_fails_is_left_out_and_the_others_are_guided(
    tiny_model, method, fem_fails_for_sample_1
):
    out = sample(tiny_model, target_bulk_modulus(250.0), method)
    failures = out.failures()
    assert list(failures) == [1] and "FEM solve did not converge (relative residual 5.0e-01" in failures[1]
    assert "step 0" in failures[1] and bool(torch.isfinite(out.fields).all())
    assert all(torch.isfinite(torch.tensor(out.loss_trace)))  # the mean of the samples still guided


@pytest.mark.parametrize("method", ["tfg", "dps"])
def test_nan_objective_and_nan_gradient_of_one_sample_are_recorded(tiny_model, method):
    def nan_for_sample_0(q):
        return q["E"].flatten(1).mean(1) * torch.tensor([float("nan"), 1.0, 1.0])

    def nan_gradient_for_sample_0(q):  # sqrt at 0: a finite loss whose gradient is NaN
        return (q["E"].flatten(1).mean(1) * torch.tensor([0.0, 1.0, 1.0])).sqrt()

    for objective, why in ((nan_for_sample_0, "objective NaN"), (nan_gradient_for_sample_0, "gradient NaN")):
        unguided = sample(tiny_model, None, method).fields
        out = sample(tiny_model, objective, method)
        failures = out.failures()
        assert list(failures) == [0] and why in failures[0]
        assert bool(torch.isfinite(out.fields).all())
        assert not torch.allclose(out.fields[1:], unguided[1:])  # the other samples were guided

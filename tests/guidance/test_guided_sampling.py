"""Loss-guided sampling on a tiny untrained prior: guidance must move K toward the target."""

import numpy as np
import pytest
import torch

from matdiff.diffusion import DiffusionModel
from matdiff.evaluation import quantity_of_fields
from matdiff.guidance import (
    GuidanceConfig,
    guided_sample,
    make_objective,
    require_particle_model,
    target_bulk_modulus,
)
from matdiff.guidance.rules import clip_per_sample, snap_to_catalogue
from matdiff.materials import load_catalogue


def _mean_abs_error(model, objective, target, method):
    cat = load_catalogue()
    gen = torch.Generator().manual_seed(3)
    config = GuidanceConfig(method=method, steps=12, eta=0.0)
    out = guided_sample(model, objective, 6, cat, config, generator=gen, progress=False)
    K = quantity_of_fields(out.fields, cat)
    return float(np.mean(np.abs(K - target))), out


@pytest.mark.parametrize("method", ["tfg", "dps", "dps-paper"])
def test_guidance_moves_bulk_modulus_toward_target(tiny_model, method):
    target = 250.0
    objective = target_bulk_modulus(target)
    unguided, _ = _mean_abs_error(tiny_model, None, target, method)
    guided, out = _mean_abs_error(tiny_model, objective, target, method)
    assert guided < 0.8 * unguided, (guided, unguided)
    assert len(out.loss_trace) == 11  # every step but the last is guided
    assert out.seconds["fem"] > 0 and "bulk_modulus" in out.quantity_trace


def test_density_term_lowers_density(tiny_model):
    cat = load_catalogue()
    config = GuidanceConfig(steps=10, eta=0.0)
    dens = []
    for weight in (0.0, 1e6):
        objective = (
            make_objective("bulk+density", target=100.0, density_weight=weight)
            if weight
            else make_objective("bulk", target=100.0)
        )
        out = guided_sample(
            tiny_model, objective, 4, cat, config, generator=torch.Generator().manual_seed(1), progress=False
        )
        dens.append(float(cat.denormalize(out.fields.movedim(1, -1))[..., 2].mean()))
    assert dens[1] < dens[0]


def test_custom_callable_objective_and_project_variant(tiny_model):
    cat = load_catalogue()
    calls = []

    def low_stiffness(q):
        calls.append(1)
        return q["E"].flatten(1).mean(1)  # any differentiable callable of the quantities

    config = GuidanceConfig(steps=6, eta=0.0, snap_every=2)
    out = guided_sample(
        tiny_model, low_stiffness, 2, cat, config, generator=torch.Generator().manual_seed(0), progress=False
    )
    assert out.fields.shape == (2, 3, 8, 8)
    assert len(calls) == 3  # steps 0, 2, 4 guided; 1, 3 projected; the last step (5) neither
    snapped = snap_to_catalogue(out.fields, cat)
    rows = cat.nearest(snapped.movedim(1, -1))
    torch.testing.assert_close(
        snapped.movedim(1, -1), torch.from_numpy(np.array(cat.normalized_props)).to(snapped.dtype)[rows]
    )


def test_clip_per_sample_caps_only_large_norms():
    g = torch.stack([torch.full((2, 2), 10.0), torch.full((2, 2), 0.1)])
    clipped = clip_per_sample(g, 2.5)
    assert clipped[0].norm() == pytest.approx(2.5)
    torch.testing.assert_close(clipped[1], g[1])


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), float("inf")])
def test_bad_targets_are_rejected(bad):
    with pytest.raises(ValueError, match="target bulk modulus"):
        target_bulk_modulus(bad)


def test_unknown_objective_and_method_are_rejected():
    with pytest.raises(ValueError, match="unknown objective"):
        make_objective("shear", target=10.0)
    with pytest.raises(ValueError, match="unknown guidance method"):
        GuidanceConfig(method="cfg")


def test_model_without_catalogue_is_rejected(tiny_model):
    config = dict(tiny_model.config, catalogue_hash=None)
    with pytest.raises(ValueError, match="catalogue"):
        require_particle_model(DiffusionModel(tiny_model.unet, config))


def test_target_objective_names_quantity_and_target_once():
    from matdiff.guidance import Quantities, TargetObjective
    from matdiff.materials import Properties

    E = torch.full((2, 4, 4), 100.0, dtype=torch.float64)
    props = Properties(E, torch.full_like(E, 0.25), torch.full_like(E, 3.0))
    q = Quantities(props)
    assert "bulk_modulus" in q.available() and list(q.computed()) == ["density"]  # no solve yet
    objective = TargetObjective("bulk_modulus", 50.0, density_weight=2.0)
    K = 100.0 / (3 * (1 - 2 * 0.25))
    torch.testing.assert_close(objective(q), torch.full((2,), (K - 50.0) ** 2 + 2.0 * 3.0, dtype=E.dtype))
    assert "bulk_modulus" in q.computed() and objective.name == "bulk_modulus=50.0+2*density"
    np.testing.assert_allclose(objective.relative_error(np.array([50.0, 75.0])), [0.0, 0.5])
    tensor = TargetObjective("homogenized_stiffness", np.eye(3).tolist())
    C = q["homogenized_stiffness"]
    torch.testing.assert_close(tensor(q), ((C - torch.eye(3, dtype=C.dtype)) ** 2).sum((1, 2)))
    with pytest.raises(ValueError, match="unknown quantity"):
        TargetObjective("shear_modulus", 1.0)
    with pytest.raises(KeyError, match="unknown quantity"):
        q["toughness"]


def test_a_rule_steers_the_one_ddim_loop(tiny_model):
    from matdiff.diffusion.sampling import PlainRule, ddim_loop, ddim_steps

    class Shift(PlainRule):
        def predict(self, model, x_t, step):
            x0, eps, _ = super().predict(model, x_t, step)
            return x0, eps, None if step.last else torch.full_like(x_t, -0.01)

    steps = ddim_steps(tiny_model.scheduler(), 5)
    assert [s.t for s in steps][-1] == 199 and steps[-1].last and float(steps[-1].a_prev) == 1.0
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = ddim_loop(tiny_model, x, steps, 0.0, PlainRule())
    shifted = ddim_loop(tiny_model, x, steps, 0.0, Shift())
    assert float((shifted - plain).mean()) > 0
    torch.testing.assert_close(plain, tiny_model.sample(2, 5, generator=torch.Generator().manual_seed(0)))


def test_paper_dps_scales_the_x0_gradient_per_channel_before_the_network(tiny_model):
    """dps-paper's shift is J^T (s * g0): g0 the x0-gradient of |K - K*|, s = (0.5, 0.02, 1) per channel,
    J the network's Jacobian dx0/dx_t, computed here with torch.func.vjp apart from the rule."""
    import functools

    from matdiff.diffusion.sampling import ddim_steps
    from matdiff.guidance import make_rule
    from matdiff.guidance.objectives import Quantities
    from matdiff.materials import catalogue_properties

    cat = load_catalogue()
    objective = target_bulk_modulus(150.0)
    step = ddim_steps(tiny_model.scheduler(), 10)[3]
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    shifts = {}
    for method in ("dps", "dps-paper"):
        rule = make_rule(objective, cat, GuidanceConfig(method=method))
        shifts[method] = rule.predict(tiny_model, x, step)[2]
    x0, pullback = torch.func.vjp(lambda v: tiny_model.predict(v, step.t, clip=True)[0], x)
    leaf = x0.detach().requires_grad_(True)
    properties = functools.partial(catalogue_properties, catalogue=cat)
    residual = objective(Quantities(properties(leaf), leaf)).sqrt().sum()
    (g0,) = torch.autograd.grad(residual, leaf)
    scale = torch.tensor([0.5, 0.02, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(shifts["dps"], pullback(g0)[0], rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(shifts["dps-paper"], pullback(scale * g0)[0], rtol=1e-3, atol=1e-6)
    assert not torch.allclose(shifts["dps"], shifts["dps-paper"])
    with pytest.raises(ValueError, match="dps-paper"):
        GuidanceConfig(method="dps-papers")

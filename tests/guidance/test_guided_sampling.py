"""Loss-guided sampling on a tiny untrained prior: guidance must move K toward the target."""

import numpy as np
import pytest
import torch

from matdiff.diffusion import DiffusionModel, UNet, get_preset
from matdiff.evaluation import bulk_modulus_of_fields
from matdiff.guidance import (
    GuidanceConfig,
    guided_sample,
    make_objective,
    require_particle_model,
    target_bulk_modulus,
)
from matdiff.guidance.sampler import clip_per_sample, snap_to_catalogue
from matdiff.materials import load_catalogue


@pytest.fixture(scope="module")
def tiny_model() -> DiffusionModel:
    torch.manual_seed(0)
    preset = get_preset("tiny")
    config = {
        "unet": preset["unet"],
        "scheduler": preset["scheduler"],
        "prediction_type": preset["scheduler"]["prediction_type"],
        "dim": 2,
        "size": 8,
        "channels": 3,
        "catalogue_hash": load_catalogue().hash,
    }
    return DiffusionModel(UNet(**preset["unet"]), config)


def _mean_abs_error(model, objective, target, method):
    cat = load_catalogue()
    gen = torch.Generator().manual_seed(3)
    config = GuidanceConfig(method=method, steps=12, eta=0.0)
    out = guided_sample(model, objective, 6, cat, config, generator=gen, progress=False)
    K = bulk_modulus_of_fields(out.fields, cat)
    return float(np.mean(np.abs(K - target))), out


@pytest.mark.parametrize("method", ["tfg", "dps"])
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

    config = GuidanceConfig(steps=6, eta=0.0, project_every=2)
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

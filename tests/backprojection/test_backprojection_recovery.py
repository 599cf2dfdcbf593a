"""Backprojection recovers the design parameters of generated microstructures and flags invalid fields."""

import math

import numpy as np
import pytest
import torch

from matdiff.backprojection import backproject
from matdiff.materials import Catalogue, parse_catalogue
from matdiff.microstructure import ParticleDesign, realize_particles, sample_particles


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """A synthetic 60-material catalogue spread over seed A's property box."""
    rng = np.random.default_rng(7)
    props = rng.uniform([1.0, 0.05, 0.5], [450.0, 0.48, 9.5], size=(60, 3))
    rows = [f"m{i},test,{E:.3f},{nu:.4f},{rho:.3f},synthetic" for i, (E, nu, rho) in enumerate(props)]
    return parse_catalogue("\n".join(["name,class,E_GPa,nu,rho_g_cm3,source", *rows]).encode())


def assert_recovered(result, params, size: int) -> None:
    """Materials and volume fraction exact, radius within half an element, particle count exact."""
    assert result.valid, result.reason
    design, truth = result.design, params.design
    assert (design.matrix, design.particle) == (truth.matrix, truth.particle)
    assert design.volume_fraction == params.vf_realized
    assert abs(design.radius - truth.radius) < 0.5 / size
    assert result.n_particles == params.n_particles
    assert result.material_distances.max() < 1e-6
    assert result.fit_variance < 1e-3


@pytest.mark.parametrize("dim, size, n", [(2, 64, 12), (3, 32, 3)])
def test_recovers_generated_samples(catalogue: Catalogue, dim: int, size: int, n: int) -> None:
    rng = np.random.default_rng(dim)
    checked = 0
    while checked < n:
        params, field = sample_particles(dim, size, rng, catalogue)
        if params.design.matrix == params.design.particle:
            continue
        result = backproject(field, catalogue)
        assert_recovered(result, params, size)
        assert result.mask.mean() == params.vf_realized
        expected = catalogue.props[[params.design.matrix, params.design.particle]]
        np.testing.assert_allclose(result.means_physical, expected, rtol=1e-5)
        checked += 1


@pytest.mark.parametrize("volume_fraction", [0.1, 0.45])
def test_label_swap_picks_the_particle_label(catalogue: Catalogue, volume_fraction: float) -> None:
    for matrix, particle in [(3, 11), (11, 3)]:
        design = ParticleDesign(matrix, particle, 0.09, volume_fraction)
        params, field = realize_particles(2, 64, design, np.random.default_rng(5), catalogue)
        assert_recovered(backproject(field, catalogue), params, 64)


def test_noisy_field_keeps_materials(catalogue: Catalogue) -> None:
    design = ParticleDesign(4, 20, 0.12, 0.3)
    params, field = realize_particles(2, 64, design, np.random.default_rng(1), catalogue)
    noisy = field + np.random.default_rng(2).normal(0.0, 0.02, field.shape).astype(np.float32)
    result = backproject(noisy, catalogue)
    assert result.valid, result.reason
    assert (result.design.matrix, result.design.particle) == (design.matrix, design.particle)
    assert result.fit_variance == pytest.approx(2 * 0.02**2, rel=0.2)


def test_torch_matches_numpy(catalogue: Catalogue) -> None:
    rng = np.random.default_rng(3)
    fields = np.stack([sample_particles(2, 32, rng, catalogue)[1] for _ in range(2)])
    for field in fields:
        result = backproject(torch.from_numpy(field), catalogue)
        single = backproject(field, catalogue)
        assert result.design == single.design


def test_uniform_field_is_invalid(catalogue: Catalogue) -> None:
    field = np.broadcast_to(catalogue.normalize(catalogue.props[5])[:, None, None], (3, 32, 32))
    result = backproject(field, catalogue)
    assert not result.valid
    assert "single material" in result.reason
    assert result.rows.tolist() == [5, 5]
    assert result.design is None and math.isnan(result.radius_variance)
    assert not result.mask.any()


def test_half_plane_is_invalid_for_both_labels(catalogue: Catalogue) -> None:
    values = catalogue.normalize(catalogue.props[[1, 2]])
    field = np.where(np.arange(64)[None, None, :] < 32, values[0][:, None, None], values[1][:, None, None])
    result = backproject(np.broadcast_to(field, (3, 64, 64)), catalogue)
    assert not result.valid
    assert "label 0 as particle" in result.reason and "label 1 as particle" in result.reason


@pytest.mark.parametrize(
    "field, message",
    [
        (np.zeros((2, 8, 8)), "channels"),
        (np.zeros((3, 8)), "channels"),
        (np.zeros((3, 8, 6)), "square"),
        (np.full((3, 8, 8), np.nan), "NaN"),
    ],
)
def test_malformed_field_raises(catalogue: Catalogue, field: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backproject(field, catalogue)

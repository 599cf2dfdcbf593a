"""Invariants of the matrix/particle generator (SPEC 2): placement, counts, volume fractions, errors."""

import math

import numpy as np
import pytest

from matdiff.materials import parse_catalogue
from matdiff.microstructure import (
    ParticleDesign,
    ball_volume,
    element_centres,
    field_from_mask,
    packing,
    particle_count,
    particle_mask,
    realize_particles,
    sample_material,
    sample_particles,
)


def small_catalogue():
    """A synthetic 40-material catalogue spread over many chunks."""
    rng = np.random.default_rng(0)
    values = rng.uniform([1, 0.05, 0.5], [450, 0.45, 9.5], size=(40, 3))
    lines = ["name,class,E_GPa,nu,rho_g_cm3,source"]
    lines += [f"m{i},test,{E:.3f},{nu:.4f},{rho:.3f},synthetic" for i, (E, nu, rho) in enumerate(values)]
    return parse_catalogue("\n".join(lines).encode())


@pytest.fixture(scope="module")
def catalogue():
    return small_catalogue()


def surface(radius: float, dim: int) -> float:
    """Perimeter (2D) or surface area (3D) of a ball."""
    return 2 * np.pi * radius if dim == 2 else 4 * np.pi * radius**2


@pytest.mark.parametrize(("dim", "size", "count"), [(2, 64, 40), (3, 32, 12)])
def test_generator_invariants(catalogue, dim, size, count):
    for i in range(count):
        params, field = sample_particles(dim, size, np.random.default_rng([7, i]), catalogue)
        r, n, centres = params.design.radius, params.n_particles, params.centres
        assert field.shape == (3,) + (size,) * dim and field.dtype == np.float32
        assert np.abs(field).max() <= 1 + 1e-6
        # count rule: n = round(vf / V(r)), at least 1
        vf = params.design.volume_fraction
        assert n == max(1, math.floor(vf / ball_volume(r, dim) + 0.5)) == len(centres)
        # inside the box, no overlaps
        assert centres.min() >= r - 1e-12 and centres.max() <= 1 - r + 1e-12
        distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(n, 1)]
        assert (distances >= 2 * r - 1e-12).all()
        # realized vf: elements in a shell of width sqrt(dim) h around the surfaces can differ
        tolerance = n * surface(r, dim) * math.sqrt(dim) / size
        assert abs(params.vf_realized - n * ball_volume(r, dim)) <= tolerance
        assert abs(vf - n * ball_volume(r, dim)) <= ball_volume(r, dim) / 2 + 1e-12
        # the field holds exactly the two materials, arranged by the mask
        mask = particle_mask(centres, r, size)
        materials = params.design.matrix, params.design.particle
        np.testing.assert_array_equal(field, field_from_mask(mask, *materials, catalogue))
        assert params.vf_realized == mask.mean()


def test_mask_is_elements_with_centre_inside(catalogue):
    centres = np.array([[0.3, 0.6], [0.7, 0.25]])
    size, r = 20, 0.18
    y, x = np.meshgrid(element_centres(size), element_centres(size), indexing="ij")
    inside = (y[None] - centres[:, 0, None, None]) ** 2 + (x[None] - centres[:, 1, None, None]) ** 2 <= r**2
    np.testing.assert_array_equal(particle_mask(centres, r, size), inside.any(axis=0))
    # axis order (H, W) = (y, x): centre coordinate 0 indexes rows
    assert np.argwhere(particle_mask(np.array([[0.15, 0.85]]), 0.05, 10)).tolist() == [[1, 8]]


def test_same_seed_same_sample(catalogue):
    for dim, size in ((2, 32), (3, 16)):
        a_params, a_field = sample_particles(dim, size, np.random.default_rng(3), catalogue)
        b_params, b_field = sample_particles(dim, size, np.random.default_rng(3), catalogue)
        _, c_field = sample_particles(dim, size, np.random.default_rng(4), catalogue)
        np.testing.assert_array_equal(a_field, b_field)
        np.testing.assert_array_equal(a_params.centres, b_params.centres)
        assert not np.array_equal(a_field, c_field)


def test_stochastic_count_rounding(catalogue):
    radius = 0.1
    vf = 3.2 * ball_volume(radius, 2)
    rng = np.random.default_rng(0)
    counts = np.array([particle_count(vf, radius, 2, rng) for _ in range(4000)])
    assert set(np.unique(counts)) == {3, 4}
    assert abs((counts == 4).mean() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 4000)
    assert particle_count(vf, radius, 2) == 3
    drawn = {
        realize_particles(2, 16, ParticleDesign(0, 1, radius, vf), rng, catalogue, stochastic_count=True)[
            0
        ].n_particles
        for _ in range(30)
    }
    assert drawn == {3, 4}


def test_materials_uniform_over_nonempty_chunks(catalogue):
    rng = np.random.default_rng(1)
    rows = np.array([sample_material(catalogue, rng) for _ in range(6000)])
    chunks = catalogue.chunks[rows]
    frequencies = np.array([(chunks == c).mean() for c in catalogue.nonempty_chunks])
    expected = 1 / len(catalogue.nonempty_chunks)
    assert np.abs(frequencies - expected).max() < 5 * math.sqrt(expected / 6000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 4}, "dim must be 2 or 3"),
        ({"size": 0}, "size must be a positive integer"),
        ({"radius": -0.1}, "radius must be positive"),
        ({"radius": 0.0}, "radius must be positive"),
        ({"volume_fraction": 0.0}, "volume fraction must lie in"),
        ({"volume_fraction": 0.9}, "random-packing limit"),
        ({"radius": 0.6, "volume_fraction": 0.1}, "does not fit"),
        ({"radius": 0.3, "volume_fraction": 0.5}, "cannot fit"),
        ({"matrix": 40}, "matrix material 40 is not a catalogue row"),
        ({"particle": -1}, "particle material -1 is not a catalogue row"),
    ],
)
def test_bad_inputs_raise_clear_errors(catalogue, kwargs, message):
    args = {"dim": 2, "size": 16, "matrix": 0, "particle": 1, "radius": 0.1, "volume_fraction": 0.3} | kwargs
    design = ParticleDesign(*(args.pop(k) for k in ("matrix", "particle", "radius", "volume_fraction")))
    with pytest.raises(ValueError, match=message):
        realize_particles(design=design, rng=np.random.default_rng(0), catalogue=catalogue, **args)


def test_unplaceable_packing_gives_up_with_value_error(monkeypatch):
    monkeypatch.setattr(packing, "MAX_UPDATES", 20)
    monkeypatch.setattr(packing, "MAX_RESAMPLES", 2)
    with pytest.raises(ValueError, match="could not place 3 particles"):
        packing.place_particles(3, 0.3, 3, np.random.default_rng(0))

"""Particle matching in binary masks: skeleton centres, EDT radii, dominance, border and size limits."""

import numpy as np
import pytest

from matdiff.backprojection import NoParticleMatch, match_particles
from matdiff.backprojection.particles import border_share, undominated


def disc_mask(centres: list[tuple[float, ...]], radius: float, size: int) -> np.ndarray:
    """Mask (size,)*dim of element centres (i + 0.5) / size within radius of any centre (unit lengths)."""
    axes = np.meshgrid(*[(np.arange(size) + 0.5) / size] * len(centres[0]), indexing="ij")
    grid = np.stack(axes, axis=-1)
    return np.any([np.linalg.norm(grid - np.array(c), axis=-1) <= radius for c in centres], axis=0)


@pytest.mark.parametrize("radius", [0.08, 0.13, 0.19])
def test_single_disc_radius_within_half_element(radius: float) -> None:
    match = match_particles(disc_mask([(0.47, 0.52)], radius, 64))
    assert len(match.radii) == 1
    assert abs(match.radius - radius) < 0.5 / 64


def test_touching_discs_count_as_two() -> None:
    radius = 0.12
    mask = disc_mask([(0.5, 0.3), (0.5, 0.3 + 2 * radius)], radius, 64)
    match = match_particles(mask)
    assert len(match.radii) == 2
    assert abs(match.radius - radius) < 0.5 / 64


def test_small_sphere_is_matched_in_3d() -> None:
    radius = 4.6 / 32
    match = match_particles(disc_mask([(0.5, 0.45, 0.55)], radius, 32))
    assert len(match.radii) == 1
    assert abs(match.radius - radius) < 0.5 / 32


def test_dominated_point_is_dropped() -> None:
    points = np.array([[10, 10], [10, 13], [10, 30]])
    distances = np.array([5.0, 2.0, 2.0])
    assert undominated(points, distances, distances).tolist() == [True, False, True]


def test_border_share_counts_edge_elements() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[0] = True
    assert border_share(mask) == pytest.approx(4 / 12)


def test_matrix_label_is_rejected_at_the_border() -> None:
    mask = ~disc_mask([(0.5, 0.5)], 0.15, 64)
    with pytest.raises(NoParticleMatch, match="border"):
        match_particles(mask)


def test_particle_below_min_radius_is_rejected() -> None:
    with pytest.raises(NoParticleMatch, match="min_radius"):
        match_particles(disc_mask([(0.5, 0.5)], 2.5 / 64, 64))


def test_blob_above_max_radius_is_rejected() -> None:
    with pytest.raises(NoParticleMatch, match="max_radius"):
        match_particles(disc_mask([(0.5, 0.5)], 0.3, 64))

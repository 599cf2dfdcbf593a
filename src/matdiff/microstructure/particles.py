"""Matrix/particle microstructures (SPEC 2): equal non-overlapping circles (2D) or spheres (3D) in a matrix.

Lengths are in unit-box lengths. Grids have `size` elements per axis in axis order (H, W) = (y, x) or
(D, H, W) = (z, y, x); element i along an axis has its centre at (i + 0.5) / size, and `centres[:, k]` is
the coordinate along grid axis k. An element belongs to a particle if its centre lies inside (or on) one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from matdiff.materials import Catalogue, load_catalogue
from matdiff.microstructure.packing import ball_volume, check_packable, place_particles

VOLUME_FRACTION_RANGE = {2: (0.05, 0.5), 3: (0.05, 0.35)}
"""Uniform range of the target particle volume fraction (seed A's code; 3D **chosen**)."""
DIAMETER_RANGE = {2: (0.15, 0.35), 3: (0.2, 0.4)}
"""Uniform particle diameter range, unit lengths (2D: seed A app. B, radii 0.075-0.175; 3D **chosen**)."""


@dataclass(frozen=True)
class ParticleDesign:
    """A matrix/particle design (2D or 3D): what every design method proposes and re-evaluation realizes.

    matrix, particle: catalogue rows; radius: particle radius in unit-box lengths; volume_fraction: target
    share of particle material (the particle count follows from it, SPEC 2).
    """

    matrix: int
    particle: int
    radius: float
    volume_fraction: float

    def density(self, catalogue: Catalogue) -> float:
        """Rule-of-mixtures density (g/cm^3) at the target volume fraction."""
        vf = self.volume_fraction
        return float((1 - vf) * catalogue.rho[self.matrix] + vf * catalogue.rho[self.particle])


@dataclass(frozen=True)
class ParticleRealization:
    """One random microstructure of a design: realized volume fraction, particle count, centres (n, dim)."""

    design: ParticleDesign
    vf_realized: float
    n_particles: int
    centres: np.ndarray

    def record(self) -> dict[str, float | int]:
        """Scalar columns of a dataset row: matrix, particle, radius, vf_target, vf_realized, n_particles."""
        d = self.design
        return {
            "matrix": d.matrix,
            "particle": d.particle,
            "radius": d.radius,
            "vf_target": d.volume_fraction,
            "vf_realized": self.vf_realized,
            "n_particles": self.n_particles,
        }


def check_dim(dim: int) -> None:
    """Raise ValueError unless dim is 2 or 3."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim!r}")


def check_size(size: int) -> None:
    """Raise ValueError unless size (elements per axis) is a positive integer."""
    if not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive integer (elements per axis), got {size!r}")


def check_design(radius: float, volume_fraction: float) -> None:
    """Raise ValueError unless 0 < radius and 0 < volume_fraction <= 1, both finite."""
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be positive and finite (unit-box lengths), got {radius!r}")
    if not (math.isfinite(volume_fraction) and 0 < volume_fraction <= 1):
        raise ValueError(f"volume fraction must lie in (0, 1], got {volume_fraction!r}")


def check_material(row: int, catalogue: Catalogue, role: str) -> None:
    """Raise ValueError unless row is an integer index into the catalogue."""
    if not isinstance(row, int | np.integer) or not 0 <= row < len(catalogue):
        raise ValueError(f"{role} material {row!r} is not a catalogue row (0 to {len(catalogue) - 1})")


def expected_count(volume_fraction: float, radius: float, dim: int) -> float:
    """Particle count vf / V(r) before rounding (unit box)."""
    return volume_fraction / ball_volume(radius, dim)


def particle_count(
    volume_fraction: float, radius: float, dim: int, rng: np.random.Generator | None = None
) -> int:
    """Particles for a target volume fraction, at least 1: rounded half up, or stochastically given rng.

    Stochastic rounding of x gives floor(x) + 1 with probability x - floor(x) (3.2 -> 4 w.p. 0.2).
    """
    expected = expected_count(volume_fraction, radius, dim)
    if rng is None:
        count = math.floor(expected + 0.5)
    else:
        count = math.floor(expected) + int(rng.random() < expected - math.floor(expected))
    return max(count, 1)


def element_centres(size: int) -> np.ndarray:
    """Element centre coordinates (size,) along one axis, (i + 0.5) / size."""
    return (np.arange(size) + 0.5) / size


def along_axis(values: np.ndarray, axis: int, dim: int) -> np.ndarray:
    """View (n, size) of per-axis values as (n, 1, .., size, .., 1) broadcasting along grid `axis`."""
    shape = [len(values)] + [1] * dim
    shape[axis + 1] = values.shape[1]
    return values.reshape(shape)


def particle_mask(centres: np.ndarray, radius: float, size: int) -> np.ndarray:
    """Bool mask (size,)*dim of elements whose centre lies within radius of a centre (n, dim)."""
    squared = (element_centres(size)[None, None, :] - centres[:, :, None]) ** 2
    distance2 = sum(along_axis(squared[:, k], k, centres.shape[1]) for k in range(centres.shape[1]))
    return (distance2 <= radius**2).any(axis=0)


def field_from_mask(
    mask: np.ndarray, matrix: int, particle: int, catalogue: Catalogue | None = None
) -> np.ndarray:
    """Normalized float32 field (3, *mask.shape), channels (E, nu, rho): particle where mask, else matrix."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    check_material(matrix, catalogue, "matrix")
    check_material(particle, catalogue, "particle")
    values = catalogue.normalize(catalogue.props[[matrix, particle]]).astype(np.float32)
    shape = (3,) + (1,) * mask.ndim
    return np.where(mask, values[1].reshape(shape), values[0].reshape(shape))


def max_particles(dim: int) -> int:
    """Largest particle count `sample_particles` can draw (highest volume fraction, smallest diameter)."""
    return particle_count(VOLUME_FRACTION_RANGE[dim][1], DIAMETER_RANGE[dim][0] / 2, dim)


def sample_material(catalogue: Catalogue, rng: np.random.Generator) -> int:
    """Catalogue row: a uniformly chosen non-empty chunk, then a uniformly chosen material in it."""
    chunk = rng.choice(catalogue.nonempty_chunks)
    return int(rng.choice(np.flatnonzero(catalogue.chunks == chunk)))


def realize_particles(
    dim: int,
    size: int,
    design: ParticleDesign,
    rng: np.random.Generator,
    catalogue: Catalogue | None = None,
    stochastic_count: bool = False,
) -> tuple[ParticleRealization, np.ndarray]:
    """A fresh random microstructure of ``design`` -> (realization, field (3, *(size,)*dim)).

    ``stochastic_count`` rounds the particle count stochastically (re-evaluation, SPEC 6); otherwise half up.
    Raises ValueError for a bad design or one whose particles cannot be packed.
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    check_dim(dim)
    check_size(size)
    check_design(design.radius, design.volume_fraction)
    check_material(design.matrix, catalogue, "matrix")
    check_material(design.particle, catalogue, "particle")
    radius, vf = design.radius, design.volume_fraction
    n = particle_count(vf, radius, dim, rng if stochastic_count else None)
    most = max(math.ceil(expected_count(vf, radius, dim)), 1) if stochastic_count else n
    check_packable(most, radius, dim)
    centres = place_particles(n, radius, dim, rng)
    mask = particle_mask(centres, radius, size)
    realization = ParticleRealization(design, vf_realized=float(mask.mean()), n_particles=n, centres=centres)
    return realization, field_from_mask(mask, design.matrix, design.particle, catalogue)


def sample_design(dim: int, rng: np.random.Generator, catalogue: Catalogue | None = None) -> ParticleDesign:
    """A design from seed A's distribution (SPEC 2): materials by chunk, uniform volume fraction, diameter."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    check_dim(dim)
    matrix = sample_material(catalogue, rng)
    particle = sample_material(catalogue, rng)
    volume_fraction = rng.uniform(*VOLUME_FRACTION_RANGE[dim])
    radius = rng.uniform(*DIAMETER_RANGE[dim]) / 2
    return ParticleDesign(matrix, particle, float(radius), float(volume_fraction))


def sample_particles(
    dim: int, size: int, rng: np.random.Generator, catalogue: Catalogue | None = None
) -> tuple[ParticleRealization, np.ndarray]:
    """A random microstructure of seed A's distribution (SPEC 2): (realization, field (3, *(size,)*dim))."""
    catalogue = load_catalogue() if catalogue is None else catalogue
    return realize_particles(dim, size, sample_design(dim, rng, catalogue), rng, catalogue)

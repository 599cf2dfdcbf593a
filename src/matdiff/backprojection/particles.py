"""Equal circles (2D) or spheres (3D) in a binary particle mask: skeleton centres, EDT radii.

Seed A sec. 5.3 and app. B. For a candidate particle mask: take the Lee skeleton (Lee et al., 1994) and the
Euclidean distance transform (EDT) of the mask, so that every candidate centre carries the distance d to
the nearest background element; drop candidates too small to be a particle; reject the mask if one is too
large; drop every candidate dominated by a larger one, i.e. lying inside that one's particle; group the
survivors into particles. Lengths are in elements (pixels/voxels) inside this module's helpers and in
unit-cell lengths (element size h = 1/size) in `ParticleMatch`.

Half-pixel convention (**chosen**): `distance_transform_edt` measures from an element centre to the nearest
background element centre. For a clean disc of radius R elements the largest such distance lies on average
0.24 px (2D, 64^2) and 0.39 px (3D, 32^3) *inside* R: the best element centre is off the disc centre by
about 0.4 px, which outweighs the half gap to the first outside centre. We therefore report
radius = (d + EDT_OFFSET_PX[dim]) / size, with offsets measured on random clean discs/spheres of seed A's
radius ranges (seed A's code uses d / size, biased low by about 0.25 to 0.4 element).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

MIN_RADIUS = 0.075
"""Smallest particle radius in unit lengths; smaller skeleton points are dropped (seed A: 0.15/2)."""
MAX_RADIUS = 0.2
"""Largest particle radius in unit lengths; a larger skeleton point rejects a label (seed A: 0.4/2)."""
RADIUS_TOLERANCE_PX = 1.0
"""Slack in elements on the radius limits and the dominance reach, for discretization (**chosen**)."""
MAX_BORDER_SHARE = 0.5
"""Largest share of border elements a particle label may cover (seed A's code); matrix labels cover most."""
EDT_OFFSET_PX = {2: 0.25, 3: 0.4}
"""Elements added to the skeleton EDT value to get an unbiased radius (see the module docstring)."""


class NoParticleMatch(ValueError):
    """A particle mask in which no consistent set of circles/spheres can be matched; the message says why."""


@dataclass(frozen=True)
class ParticleMatch:
    """Particles matched in a mask: one radius per particle (unit lengths) and the matched skeleton points."""

    radii: np.ndarray
    """(n_particles,) float64 radius of every matched particle, unit-cell lengths."""
    n_points: int
    """Skeleton points left after the size and dominance filters (several may share one particle)."""

    @property
    def radius(self) -> float:
        """Mean matched radius, unit-cell lengths."""
        return float(self.radii.mean())

    @property
    def radius_variance(self) -> float:
        """Variance of the matched radii, squared unit-cell lengths."""
        return float(self.radii.var())


def border_share(mask: np.ndarray) -> float:
    """Share of the elements on the grid border (faces in 3D) that are True in `mask` (*spatial)."""
    interior = np.zeros(mask.shape, dtype=bool)
    interior[(slice(1, -1),) * mask.ndim] = True
    return float(mask[~interior].mean())


def centre_candidates(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate centres (K, dim) int and their EDT distances (K,) in elements, from a mask (*spatial).

    Candidates are the Lee skeleton points plus the local maxima of the EDT (over the 3^dim
    neighbourhood): Lee thinning can erase a small sphere entirely (seen with scikit-image 0.26 at radius
    4 to 5 voxels) or miss the element nearest a particle's centre, whose EDT value is the radius estimate.
    """
    distance = ndimage.distance_transform_edt(mask)
    local_maxima = mask & (distance == ndimage.maximum_filter(distance, size=3, mode="constant"))
    points = np.argwhere(skeletonize(mask, method="lee").astype(bool) | local_maxima)
    return points, distance[tuple(points.T)]


def undominated(points: np.ndarray, distances: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Mask (K,) of points q not dominated: no point p with d_p > d_q lies closer to q than reach_p.

    points: (K, dim) element indices; distances: (K,) EDT values and reach (K,) in elements. Seed A's
    reach is d_p; `match_particles` uses the particle radius plus `RADIUS_TOLERANCE_PX`, which also drops
    the neck points where two discretized particles touch. Equal distances never dominate each other, so
    a particle may keep several centre points of the same radius.
    """
    if len(points) < 2:
        return np.ones(len(points), dtype=bool)
    pairs = cKDTree(points).query_pairs(r=float(reach.max()), output_type="ndarray")
    first, second = pairs[:, 0], pairs[:, 1]
    gap = np.linalg.norm(points[first] - points[second], axis=1)
    larger = np.where(distances[first] >= distances[second], first, second)
    smaller = np.where(distances[first] >= distances[second], second, first)
    dominating = (gap < reach[larger]) & (distances[larger] > distances[smaller])
    keep = np.ones(len(points), dtype=bool)
    keep[smaller[dominating]] = False
    return keep


def count_particles(points: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, int]:
    """Particle id (K,) of every undominated point and the particle count.

    Two points belong to one particle when they lie closer than their (equal) distance; after
    `undominated`, points closer than their distance always have equal distances.
    """
    pairs = cKDTree(points).query_pairs(r=float(distances.max()), output_type="ndarray")
    gap = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    close = pairs[gap < np.minimum(distances[pairs[:, 0]], distances[pairs[:, 1]])]
    graph = sparse.coo_matrix((np.ones(len(close)), (close[:, 0], close[:, 1])), shape=(len(points),) * 2)
    n_particles, ids = sparse.csgraph.connected_components(graph, directed=False)
    return ids, n_particles


def match_particles(
    mask: np.ndarray, min_radius: float = MIN_RADIUS, max_radius: float = MAX_RADIUS
) -> ParticleMatch:
    """Match equal circles/spheres to the True elements of `mask` (*spatial), radii in unit lengths.

    Raises NoParticleMatch when the label covers more than `MAX_BORDER_SHARE` of the border, when no
    skeleton point reaches `min_radius`, or when one exceeds `max_radius` (both with
    `RADIUS_TOLERANCE_PX` slack).
    """
    size = mask.shape[-1]
    share = border_share(mask)
    if share > MAX_BORDER_SHARE:
        raise NoParticleMatch(f"covers {share:.0%} of the border (> {MAX_BORDER_SHARE:.0%})")
    points, distances = centre_candidates(mask)
    radii_px = distances + EDT_OFFSET_PX[mask.ndim]
    large_enough = radii_px >= min_radius * size - RADIUS_TOLERANCE_PX
    if not large_enough.any():
        raise NoParticleMatch(f"no skeleton point reaches min_radius {min_radius:g}")
    if radii_px.max() > max_radius * size + RADIUS_TOLERANCE_PX:
        largest = radii_px.max() / size
        raise NoParticleMatch(f"a skeleton radius {largest:.3f} exceeds max_radius {max_radius:g}")
    points, distances, radii_px = points[large_enough], distances[large_enough], radii_px[large_enough]
    keep = undominated(points, distances, radii_px + RADIUS_TOLERANCE_PX)
    ids, n_particles = count_particles(points[keep], distances[keep])
    particle_radii = ndimage.maximum(radii_px[keep] / size, ids, index=np.arange(n_particles))
    return ParticleMatch(radii=np.asarray(particle_radii, dtype=np.float64), n_points=int(keep.sum()))

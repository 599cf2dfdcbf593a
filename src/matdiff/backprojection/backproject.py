"""Backprojection of a normalized field (3, *spatial) to matrix/particle design parameters (SPEC 6).

Seed A sec. 5.3 and app. B: fit a 2-component spherical Gaussian mixture to the element values (E, nu, rho
in normalized space); its means are the two materials and the sum of its variances is the material-fitting
variance. Every element takes the label of the nearer mean. Each label in turn is tried as the particle
label (`particles.match_particles`); the label whose matched radii vary least wins (ties: the label with
fewer elements). Radius = mean matched radius, volume fraction = share of particle elements, materials =
nearest catalogue entries of the two means. When no label matches, the result says so (`valid=False`
and `reason`) instead of returning made-up numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from matdiff.backprojection.particles import (
    MAX_RADIUS,
    MIN_RADIUS,
    NoParticleMatch,
    ParticleMatch,
    match_particles,
)
from matdiff.materials import Catalogue, load_catalogue
from matdiff.microstructure import ParticleDesign

GMM_SEED = 0
"""random_state of the Gaussian mixture, fixed so that backprojection is deterministic (seed A's code: 0)."""


@dataclass(frozen=True, eq=False)
class Backprojection:
    """A design recovered from one field, with the fit that produced it; rows of (2, 3) arrays are the two
    materials, (matrix, particle) when valid.

    When `valid` is False, `design` is None and `reason` says why; the material fields still describe the GMM
    fit (rows ordered by element count, majority first; both rows the one material when every element is
    nearest to the same mean), while `mask` is all False, `radius_variance` is NaN and the counts are 0.
    """

    valid: bool
    reason: str
    """Empty when valid; otherwise why no matrix/particle assignment exists."""
    design: ParticleDesign | None
    """Matrix and particle (nearest catalogue rows of the two means), mean matched radius (unit-cell
    lengths) and volume fraction (share of particle elements); None when invalid."""
    rows: np.ndarray
    """(2,) int catalogue rows nearest to the two means (the design's matrix and particle when valid)."""
    means: np.ndarray
    """(2, 3) float64 GMM means in normalized space, channels (E, nu, rho)."""
    means_physical: np.ndarray
    """(2, 3) float64 GMM means in physical units: E GPa, nu, rho g/cm^3."""
    material_distances: np.ndarray
    """(2,) float64 normalized-space Euclidean distance of each mean to its catalogue entry."""
    fit_variance: float
    """Sum of the two spherical GMM variances, normalized space (seed A's material-fitting variance)."""
    mask: np.ndarray
    """(*spatial) bool, True on particle elements."""
    radius_variance: float
    """Variance of the matched particle radii, squared unit-cell lengths (the label-choice criterion)."""
    n_points: int
    """Skeleton points matched as particle centres."""
    n_particles: int
    """Particles matched (groups of centre points)."""


def as_field(field: np.ndarray | torch.Tensor) -> np.ndarray:
    """A normalized field (3, H, W) or (3, D, H, W), numpy or torch, as float64 numpy; validates it."""
    values = field.detach().cpu().double().numpy() if isinstance(field, torch.Tensor) else np.asarray(field)
    if values.ndim not in (3, 4) or values.shape[0] != 3:
        raise ValueError(f"field must be (3, H, W) or (3, D, H, W) (channels E, nu, rho); got {values.shape}")
    if len(set(values.shape[1:])) != 1:
        raise ValueError(f"field must be a square/cubic grid; got spatial shape {values.shape[1:]}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("field holds NaN or infinite values")
    return values


def fit_materials(values: np.ndarray, random_state: int = GMM_SEED) -> tuple[np.ndarray, float]:
    """GMM means (2, 3) and summed spherical variance of element values (n_elements, 3), normalized space.

    k-means++ initialization (as in seed A's code) picks a far element as the second centre, so even a
    few particle elements seed their own component; it also avoids a threaded k-means run per field.
    """
    gmm = GaussianMixture(
        n_components=2, covariance_type="spherical", init_params="k-means++", random_state=random_state
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(values)
    return gmm.means_, float(gmm.covariances_.sum())


def nearest_mean_labels(values: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Index (n_elements,) of the nearer of the two means (2, 3) for every element value (n_elements, 3)."""
    squared = ((values[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    return squared.argmin(axis=1)


def choose_particle_label(
    labels: np.ndarray, min_radius: float = MIN_RADIUS, max_radius: float = MAX_RADIUS
) -> tuple[int, ParticleMatch]:
    """The label (0 or 1) of a label grid (*spatial) whose particles match best, and its match.

    Raises NoParticleMatch naming both labels' reasons when neither matches.
    """
    matches: dict[int, ParticleMatch] = {}
    reasons = []
    for label in (0, 1):
        try:
            matches[label] = match_particles(labels == label, min_radius, max_radius)
        except NoParticleMatch as failure:
            reasons.append(f"label {label} as particle: {failure}")
    if not matches:
        raise NoParticleMatch("no particle assignment; " + "; ".join(reasons))
    best = min(matches, key=lambda label: (matches[label].radius_variance, (labels == label).sum()))
    return best, matches[best]


def material_rows(means: np.ndarray, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Nearest catalogue rows (2,) of normalized means (2, 3) and their normalized distances (2,)."""
    rows = np.asarray(catalogue.nearest(means), dtype=np.int64)
    distances = np.linalg.norm(means - catalogue.normalize(catalogue.props[rows]), axis=1)
    return rows, distances


def backproject(
    field: np.ndarray | torch.Tensor,
    catalogue: Catalogue | None = None,
    *,
    min_radius: float = MIN_RADIUS,
    max_radius: float = MAX_RADIUS,
    random_state: int = GMM_SEED,
) -> Backprojection:
    """Matrix/particle parameters of a normalized field (3, *spatial); catalogue None loads the shipped one.

    min_radius, max_radius: particle radius limits in unit lengths (seed A's code: 0.075 and 0.2).
    Raises ValueError for a malformed field (wrong shape, NaN/inf); an unmatched field gives valid=False.
    """
    values = as_field(field)
    catalogue = load_catalogue() if catalogue is None else catalogue
    spatial = values.shape[1:]
    flat = values.reshape(3, -1).T
    means, fit_variance = fit_materials(flat, random_state)
    labels = nearest_mean_labels(flat, means).reshape(spatial)
    counts = np.bincount(labels.ravel(), minlength=2)
    if counts.min() == 0:
        single = means[[counts.argmax()] * 2]
        reason = "single material: every element is nearest to the same GMM mean"
        return invalid_backprojection(reason, single, fit_variance, spatial, catalogue)
    try:
        particle, match = choose_particle_label(labels, min_radius, max_radius)
    except NoParticleMatch as failure:
        ordered = means[np.argsort(-counts, kind="stable")]
        return invalid_backprojection(str(failure), ordered, fit_variance, spatial, catalogue)
    ordered = means[[1 - particle, particle]]
    rows, distances = material_rows(ordered, catalogue)
    volume_fraction = float(counts[particle] / labels.size)
    return Backprojection(
        valid=True,
        reason="",
        design=ParticleDesign(int(rows[0]), int(rows[1]), match.radius, volume_fraction),
        rows=rows,
        means=ordered,
        means_physical=catalogue.denormalize(ordered),
        material_distances=distances,
        fit_variance=fit_variance,
        mask=labels == particle,
        radius_variance=match.radius_variance,
        n_points=match.n_points,
        n_particles=len(match.radii),
    )


def invalid_backprojection(
    reason: str, means: np.ndarray, fit_variance: float, spatial: tuple[int, ...], catalogue: Catalogue
) -> Backprojection:
    """A Backprojection with valid=False: the GMM materials (2, 3) kept, geometry NaN/empty."""
    rows, distances = material_rows(means, catalogue)
    return Backprojection(
        valid=False,
        reason=reason,
        design=None,
        rows=rows,
        means=means,
        means_physical=catalogue.denormalize(means),
        material_distances=distances,
        fit_variance=fit_variance,
        mask=np.zeros(spatial, dtype=bool),
        radius_variance=float("nan"),
        n_points=0,
        n_particles=0,
    )

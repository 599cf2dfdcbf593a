"""Refinement after backprojection: bring a particle design's expected bulk modulus to the target by searching
the neighbourhood a materials engineer would search (issue 19, item 2).

For every valid ``ParticleDesign`` (matrix, particle, radius, volume fraction):

1. Candidates: pairs of the k = ``neighbours`` nearest catalogue materials of each phase (the design's own
   first), Euclidean in the catalogue's normalized (E, nu, rho) space (SPEC 1, as the backprojection's
   lookup), in both roles (the particle's neighbours as matrix and the matrix's as particle too: the same
   material system with the phases swapped), each with its material distance (sum of the two phases'
   distances to the design's materials, the smaller of the two role assignments). A pair can only reach K* if
   K* lies between its phases' own bulk moduli E / (3 (1 - 2 nu)), so the others are screened out without a
   FEM solve. The search widens as an engineer would: ``per_round`` nearest screened pairs at a time, the next
   ones (at most ``rounds`` times) only for the designs that no pair tried so far can bring to K*.
2. The knob is the volume fraction at the design's radius. Re-evaluation rounds the expected particle count
   x = vf / V(r) stochastically (SPEC 6), so the expected K over random microstructures is
   E[K](x) = (1 - p) K(floor x) + p K(floor x + 1) with p = x - floor x: piecewise linear between integer
   counts and, for fixed materials, monotone (stiffer particle: K rises with x). K(n) is estimated on
   ``realizations`` COMMON random microstructures per (radius, count): the same particle placements for every
   candidate pair, so candidates are compared without noise between them. The counts stay in the valid range
   (``VOLUME_FRACTION_RANGE`` and the random-packing limit).
3. Every pair's K at the two end counts says whether it can reach K* (a bracket). The ``roots`` nearest
   bracketing pairs are root-found on the count: each step evaluates the two integers around the secant
   (regula falsi) estimate, which usually brackets the root between adjacent counts in one step, and keeps
   the tightest bracket; the root of the linear piece gives vf with E[K] = K* on the common microstructures.
4. Choice: the candidate of least score = material distance + density_weight * density (g/cm^3, rule of
   mixtures at the root vf), i.e. the campaign's objective (K - K*)^2 + lambda * density, which is lambda *
   density at the root, plus the distance that keeps the design near what the generator proposed (with lambda
   = 0 the nearest pair, the design's own materials first). With a density weight the lighter of the
   root-found neighbours wins unless it is much farther; the search never leaves the k-nearest neighbourhood
   and the vf range, so a design cannot become heavier without bound. Diversity: designs are served in order
   of their best score, and a pair already taken by another design is skipped while the design has another
   root-found pair (designs do not collapse onto one pair). When no pair brackets K*, the end point (pair,
   count) nearest to K* is taken if it is nearer than the design's own estimate; otherwise the design is kept.

The common microstructures are drawn from ``np.random.default_rng((seed, REFINE_STREAM, count, j))``; the
campaign re-evaluates a refined design on a stream of its own, so the reported values are on microstructures
the refinement did not see. Invalid designs (None) are returned untouched. The radius is kept: the volume
fraction alone is continuous through the expected count, and the radius only shifts the range ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import torch

from matdiff.evaluation.reevaluate import quantity_of_fields
from matdiff.materials import Catalogue
from matdiff.microstructure import (
    VOLUME_FRACTION_RANGE,
    ParticleDesign,
    ball_volume,
    check_packable,
    field_from_mask,
    particle_mask,
    place_particles,
)

REFINE_STREAM = 19
"""Second entropy word of the refinement's microstructure seeds (the campaign's other streams use others)."""


@dataclass(frozen=True)
class Refinement:
    """Settings of the refinement stage: ``neighbours`` nearest catalogue materials per phase (the design's
    own included), ``per_round`` screened pairs tried per round and at most ``rounds`` rounds,
    ``realizations`` common microstructures per (radius, particle count), ``roots`` bracketing pairs
    root-found per design, at most ``max_steps`` root-finding steps (two counts each)."""

    neighbours: int = 12
    per_round: int = 8
    rounds: int = 3
    realizations: int = 8
    roots: int = 3
    max_steps: int = 6

    def __post_init__(self) -> None:
        for name in ("neighbours", "per_round", "rounds", "realizations", "roots", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"refinement {name} must be a positive integer, got {value!r}")

    def check(self, catalogue: Catalogue) -> None:
        """Raise ValueError when the catalogue has fewer than ``neighbours`` materials."""
        if self.neighbours > len(catalogue):
            raise ValueError(
                f"refinement neighbours {self.neighbours} exceed the catalogue's {len(catalogue)} materials"
            )

    def settings(self) -> dict[str, Any]:
        """JSON-able settings."""
        names = ("neighbours", "per_round", "rounds", "realizations", "roots", "max_steps")
        return {name: int(getattr(self, name)) for name in names}


@dataclass(frozen=True)
class RefinedDesign:
    """One design after refinement: ``design`` (the original when ``changed`` is False, None for an invalid
    one), what happened (``note``), the expected K (GPa) of the original and of the final design on the common
    microstructures (NaN where not estimated) and how many neighbour pairs could reach the target."""

    design: ParticleDesign | None
    changed: bool
    note: str
    K_before: float = float("nan")
    K_after: float = float("nan")
    candidates: int = 0


@dataclass
class RefinementResult:
    """Refined designs (one per input design) and the FEM solves the refinement spent."""

    designs: list[RefinedDesign]
    solves: int


def count_range(radius: float, dim: int) -> tuple[int, int]:
    """Smallest and largest particle count (lo, hi) whose volume fraction n V(r) lies in the valid range and
    that random packing reaches; hi < lo when no count does."""
    vf_lo, vf_hi = VOLUME_FRACTION_RANGE[dim]
    volume = ball_volume(radius, dim)
    lo = max(math.ceil(vf_lo / volume - 1e-9), 1)
    hi = math.floor(vf_hi / volume + 1e-9)
    while hi >= lo and not _packable(hi, radius, dim):
        hi -= 1
    return lo, hi


def _packable(count: int, radius: float, dim: int) -> bool:
    """Whether ``check_packable`` accepts ``count`` particles of ``radius``."""
    try:
        check_packable(count, radius, dim)
    except ValueError:
        return False
    return True


def count_weights(x: float) -> list[tuple[int, float]]:
    """Particle counts and their probabilities under stochastic rounding of the expected count x > 0 (at
    least one particle, as ``microstructure.particle_count``)."""
    low = math.floor(x)
    p = x - low
    weights: dict[int, float] = {}
    for count, weight in ((max(low, 1), 1 - p), (max(low + 1, 1), p)):
        if weight > 0:
            weights[count] = weights.get(count, 0.0) + weight
    return list(weights.items())


def neighbours(row: int, k: int, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """The k catalogue rows (k,) nearest to material ``row`` in normalized space (itself first) and their
    normalized distances (k,)."""
    table = catalogue.normalized_props
    distance = np.linalg.norm(table - table[row], axis=1)
    distance[row] = -1.0  # the design's own material first, also among exact duplicates
    order = np.argsort(distance, kind="stable")[:k]
    return order, np.maximum(distance[order], 0.0)


def common_masks(dim: int, size: int, radius: float, count: int, realizations: int, seed: int) -> np.ndarray:
    """Particle masks (realizations, *(size,)*dim) of ``count`` particles of ``radius`` (unit-box lengths),
    placement j drawn from ``default_rng((seed, REFINE_STREAM, count, j))``; ValueError if not packable."""
    masks = []
    for j in range(realizations):
        rng = np.random.default_rng((seed, REFINE_STREAM, count, j))
        masks.append(particle_mask(place_particles(count, radius, dim, rng), radius, size))
    return np.stack(masks)


@dataclass
class CommonMicrostructures:
    """Mean bulk modulus (GPa) of material pairs on common random microstructures, cached per
    (radius, matrix, particle, count); ``evaluate`` solves every missing entry in one batched FEM call."""

    catalogue: Catalogue
    dim: int
    size: int
    realizations: int
    seed: int
    device: str | torch.device = "cpu"
    K: dict[tuple[float, int, int, int], float] = field(default_factory=dict)
    masks: dict[tuple[float, int], np.ndarray] = field(default_factory=dict)
    solves: int = 0

    def mask(self, radius: float, count: int) -> np.ndarray:
        """The common masks (realizations, *spatial) of one radius and count."""
        key = (radius, count)
        if key not in self.masks:
            self.masks[key] = common_masks(self.dim, self.size, radius, count, self.realizations, self.seed)
        return self.masks[key]

    def evaluate(self, keys: Sequence[tuple[float, int, int, int]]) -> None:
        """Solve the mean K of every (radius, matrix, particle, count) in ``keys`` not yet known (NaN if a
        solve failed or the count cannot be packed)."""
        missing = list(dict.fromkeys(k for k in keys if k not in self.K))
        fields, solved = [], []
        for key in missing:
            radius, matrix, particle, count = key
            try:
                masks = self.mask(radius, count)
            except ValueError:
                self.K[key] = float("nan")
                continue
            fields.append(np.moveaxis(field_from_mask(masks, matrix, particle, self.catalogue), 1, 0))
            solved.append(key)
        if not solved:
            return
        values = quantity_of_fields(np.concatenate(fields), self.catalogue, "bulk_modulus", self.device)
        self.solves += len(values)
        for key, per_key in zip(solved, values.reshape(len(solved), self.realizations), strict=True):
            self.K[key] = float(per_key.mean())

    def expected(self, radius: float, matrix: int, particle: int, x: float) -> float:
        """Expected K (GPa) at expected particle count x from the cached counts (KeyError if missing)."""
        return sum(w * self.K[(radius, matrix, particle, n)] for n, w in count_weights(x))

    def expected_keys(self, radius: float, matrix: int, particle: int, x: float) -> list[tuple]:
        """The cache keys ``expected`` reads."""
        return [(radius, matrix, particle, n) for n, _ in count_weights(x)]


@dataclass
class Candidate:
    """A material pair for design ``index`` with its material distance and count range [lo, hi]; after
    the root find, the expected count x with E[K] = K* (or the nearest end) and whether it is exact."""

    index: int
    matrix: int
    particle: int
    distance: float
    radius: float
    lo: int
    hi: int
    bracket: tuple[int, int] | None = None
    x: float = float("nan")
    exact: bool = False

    def key(self, count: int) -> tuple[float, int, int, int]:
        """Cache key of this pair at ``count`` particles."""
        return (self.radius, self.matrix, self.particle, count)

    def design(self, volume: float) -> ParticleDesign:
        """The design of this pair at its root count x (volume = V(r))."""
        return ParticleDesign(self.matrix, self.particle, self.radius, float(self.x * volume))


def secant_counts(K: dict[int, float], a: int, b: int, target: float) -> list[int]:
    """The integers (strictly between a and b) around the regula-falsi estimate of the count where the linear
    interpolation of K(a), K(b) (GPa) meets the target."""
    ka, kb = K[a], K[b]
    x = a if kb == ka else a + (target - ka) * (b - a) / (kb - ka)
    return sorted({min(max(c, a + 1), b - 1) for c in (math.floor(x), math.ceil(x))})


def tighten(K: dict[int, float], a: int, b: int, target: float) -> tuple[int, int] | None:
    """The first adjacent pair of known counts in [a, b] whose K (GPa) brackets the target; None when a solve
    failed (NaN) before one was found."""
    known = sorted(n for n in K if a <= n <= b)
    for u, v in zip(known, known[1:], strict=False):
        if not (math.isfinite(K[u]) and math.isfinite(K[v])):
            return None
        if (K[u] - target) * (K[v] - target) <= 0:
            return u, v
    return None


def root_count(K: dict[int, float], a: int, b: int, target: float) -> float:
    """Expected count x in [a, b] where the linear piece between K(a) and K(b) (GPa) equals the target."""
    ka, kb = K[a], K[b]
    if kb == ka:
        return float(a)
    return float(a + (target - ka) * (b - a) / (kb - ka))


def refine_designs(
    designs: Sequence[ParticleDesign | None],
    target: float,
    refinement: Refinement,
    catalogue: Catalogue,
    dim: int,
    size: int,
    seed: int,
    density_weight: float = 0.0,
    device: str | torch.device = "cpu",
) -> RefinementResult:
    """Refine every design toward the target bulk modulus (GPa); see the module docstring. Returns one
    ``RefinedDesign`` per design (None designs untouched) and the FEM solves spent.

    dim, size: the particle grid of the campaign's re-evaluation (the same discretization as the final
    values); seed: the unit's seed (the common microstructures use their own stream of it).
    """
    refinement.check(catalogue)
    common = CommonMicrostructures(catalogue, dim, size, refinement.realizations, seed, device)
    out: list[RefinedDesign | None] = [None] * len(designs)
    ranges: dict[int, tuple[int, int]] = {}
    for i, design in enumerate(designs):
        if design is None:
            out[i] = RefinedDesign(None, False, "invalid: untouched")
            continue
        lo, hi = count_range(design.radius, dim)
        if hi < lo:
            out[i] = RefinedDesign(design, False, f"kept: no count of radius {design.radius:.3f} fits")
            continue
        ranges[i] = (lo, hi)
    common.evaluate([key for i in ranges for key in _own_keys(designs[i], dim)])
    K_before = {i: _own_estimate(common, designs[i], dim) for i in ranges}
    screened = {
        i: pairs_of(i, designs[i], *ranges[i], refinement.neighbours, catalogue, target, dim) for i in ranges
    }
    candidates: dict[int, list[Candidate]] = {i: [] for i in ranges}
    bracketing: dict[int, list[Candidate]] = {i: [] for i in ranges}
    for _ in range(refinement.rounds):
        widen = [i for i in ranges if not bracketing[i] and len(candidates[i]) < len(screened[i])]
        fresh = []
        for i in widen:
            start = len(candidates[i])
            fresh += screened[i][start : start + refinement.per_round]
            candidates[i] = screened[i][: start + refinement.per_round]
        common.evaluate([c.key(n) for c in fresh for n in {c.lo, c.hi}])
        for i in widen:
            bracketing[i] = [c for c in candidates[i] if _brackets(common, c, target)]
    active = [c for i in ranges for c in bracketing[i][: refinement.roots]]
    root_find(common, active, target, refinement.max_steps)

    taken: set[tuple[int, int]] = {
        (r.design.matrix, r.design.particle) for r in out if r is not None and r.design is not None
    }
    options = {i: _ranked(bracketing[i][: refinement.roots], density_weight, catalogue, dim) for i in ranges}
    order = sorted(ranges, key=lambda i: (options[i][0][0] if options[i] else math.inf, i))
    for i in order:
        design = designs[i]
        if not options[i]:
            out[i] = fallback(common, design, candidates[i], target, K_before[i], taken, dim)
            continue
        _, pick = next(((s, c) for s, c in options[i] if (c.matrix, c.particle) not in taken), options[i][0])
        taken.add((pick.matrix, pick.particle))
        final = pick.design(ball_volume(pick.radius, dim))
        note = _describe(design, final, catalogue)
        if pick.exact:
            K_after = common.expected(pick.radius, pick.matrix, pick.particle, pick.x)
        else:  # the counts between the bracket ends were not all solved: E[K] is not known exactly
            K_after, note = float("nan"), note + " (root not bracketed by adjacent counts)"
        out[i] = RefinedDesign(final, final != design, note, K_before[i], K_after, len(bracketing[i]))
    return RefinementResult([r for r in out if r is not None], common.solves)


def pairs_of(
    index: int,
    design: ParticleDesign,
    lo: int,
    hi: int,
    k: int,
    catalogue: Catalogue,
    target: float,
    dim: int,
) -> list[Candidate]:
    """Neighbour pairs of a design that can reach ``target`` (GPa, strictly between the phases' own bulk
    moduli), the k nearest materials of each phase in both roles: first those whose Voigt-Reuss envelope over
    the count range [lo, hi] encloses the target (``plausible``), then the rest, each group nearest (material
    distance) first and the design's own roles first among equals."""
    near_m, d_m = neighbours(design.matrix, k, catalogue)
    near_p, d_p = neighbours(design.particle, k, catalogue)
    table = catalogue.normalized_props
    phase_K = catalogue.E / (3 * (1 - 2 * catalogue.nu))
    lo_vf, hi_vf = lo * ball_volume(design.radius, dim), hi * ball_volume(design.radius, dim)
    pairs: dict[tuple[int, int], tuple[bool, float]] = {}
    for m, p in [*product(near_m, near_p), *product(near_p, near_m)]:
        m, p = int(m), int(p)
        if (m, p) in pairs or not min(phase_K[m], phase_K[p]) < target < max(phase_K[m], phase_K[p]):
            continue
        roles = np.linalg.norm(table[[m, p]] - table[[design.matrix, design.particle]], axis=1).sum()
        swapped = np.linalg.norm(table[[m, p]] - table[[design.particle, design.matrix]], axis=1).sum()
        pairs[m, p] = (
            not plausible(phase_K[m], phase_K[p], lo_vf, hi_vf, target),
            float(min(roles, swapped)),
        )
    ranked = sorted(pairs.items(), key=lambda item: item[1])
    return [Candidate(index, m, p, distance, design.radius, lo, hi) for (m, p), (_, distance) in ranked]


def plausible(K_matrix: float, K_particle: float, vf_lo: float, vf_hi: float, target: float) -> bool:
    """Whether the target (GPa) lies in the Voigt-Reuss envelope of the phases' bulk moduli (GPa) over volume
    fractions [vf_lo, vf_hi]: a priority, not a screen (the plane-stress K can leave the envelope when the
    Poisson ratios differ much)."""
    vf = np.array([vf_lo, vf_hi])
    voigt = (1 - vf) * K_matrix + vf * K_particle
    reuss = 1 / ((1 - vf) / K_matrix + vf / K_particle)
    return bool(min(voigt.min(), reuss.min()) <= target <= max(voigt.max(), reuss.max()))


def _own_keys(design: ParticleDesign, dim: int) -> list[tuple]:
    """Cache keys of the design's own expected K (the counts around its expected count)."""
    x = design.volume_fraction / ball_volume(design.radius, dim)
    return [(design.radius, design.matrix, design.particle, n) for n, _ in count_weights(x)]


def _own_estimate(common: CommonMicrostructures, design: ParticleDesign, dim: int) -> float:
    """Expected K (GPa) of the unchanged design on the common microstructures (NaN if not packable)."""
    x = design.volume_fraction / ball_volume(design.radius, dim)
    return common.expected(design.radius, design.matrix, design.particle, x)


def _brackets(common: CommonMicrostructures, c: Candidate, target: float) -> bool:
    """Whether the pair's K at its end counts encloses the target (sets ``c.bracket``)."""
    k_lo, k_hi = common.K[c.key(c.lo)], common.K[c.key(c.hi)]
    if not (math.isfinite(k_lo) and math.isfinite(k_hi)) or (k_lo - target) * (k_hi - target) > 0:
        return False
    c.bracket = (c.lo, c.hi)
    return True


def root_find(common: CommonMicrostructures, active: list[Candidate], target: float, max_steps: int) -> None:
    """Shrink every candidate's count bracket to adjacent counts (the FEM solves of all batched per step),
    then set its root count x; a candidate whose solves fail is dropped (bracket None)."""
    for _ in range(max_steps):
        pending = [c for c in active if c.bracket and c.bracket[1] - c.bracket[0] > 1]
        if not pending:
            break
        keys = []
        for c in pending:
            known = _known(common, c)
            keys += [c.key(n) for n in secant_counts(known, *c.bracket, target)]
        common.evaluate(keys)
        for c in pending:
            c.bracket = tighten(_known(common, c), *c.bracket, target)
    for c in active:
        if c.bracket is not None:
            c.x = root_count(_known(common, c), *c.bracket, target)
            c.exact = c.bracket[1] - c.bracket[0] <= 1


def _known(common: CommonMicrostructures, c: Candidate) -> dict[int, float]:
    """The candidate's known K (GPa) by particle count."""
    return {key[3]: K for key, K in common.K.items() if key[:3] == (c.radius, c.matrix, c.particle)}


def _ranked(
    found: list[Candidate], density_weight: float, catalogue: Catalogue, dim: int
) -> list[tuple[float, Candidate]]:
    """Root-found candidates with their score (material distance + density_weight * density), best first."""
    scored = []
    for c in found:
        if c.bracket is None or not math.isfinite(c.x):
            continue
        density = c.design(ball_volume(c.radius, dim)).density(catalogue)
        scored.append((c.distance + density_weight * density, c))
    return sorted(scored, key=lambda sc: sc[0])


def fallback(
    common: CommonMicrostructures,
    design: ParticleDesign,
    candidates: list[Candidate],
    target: float,
    K_before: float,
    taken: set[tuple[int, int]],
    dim: int,
) -> RefinedDesign:
    """No pair reaches the target: the end point (pair, count) nearest to it among those nearer than the
    design's own estimate, a pair not taken by another design first; else the design kept."""
    best = None
    for c in candidates:
        for n in {c.lo, c.hi}:
            K = common.K[c.key(n)]
            improves = math.isfinite(K) and not abs(K - target) >= abs(K_before - target)
            if improves:
                rank = ((c.matrix, c.particle) in taken, abs(K - target), c.distance)
                if best is None or rank < best[0]:
                    best = (rank, c, n, K)
    if best is None:
        return RefinedDesign(design, False, "kept: no neighbour pair is nearer to K*", K_before, K_before, 0)
    _, c, n, K = best
    taken.add((c.matrix, c.particle))
    c.x = float(n)
    final = c.design(ball_volume(c.radius, dim))
    note = _describe(design, final, common.catalogue) + " (K* out of reach: nearest end of the range)"
    return RefinedDesign(final, final != design, note, K_before, K, 0)


def _describe(before: ParticleDesign, after: ParticleDesign, catalogue: Catalogue) -> str:
    """A short note of what changed, e.g. "vf 0.120 -> 0.183" or "particle A -> B, vf ..."."""
    parts = []
    for role in ("matrix", "particle"):
        old, new = getattr(before, role), getattr(after, role)
        if old != new:
            parts.append(f"{role} {catalogue.names[old]} -> {catalogue.names[new]}")
    parts.append(f"vf {before.volume_fraction:.3f} -> {after.volume_fraction:.3f}")
    return ", ".join(parts)

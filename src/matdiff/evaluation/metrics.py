"""Seed A's design metrics: relative error, frac within a margin, chunk coverage (SPEC 6)."""

from __future__ import annotations

import numpy as np

from matdiff.materials import Catalogue


def relative_error(value: np.ndarray, target: float) -> np.ndarray:
    """|value - target| / target, elementwise; NaN values (failed designs) stay NaN."""
    return np.abs(np.asarray(value, dtype=float) - target) / target


def frac_within(errors: np.ndarray, margin: float) -> float:
    """Share of samples whose error is <= margin; NaN errors count as misses. Empty input gives 0."""
    errors = np.asarray(errors, dtype=float)
    if errors.size == 0:
        return 0.0
    return float(np.mean(np.nan_to_num(errors, nan=np.inf) <= margin))


def chunk_coverage(matrix: np.ndarray, particle: np.ndarray, hit: np.ndarray, catalogue: Catalogue) -> float:
    """Seed A's cov: distinct chunks of the materials (matrix or particle) of the hits / non-empty chunks.

    matrix, particle: (N,) catalogue rows of each design; hit: (N,) bool, design within the margin.
    """
    hit = np.asarray(hit, dtype=bool)
    rows = np.concatenate([np.asarray(matrix)[hit], np.asarray(particle)[hit]]).astype(int)
    used = np.unique(catalogue.chunks[rows]) if rows.size else np.array([], dtype=int)
    return float(used.size / len(catalogue.nonempty_chunks))


def margin_table(
    value: np.ndarray,
    target: float,
    matrix: np.ndarray,
    particle: np.ndarray,
    catalogue: Catalogue,
    relative_margins: tuple[float, ...] = (0.01, 0.05),
    absolute_margins: tuple[float, ...] = (1.0, 5.0),
) -> dict[str, float]:
    """frac and cov for each relative margin (keys ``frac@1%``, ``cov@1%``) and absolute margin in GPa."""
    value = np.asarray(value, dtype=float)
    row: dict[str, float] = {}
    rel = relative_error(value, target)
    for m in relative_margins:
        hit = np.nan_to_num(rel, nan=np.inf) <= m
        row[f"frac@{m:.0%}"] = frac_within(rel, m)
        row[f"cov@{m:.0%}"] = chunk_coverage(matrix, particle, hit, catalogue)
    absolute = np.abs(value - target)
    for m in absolute_margins:
        hit = np.nan_to_num(absolute, nan=np.inf) <= m
        row[f"frac@{m:g}GPa"] = frac_within(absolute, m)
        row[f"cov@{m:g}GPa"] = chunk_coverage(matrix, particle, hit, catalogue)
    return row

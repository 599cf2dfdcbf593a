"""Unconditional quality of a diffusion prior (seed A app. B/D, table 6): how material-like samples are."""

from __future__ import annotations

import numpy as np
import torch

from matdiff.backprojection import backproject
from matdiff.diffusion import DiffusionModel
from matdiff.evaluation.metrics import chunk_coverage
from matdiff.materials import Catalogue


def prior_quality(
    model: DiffusionModel,
    catalogue: Catalogue,
    n: int = 1000,
    steps: int = 100,
    batch: int = 100,
    eta: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float]:
    """Mean material-fitting variance, mean summed nearest-material distance (normalized space), chunk
    coverage of the backprojected materials of n unguided samples, and the share of valid backprojections.

    Seed A, table 6 (2D, 100 steps): variance ~0.11, coverage ~0.98.
    """
    generator = torch.Generator(model.device).manual_seed(seed)
    fields = [
        model.sample(
            min(batch, n - start), steps=steps, eta=eta, generator=generator, progress=progress
        ).cpu()
        for start in range(0, n, batch)
    ]
    results = [backproject(f, catalogue) for f in torch.cat(fields).numpy()]
    matrix = np.array([b.matrix for b in results])
    particle = np.array([b.particle for b in results])
    return {
        "n": n,
        "steps": steps,
        "fit_variance": float(np.mean([b.fit_variance for b in results])),
        "material_distance": float(np.mean([np.sum(b.material_distances) for b in results])),
        "coverage": chunk_coverage(matrix, particle, np.ones(n, dtype=bool), catalogue),
        "valid_share": float(np.mean([b.valid for b in results])),
    }

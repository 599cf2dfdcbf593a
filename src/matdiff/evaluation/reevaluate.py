"""Re-evaluation of design parameters on fresh random microstructures, and target selection (SPEC 6)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from matdiff import fem
from matdiff.materials import Catalogue, load_catalogue
from matdiff.microstructure import realize_particles, sample_particles

FEM_BATCH = 64
"""Fields per batched FEM call during re-evaluation."""


@dataclass(frozen=True)
class Design:
    """Design parameters in the original space: catalogue rows, radius (cell lengths), volume fraction."""

    matrix: int
    particle: int
    radius: float
    volume_fraction: float


def bulk_modulus_of_fields(
    fields: np.ndarray | torch.Tensor,
    catalogue: Catalogue,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """FEM bulk modulus (N,) in GPa of normalized fields (N, 3, *spatial), in batches of FEM_BATCH.

    Solved in float32 to the FEM's default relative residual 1e-6 (K within ~1e-6 relative of float64).
    """
    fields = torch.as_tensor(fields)
    out = []
    starts = range(0, len(fields), FEM_BATCH)
    for start in tqdm(starts, desc="FEM bulk modulus", unit="batch", disable=not progress):
        batch = fields[start : start + FEM_BATCH].to(device=device, dtype=torch.float32)
        props = catalogue.denormalize(batch.movedim(1, -1))
        with torch.no_grad():
            out.append(fem.bulk_modulus(props[..., 0], props[..., 1]).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def realizations(
    design: Design, dim: int, size: int, count: int, rng: np.random.Generator, catalogue: Catalogue
) -> Iterator[np.ndarray]:
    """``count`` fresh random fields (3, *spatial) of one design, particle count rounded stochastically."""
    for _ in range(count):
        _, field = realize_particles(
            dim,
            size,
            design.matrix,
            design.particle,
            design.radius,
            design.volume_fraction,
            rng,
            catalogue=catalogue,
            stochastic_count=True,
        )
        yield field


def reevaluate_bulk_modulus(
    designs: Sequence[Design | None],
    dim: int,
    size: int,
    rng: np.random.Generator,
    realizations_per_design: int = 10,
    catalogue: Catalogue | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (N,) of the FEM bulk modulus (GPa) over M fresh microstructures per design.

    A ``None`` design (failed backprojection) gives NaN. Seed A's code default is M = 10.
    """
    catalogue = catalogue or load_catalogue()
    valid = [i for i, d in enumerate(designs) if d is not None]
    fields = [
        f for i in valid for f in realizations(designs[i], dim, size, realizations_per_design, rng, catalogue)
    ]
    mean = np.full(len(designs), np.nan)
    std = np.full(len(designs), np.nan)
    if fields:
        K = bulk_modulus_of_fields(np.stack(fields), catalogue, device).reshape(len(valid), -1)
        mean[valid], std[valid] = K.mean(1), K.std(1)
    return mean, std


def select_targets(
    dim: int,
    size: int,
    n_samples: int = 10_000,
    count: int = 5,
    quantiles: tuple[float, float] = (0.01, 0.99),
    seed: int = 12345,
    catalogue: Catalogue | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` equally spaced target bulk moduli (GPa) between the K quantiles of a fresh dataset.

    Returns (targets, K of the fresh samples). Seed A uses 10,000 samples and the 1% and 99% quantiles.
    """
    catalogue = catalogue or load_catalogue()
    rng = np.random.default_rng(seed)
    fields = np.stack([sample_particles(dim, size, rng, catalogue)[1] for _ in range(n_samples)])
    K = bulk_modulus_of_fields(fields, catalogue, device, progress=True)
    lo, hi = np.quantile(K, quantiles)
    return np.linspace(lo, hi, count), K

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

    Solved in float32 to the FEM's default relative residual 1e-6 (K within ~1e-6 relative of float64); a
    batch whose float32 solve does not converge is solved again in float64.
    """
    fields = torch.as_tensor(fields)
    out = []
    starts = range(0, len(fields), FEM_BATCH)
    for start in tqdm(starts, desc="FEM bulk modulus", unit="batch", disable=not progress):
        batch = fields[start : start + FEM_BATCH].to(device)
        try:
            out.append(_bulk_modulus(batch, catalogue, torch.float32))
        except fem.ConvergenceError:  # float32 stalls at its floor on extreme contrasts: redo in float64
            out.append(_bulk_modulus(batch, catalogue, torch.float64))
    return np.concatenate(out) if out else np.zeros(0)


def _bulk_modulus(fields: torch.Tensor, catalogue: Catalogue, dtype: torch.dtype) -> np.ndarray:
    """FEM bulk modulus (N,) in GPa of normalized fields (N, 3, *spatial), solved in ``dtype``."""
    props = catalogue.denormalize(fields.to(dtype).movedim(1, -1))
    with torch.no_grad():
        return fem.bulk_modulus(props[..., 0], props[..., 1]).double().cpu().numpy()


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
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Mean and std (N,) of the FEM bulk modulus (GPa) over M fresh microstructures per design, and why a
    design could not be evaluated ("" where it could).

    A ``None`` design (failed backprojection) and a design that cannot be realized (e.g. a volume fraction
    beyond random packing for its radius) give NaN. Seed A's code default is M = 10.
    """
    catalogue = catalogue or load_catalogue()
    reasons = ["no design" if d is None else "" for d in designs]
    evaluated, fields = [], []
    for i, design in enumerate(designs):
        if design is None:
            continue
        try:
            fields += list(realizations(design, dim, size, realizations_per_design, rng, catalogue))
        except ValueError as err:
            reasons[i] = f"not realizable: {err}"
            continue
        evaluated.append(i)
    mean = np.full(len(designs), np.nan)
    std = np.full(len(designs), np.nan)
    if fields:
        K = bulk_modulus_of_fields(np.stack(fields), catalogue, device).reshape(len(evaluated), -1)
        mean[evaluated], std[evaluated] = K.mean(1), K.std(1)
    return mean, std, reasons


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

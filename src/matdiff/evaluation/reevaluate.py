"""Re-evaluation of design parameters on fresh random microstructures, and target selection (SPEC 6)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from matdiff import fem
from matdiff.materials import Catalogue, Properties, catalogue_properties, load_catalogue
from matdiff.microstructure import ParticleDesign, particle_mask, realize_particles, sample_particles

FEM_BATCH = 64
"""Fields per batched FEM call during re-evaluation."""

QUANTITY_SHAPES = {"bulk_modulus": lambda dim: (), "homogenized_stiffness": lambda dim: (3 * (dim - 1),) * 2}
"""Shape of one sample's value of each FEM quantity, by spatial dimension."""


def quantity_of_properties(
    props: Properties, quantity: str = "bulk_modulus", device: str | torch.device = "cpu"
) -> np.ndarray:
    """FEM ``quantity`` (N, *shape) float64 numpy of properties (each (N, *spatial)); NaN for a sample whose
    solve failed.

    Solved in the properties' dtype (float32: to the FEM's default relative residual 1e-6, K within ~1e-6
    relative of float64); a sample whose solve misses that is solved again cold in float64
    (``fem.SolveOptions(on_failure="retry")``, float32 stalls at its floor on extreme contrasts).
    """
    solve = getattr(fem, quantity)
    with torch.no_grad():
        value = solve(props.E.to(device), props.nu.to(device), options=fem.SolveOptions(on_failure="retry"))
    return value.double().cpu().numpy()


def quantity_of_fields(
    fields: np.ndarray | torch.Tensor,
    catalogue: Catalogue,
    quantity: str = "bulk_modulus",
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """FEM ``quantity`` (N, *shape) of normalized particle fields (N, 3, *spatial), FEM_BATCH at a time,
    solved in float32 (NaN where a solve failed, see ``quantity_of_properties``)."""
    fields = torch.as_tensor(fields)
    out = []
    starts = range(0, len(fields), FEM_BATCH)
    for start in tqdm(starts, desc=f"FEM {quantity}", unit="batch", disable=not progress):
        props = catalogue_properties(fields[start : start + FEM_BATCH].float(), catalogue)
        out.append(quantity_of_properties(props, quantity, device))
    shape = QUANTITY_SHAPES[quantity](fields.ndim - 2)
    return np.concatenate(out) if out else np.zeros((0, *shape))


def unsolved_reason(values: np.ndarray) -> str:
    """Why a design has no value: "" unless some of its FEM values (M, *shape) are NaN (failed solves)."""
    failed = int(np.isnan(values.reshape(len(values), -1)).any(1).sum())
    return f"FEM solve did not converge for {failed} of {len(values)} fields" if failed else ""


def realizations(
    design: ParticleDesign,
    dim: int,
    size: int,
    count: int,
    rng: np.random.Generator,
    catalogue: Catalogue,
    materials: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """``count`` fresh random fields (3, *spatial) of one design, particle count rounded stochastically.

    ``materials`` (2, 3), normalized (matrix, particle) values, replace the design's catalogue materials on
    the same microstructures (the same draws from ``rng``): seed A's "free" materials of the fit."""
    for _ in range(count):
        realization, field = realize_particles(dim, size, design, rng, catalogue, stochastic_count=True)
        if materials is not None:
            mask = particle_mask(realization.centres, design.radius, size)
            values = np.asarray(materials, dtype=np.float32).reshape(2, 3, *(1,) * dim)
            field = np.where(mask, values[1], values[0])
        yield field


def reevaluate(
    designs: Sequence[ParticleDesign | None],
    dim: int,
    size: int,
    rng: np.random.Generator,
    realizations_per_design: int = 10,
    catalogue: Catalogue | None = None,
    device: str | torch.device = "cpu",
    quantity: str = "bulk_modulus",
    materials: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Mean and std (N, *shape) of the FEM ``quantity`` over M fresh microstructures per design, and why a
    design could not be evaluated ("" where it could). ``materials``: per design (2, 3) normalized
    (matrix, particle) values to use instead of its catalogue rows (``realizations``).

    A ``None`` design (failed backprojection), a design that cannot be realized (e.g. a volume fraction
    beyond random packing for its radius) and one whose FEM solve failed for a realization give NaN. Seed A's
    code default is M = 10.
    """
    catalogue = catalogue or load_catalogue()
    reasons = ["no design" if d is None else "" for d in designs]
    evaluated, fields = [], []
    for i, design in enumerate(designs):
        if design is None:
            continue
        try:
            own = None if materials is None else materials[i]
            fields += list(realizations(design, dim, size, realizations_per_design, rng, catalogue, own))
        except ValueError as err:
            reasons[i] = f"not realizable: {err}"
            continue
        evaluated.append(i)
    shape = QUANTITY_SHAPES[quantity](dim)
    mean = np.full((len(designs), *shape), np.nan)
    std = np.full((len(designs), *shape), np.nan)
    if fields:
        values = quantity_of_fields(np.stack(fields), catalogue, quantity, device)
        values = values.reshape(len(evaluated), realizations_per_design, *shape)
        mean[evaluated], std[evaluated] = values.mean(1), values.std(1)
        for i, per_design in zip(evaluated, values, strict=True):
            reasons[i] = unsolved_reason(per_design)
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
    K = quantity_of_fields(fields, catalogue, "bulk_modulus", device, progress=True)
    lo, hi = np.quantile(K, quantiles)
    return np.linspace(lo, hi, count), K

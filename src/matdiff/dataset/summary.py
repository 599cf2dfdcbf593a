"""Statistics and a picture of a particle dataset (`matdiff dataset inspect`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matdiff.dataset.store import ParticleDataset, chunk_range
from matdiff.figures import field_grid_png
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


def save_sample_grid(dataset: ParticleDataset, path: str | Path, count: int = 16) -> Path:
    """Write a PNG grid of the first `count` written samples' normalized E channel; returns the path."""
    indices = np.flatnonzero(written_samples(dataset))[:count]
    note = ", middle z slice" if dataset.attrs["dim"] == 3 else ""
    captions = [f"#{i}" for i in indices]
    return field_grid_png(path, dataset.fields.oindex[indices], captions, f"normalized E{note}")

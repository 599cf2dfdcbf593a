"""Particle datasets: resumable parallel generation into chunked zarr stores, opening and inspection."""

from matdiff.dataset.generate import generate_dataset
from matdiff.dataset.store import IncompleteDatasetError, ParticleDataset, open_dataset
from matdiff.dataset.summary import save_sample_grid, summary_rows

__all__ = [
    "IncompleteDatasetError",
    "ParticleDataset",
    "generate_dataset",
    "open_dataset",
    "save_sample_grid",
    "summary_rows",
]

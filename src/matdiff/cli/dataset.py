"""`matdiff dataset generate` and `matdiff dataset inspect`: particle datasets in chunked zarr stores."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from matdiff.cli.common import console, one_line, writable_file, writable_folder

dataset_app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def register(app: typer.Typer) -> None:
    """Add the `dataset` sub-app (generate, inspect) to the app."""
    app.add_typer(dataset_app, name="dataset")


@dataset_app.command("generate")
def generate(
    out: Path = typer.Option(
        ..., callback=writable_folder, help="Output zarr store, e.g. data/p2d64.zarr; re-run to resume."
    ),
    dim: int = typer.Option(2, help="Spatial dimension: 2 or 3."),
    size: int = typer.Option(64, min=1, help="Elements per axis."),
    n: int = typer.Option(10_000, min=1, help="Number of samples."),
    seed: int = typer.Option(0, min=0, help="Base seed; sample i uses default_rng([seed, i])."),
    workers: int = typer.Option(None, min=1, help="Worker processes; default: all cores."),
    catalogue: Path = typer.Option(None, help="Catalogue CSV; default: the shipped catalogue."),
) -> None:
    """Generate (or resume) a dataset of random matrix/particle microstructures."""
    from matdiff.dataset import generate_dataset
    from matdiff.materials import load_catalogue

    with one_line("--catalogue"):
        table = load_catalogue(catalogue)
    with one_line():
        path = generate_dataset(out, dim, size, n, seed, workers=workers, catalogue=table, progress=True)
    console.print(f"wrote {n} samples to {path}")


@dataset_app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="Dataset zarr store."),
    png: Path = typer.Option(
        None, callback=writable_file, help="Write a PNG grid of samples (E channel; 3D: middle z slice)."
    ),
    samples: int = typer.Option(16, min=1, help="Samples in the PNG grid."),
    catalogue: Path = typer.Option(None, help="Catalogue CSV used for generation; default: the shipped one."),
) -> None:
    """Print statistics of a dataset (complete or not) and optionally save a picture of samples."""
    from matdiff.dataset import open_dataset, save_sample_grid, summary_rows
    from matdiff.materials import load_catalogue

    with one_line():
        dataset = open_dataset(path, require_complete=False)
    with one_line("--catalogue"):
        table_catalogue = load_catalogue(catalogue)
    matching = table_catalogue if table_catalogue.hash == dataset.attrs["catalogue_hash"] else None
    table = Table(title=str(path), show_header=False)
    for name, value in summary_rows(dataset, matching):
        table.add_row(name, value)
    console.print(table)
    if png is not None:
        console.print(f"wrote {save_sample_grid(dataset, png, samples)}")

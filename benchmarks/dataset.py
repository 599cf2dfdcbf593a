"""Time dataset generation: n samples of 2D 64x64 and 3D 32^3 into fresh zarr stores; prints a table.

Usage: python benchmarks/dataset.py [--n 10000] [--workers N] [--catalogue PATH]
The 10k extrapolation is linear in n and includes the fixed start-up of the spawned workers (a few seconds
each: importing matdiff imports torch), so it overestimates when --n is small.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from matdiff.dataset import generate_dataset, open_dataset
from matdiff.materials import load_catalogue

CASES = ((2, 64), (3, 32))
"""(dim, size) of the timed datasets (SPEC 2 defaults)."""
FULL_N = 10_000


def time_generation(
    dim: int, size: int, n: int, workers: int, catalogue_path: Path | None
) -> dict[str, float]:
    """Seconds to generate n samples (wall), store size in MB and mean particle count."""
    catalogue = load_catalogue(catalogue_path)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.zarr"
        start = time.perf_counter()
        generate_dataset(out, dim, size, n, seed=0, workers=workers, catalogue=catalogue)
        seconds = time.perf_counter() - start
        megabytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
        particles = float(open_dataset(out).params["n_particles"].mean())
    return {"seconds": seconds, "megabytes": megabytes, "particles": particles}


def main() -> None:
    """Parse arguments, time each case, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=FULL_N, help="samples per case")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes")
    parser.add_argument("--catalogue", type=Path, default=None, help="catalogue CSV (default: shipped)")
    args = parser.parse_args()
    table = Table(title=f"dataset generation, {args.workers} workers, {os.cpu_count()} cores")
    for column in (
        "case",
        "n",
        "wall s",
        "ms/sample",
        f"extrapolated {FULL_N // 1000}k s",
        "store MB",
        "mean particles",
    ):
        table.add_column(column, justify="right")
    for dim, size in CASES:
        result = time_generation(dim, size, args.n, args.workers, args.catalogue)
        per_sample = result["seconds"] / args.n
        table.add_row(
            f"{dim}D {size}^{dim}",
            str(args.n),
            f"{result['seconds']:.1f}",
            f"{1e3 * per_sample:.2f}",
            f"{per_sample * FULL_N:.0f}",
            f"{result['megabytes']:.1f}",
            f"{result['particles']:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()

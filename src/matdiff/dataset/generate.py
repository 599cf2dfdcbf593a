"""Resumable, parallel generation of particle datasets into a chunked zarr store.

Sample i is drawn with `np.random.default_rng([seed, i])`, so a store's content depends only on
(dim, size, n, seed, catalogue), never on the number of workers or on interruptions. Each worker writes
whole chunks; the parent marks a chunk done only after its worker returned, and sets `complete` only when
every chunk is done. Re-running the same request on an interrupted store regenerates the chunks not done.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import zarr
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from matdiff.dataset.store import (
    CHUNK_SAMPLES,
    chunk_range,
    dataset_attrs,
    mark_complete_if_done,
    mark_done,
    open_or_create_store,
    pending_chunks,
    write_chunk,
)
from matdiff.materials import Catalogue, load_catalogue
from matdiff.microstructure import max_particles, sample_particles
from matdiff.microstructure.particles import check_dim, check_size

PARENT_POLL_SECONDS = 1.0
"""How often a dataset worker checks that the generating process still lives."""


def generate_chunk(path: Path, chunk: int, catalogue: Catalogue) -> int:
    """Sample and write all samples of one chunk of the store at path; returns the chunk id."""
    group = zarr.open_group(path, mode="r+")
    attrs = dict(group.attrs)
    samples = [
        sample_particles(attrs["dim"], attrs["size"], np.random.default_rng([attrs["seed"], i]), catalogue)
        for i in chunk_range(attrs, chunk)
    ]
    write_chunk(group, chunk, samples)
    return chunk


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process once ``parent`` is gone (killed with -9, it cannot stop its
    workers), checked every ``PARENT_POLL_SECONDS`` by a daemon thread; the multiprocessing resource tracker
    then sees its last user leave and ends too."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def generated_chunks(path: Path, chunks: list[int], catalogue: Catalogue, workers: int) -> Iterator[int]:
    """Generate the given chunks, in this process (workers=1) or spawned processes; yields each finished id.

    A process pool of concurrent.futures fails loudly (BrokenProcessPool) when a worker dies; a worker ends
    when this process dies (``exit_with_parent``).
    """
    if workers == 1 or len(chunks) == 1:
        yield from (generate_chunk(path, chunk, catalogue) for chunk in chunks)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        min(workers, len(chunks)), mp_context=context, initializer=exit_with_parent, initargs=(os.getpid(),)
    )
    with pool:
        futures = [pool.submit(generate_chunk, path, chunk, catalogue) for chunk in chunks]
        try:
            yield from (future.result() for future in as_completed(futures))
        finally:
            for future in futures:
                future.cancel()


def check_request(dim: int, size: int, n: int, seed: int, workers: int, chunk_samples: int) -> None:
    """Raise ValueError for an unknown dimension, a negative seed or a non-positive size or count."""
    check_dim(dim)
    check_size(size)
    counts = {"n (number of samples)": n, "workers": workers, "chunk_samples": chunk_samples}
    for name, value in counts.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def generate_dataset(
    out: str | Path,
    dim: int,
    size: int,
    n: int,
    seed: int,
    workers: int | None = None,
    catalogue: Catalogue | None = None,
    progress: bool = False,
    chunk_samples: int = CHUNK_SAMPLES,
) -> Path:
    """Generate (or resume) n particle samples into the zarr store `out`; returns its path.

    Workers default to os.cpu_count(). An existing store with other parameters raises ValueError.
    """
    out = Path(out)
    workers = (os.cpu_count() or 1) if workers is None else workers
    check_request(dim, size, n, seed, workers, chunk_samples)
    catalogue = load_catalogue() if catalogue is None else catalogue
    attrs = dataset_attrs(dim, size, n, seed, max_particles(dim), catalogue.hash, chunk_samples)
    group = open_or_create_store(out, attrs)
    chunks = pending_chunks(group)
    columns = TextColumn(out.name), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("samples", total=n, completed=n - sum(len(chunk_range(attrs, c)) for c in chunks))
        for chunk in generated_chunks(out, chunks, catalogue, workers):
            mark_done(group, chunk)
            bar.advance(task, len(chunk_range(attrs, chunk)))
    mark_complete_if_done(group)
    return out

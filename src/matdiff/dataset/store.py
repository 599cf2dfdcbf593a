"""The zarr (v3) layout of a particle dataset: fields, per-sample parameters, chunk bookkeeping, attrs.

Layout of a store with N samples, `dim` spatial axes of `size` elements, chunked along N:
- `fields` (N, 3, *(size,)*dim) float32, normalized channels (E, nu, rho) in [-1, 1];
- `matrix`, `particle`, `n_particles` (N,) int32; `radius`, `vf_target`, `vf_realized` (N,) float32;
- `centres` (N, max_particles, dim) float32 in unit-box lengths, NaN-padded beyond `n_particles`;
- `done` (N chunks,) bool, set once a chunk's samples are all written;
- attrs: format, dim, size, n, seed, chunk_samples, max_particles, catalogue_hash, matdiff_version and
  `complete` (True only after every chunk is done).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import matdiff
from matdiff.microstructure import ParticleRealization

FORMAT = "matdiff.particles/1"
CHUNK_SAMPLES = 64
"""Samples per zarr chunk along N (**chosen**: 3 MB of 2D 64x64 or 25 MB of 3D 32^3 fields uncompressed)."""
SCALAR_PARAMS = {
    "matrix": np.int32,
    "particle": np.int32,
    "radius": np.float32,
    "vf_target": np.float32,
    "vf_realized": np.float32,
    "n_particles": np.int32,
}
"""Per-sample scalar parameter arrays and their dtypes."""
IDENTITY_ATTRS = (
    "format",
    "dim",
    "size",
    "n",
    "seed",
    "chunk_samples",
    "max_particles",
    "catalogue_hash",
    "matdiff_version",
)
"""Attrs that must match for a generation run to resume an existing store."""


class IncompleteDatasetError(ValueError):
    """A dataset store whose generation has not finished."""


@dataclass(frozen=True)
class ParticleDataset:
    """An opened store: `fields` zarr (N, 3, *spatial) float32, `params` (N, ...) arrays, chunk flags."""

    fields: zarr.Array
    params: dict[str, np.ndarray]
    attrs: dict[str, Any]
    done: np.ndarray

    def __len__(self) -> int:
        """Number of samples N."""
        return self.fields.shape[0]


def dataset_attrs(
    dim: int, size: int, n: int, seed: int, max_particles: int, catalogue_hash: str, chunk_samples: int
) -> dict[str, Any]:
    """The attrs of a new, not yet complete store."""
    return {
        "format": FORMAT,
        "dim": dim,
        "size": size,
        "n": n,
        "seed": seed,
        "chunk_samples": chunk_samples,
        "max_particles": max_particles,
        "catalogue_hash": catalogue_hash,
        "matdiff_version": matdiff.__version__,
        "complete": False,
    }


def chunk_count(attrs: dict[str, Any]) -> int:
    """Number of chunks along N."""
    return math.ceil(attrs["n"] / attrs["chunk_samples"])


def chunk_range(attrs: dict[str, Any], chunk: int) -> range:
    """Sample indices of one chunk."""
    start = chunk * attrs["chunk_samples"]
    return range(start, min(start + attrs["chunk_samples"], attrs["n"]))


def create_store(path: Path, attrs: dict[str, Any]) -> zarr.Group:
    """Create an empty store at path (which must not exist): arrays first, attrs (`complete` False) last."""
    group = zarr.open_group(path, mode="w-")
    n, dim, size, chunk = attrs["n"], attrs["dim"], attrs["size"], attrs["chunk_samples"]
    spatial = (size,) * dim
    group.create_array("fields", shape=(n, 3, *spatial), chunks=(chunk, 3, *spatial), dtype=np.float32)
    for name, dtype in SCALAR_PARAMS.items():
        group.create_array(name, shape=(n,), chunks=(chunk,), dtype=dtype)
    group.create_array(
        "centres",
        shape=(n, attrs["max_particles"], dim),
        chunks=(chunk, attrs["max_particles"], dim),
        dtype=np.float32,
        fill_value=np.nan,
    )
    group.create_array("done", shape=(chunk_count(attrs),), chunks=(1,), dtype=bool, fill_value=False)
    group.attrs.update(attrs)
    return group


def attr_mismatches(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Lines 'name: found X, wanted Y' for every identity attr that differs."""
    return [
        f"{key}: store has {found.get(key)!r}, requested {wanted[key]!r}"
        for key in IDENTITY_ATTRS
        if found.get(key) != wanted[key]
    ]


def open_or_create_store(path: Path, attrs: dict[str, Any]) -> zarr.Group:
    """Writable store at path: created if absent, else reopened if its identity attrs match (to resume)."""
    if not path.exists():
        return create_store(path, attrs)
    try:
        group = zarr.open_group(path, mode="r+")
    except Exception as error:
        raise ValueError(f"{path} exists and is not a matdiff dataset store; choose another --out") from error
    mismatches = attr_mismatches(dict(group.attrs), attrs)
    if mismatches:
        details = "\n  ".join(mismatches)
        raise ValueError(f"{path} holds a different dataset; delete it or choose another --out:\n  {details}")
    return group


def write_chunk(group: zarr.Group, chunk: int, samples: list[tuple[ParticleRealization, np.ndarray]]) -> None:
    """Write one chunk's fields and parameters (not its `done` flag)."""
    indices = chunk_range(dict(group.attrs), chunk)
    rows = slice(indices.start, indices.stop)
    group["fields"][rows] = np.stack([field for _, field in samples])
    for name, dtype in SCALAR_PARAMS.items():
        group[name][rows] = np.array([params.record()[name] for params, _ in samples], dtype=dtype)
    centres = np.full(group["centres"].shape[1:], np.nan, dtype=np.float32)
    group["centres"][rows] = np.stack([padded(params.centres, centres) for params, _ in samples])


def padded(centres: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Centres (n, dim) written into a copy of the NaN template (max_particles, dim)."""
    out = template.copy()
    out[: len(centres)] = centres
    return out


def pending_chunks(group: zarr.Group) -> list[int]:
    """Chunk ids not yet marked done."""
    return np.flatnonzero(~group["done"][:]).tolist()


def mark_done(group: zarr.Group, chunk: int) -> None:
    """Record that a chunk's samples are fully written."""
    group["done"][chunk] = True


def mark_complete_if_done(group: zarr.Group) -> bool:
    """Set attrs `complete` True when every chunk is done; return whether it is."""
    complete = bool(group["done"][:].all())
    if complete:
        group.attrs["complete"] = True
    return complete


def open_dataset(path: str | Path, require_complete: bool = True) -> ParticleDataset:
    """Open a dataset store read-only; raises IncompleteDatasetError if generation has not finished."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}; create one with `matdiff dataset generate`")
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path} is not a matdiff particle dataset (format {attrs.get('format')!r})")
    if require_complete and not attrs.get("complete"):
        done = int(group["done"][:].sum())
        raise IncompleteDatasetError(
            f"dataset at {path} is incomplete ({done} of {chunk_count(attrs)} chunks written); re-run "
            "`matdiff dataset generate` with the same arguments to finish it"
        )
    params = {name: group[name][:] for name in (*SCALAR_PARAMS, "centres")}
    return ParticleDataset(fields=group["fields"], params=params, attrs=attrs, done=group["done"][:])

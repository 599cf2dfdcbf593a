"""Training data: open a zarr field store and draw deterministic mini-batches from it.

A store is a zarr group with an array ``fields`` (N, C, *S) float32 in [-1, 1] and attrs (particle sets:
"catalogue_hash", "dim", "size"; style sets: "style", "channels"). Particle stores (attrs "format"
"matdiff.particles/...") are opened with ``matdiff.dataset.open_dataset``, which rejects incomplete stores;
any other group is read directly (attrs "complete" = False is rejected too).

Batches: the batch of step k is a pure function of (seed, k), so an interrupted run resumes with exactly the
same data order without saving any loader state. Each epoch is a fresh order of all N samples.
- in memory (store <= ``cache_bytes``, default 1 GiB; e.g. 10k 3x64x64 fields = 0.49 GB): loaded once, each
  epoch a full random permutation;
- streaming (larger stores, e.g. 10k 3x32^3 = 3.9 GB): each epoch shuffles the chunk order, groups
  consecutive chunks into buffers of about ``buffer_bytes`` (default ``cache_bytes / 4``), and shuffles
  samples within a buffer; reads are whole chunks (chunk-aligned), one buffer held at a time.
The two modes give different (each deterministic) orders, so ``cache_bytes`` is part of a run's arguments.

Augmentation (``symmetry_augment``): each sample is mapped by a random symmetry of the square (8) or cube
(48) grid, drawn as a function of (seed, step), so resumes stay exact. The particle data are invariant in
distribution under these maps (centres uniform in [r, 1 - r] per axis, isotropic discs/spheres); periodic
shifts are not used, since particles never cross the boundary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def open_fields(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(fields, attrs) of the zarr store at ``path``: fields array-like (N, C, *S) float32, attrs a dict."""
    import zarr

    if not Path(path).exists():
        raise FileNotFoundError(f"no dataset at {path}")
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    if str(attrs.get("format", "")).startswith("matdiff.particles"):
        from matdiff.dataset import open_dataset  # validates the particle layout, rejects incomplete stores

        dataset = open_dataset(path)
        return dataset.fields, dict(dataset.attrs)
    if attrs.get("complete") is False:
        raise ValueError(f"dataset store {path} is incomplete (attrs complete=False)")
    if "fields" not in group:
        raise ValueError(f"dataset store {path} has no 'fields' array")
    fields = group["fields"]
    if fields.ndim not in (4, 5):
        raise ValueError(f"fields must be (N, C, H, W) or (N, C, D, H, W), got shape {fields.shape}")
    return fields, attrs


def data_normalization(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """{"channels", "lo", "hi"} mapping physical channel values to [-1, 1], from store attrs or the catalogue.

    Taken from attrs "normalization" (a dict) or "lo"/"hi" when present; otherwise from
    ``matdiff.materials.load_catalogue()`` when its hash equals attrs["catalogue_hash"]; None when unknown.
    """
    channels = list(attrs.get("channels", ["E", "nu", "rho"]))
    if isinstance(attrs.get("normalization"), dict):
        return dict(attrs["normalization"])
    if "lo" in attrs and "hi" in attrs:
        return {"channels": channels, "lo": list(attrs["lo"]), "hi": list(attrs["hi"])}
    if "catalogue_hash" in attrs:
        try:
            from matdiff.materials import load_catalogue

            catalogue = load_catalogue()
        except Exception:  # noqa: BLE001 - a missing or broken catalogue just means "unknown"
            return None
        if catalogue.hash == attrs["catalogue_hash"]:
            return {
                "channels": ["E", "nu", "rho"],
                "lo": [float(v) for v in catalogue.lo],
                "hi": [float(v) for v in catalogue.hi],
            }
    return None


def symmetry_augment(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each sample of ``batch`` (B, C, *S), square/cubic S, under its own uniformly drawn grid symmetry.

    A symmetry is a permutation of the spatial axes followed by a flip of each axis (2^d d! maps: the
    dihedral group of the square, 8, or the full octahedral group of the cube, 48). Returns a new array.
    """
    spatial = batch.shape[2:]
    if len(set(spatial)) != 1:
        raise ValueError(f"symmetry augmentation needs a square/cubic grid, got spatial shape {spatial}")
    d = len(spatial)
    out = np.empty_like(batch)
    for i, sample in enumerate(batch):
        axes = 1 + rng.permutation(d)
        mapped = np.transpose(sample, (0, *axes))
        flips = tuple(1 + np.flatnonzero(rng.integers(0, 2, d)))
        out[i] = np.flip(mapped, axis=flips) if flips else mapped
    return out


class BatchStream:
    """Deterministic mini-batches of a (N, C, *S) array: ``batch(step)`` -> (B, C, *S) float32 numpy array.

    ``augment`` maps every sample by a random grid symmetry (``symmetry_augment``) drawn from (seed, step).
    """

    def __init__(
        self,
        fields: Any,
        batch_size: int,
        seed: int,
        cache_bytes: int = 2**30,
        buffer_bytes: int | None = None,
        augment: bool = False,
    ) -> None:
        self.fields = fields
        self.augment = augment
        self.n = int(fields.shape[0])
        self.batch_size = batch_size
        self.seed = seed
        sample_bytes = int(np.prod(fields.shape[1:])) * 4
        self.in_memory = self.n * sample_bytes <= cache_bytes
        self.data = np.asarray(fields[...], dtype=np.float32) if self.in_memory else None
        chunk = int(getattr(fields, "chunks", (self.n,))[0])
        self.chunk = chunk
        self.chunks_per_buffer = max(1, (buffer_bytes or cache_bytes // 4) // (chunk * sample_bytes))
        self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._buffer: tuple[tuple[int, int], np.ndarray, dict[int, int]] | None = None

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(sample indices (N,), buffer id per position (N,)) of ``epoch``; a function of (seed, epoch)."""
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            if self.in_memory:
                order, buffers = rng.permutation(self.n), np.zeros(self.n, dtype=np.int64)
            else:
                starts = rng.permutation(np.arange(0, self.n, self.chunk))
                parts, ids = [], []
                for b, i in enumerate(range(0, len(starts), self.chunks_per_buffer)):
                    idx = np.concatenate(
                        [
                            np.arange(s, min(s + self.chunk, self.n))
                            for s in starts[i : i + self.chunks_per_buffer]
                        ]
                    )
                    parts.append(rng.permutation(idx))
                    ids.append(np.full(len(idx), b))
                order, buffers = np.concatenate(parts), np.concatenate(ids)
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = (order, buffers)
        return self._orders[epoch]

    def batch(self, step: int) -> np.ndarray:
        """The (B, C, *S) float32 batch of training step ``step`` (0-based)."""
        positions = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        out = []
        for epoch in np.unique(positions // self.n):
            order, buffers = self.epoch_order(int(epoch))
            pos = positions[positions // self.n == epoch] % self.n
            if self.in_memory:
                out.append(self.data[order[pos]])
                continue
            for b in np.unique(buffers[pos]):
                sel = pos[buffers[pos] == b]
                data, where = self._read_buffer(int(epoch), int(b), order[buffers == b])
                out.append(data[[where[i] for i in order[sel]]])
        batch = np.concatenate(out).astype(np.float32, copy=False)
        if self.augment:
            batch = symmetry_augment(batch, np.random.default_rng([self.seed, step, 1]))
        return batch

    def _read_buffer(self, epoch: int, b: int, indices: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        """Buffer ``b`` of ``epoch`` read chunk by chunk: (data (M, C, *S), sample index -> row)."""
        if self._buffer is None or self._buffer[0] != (epoch, b):
            starts = sorted({int(i) // self.chunk * self.chunk for i in indices})
            data = np.concatenate(
                [np.asarray(self.fields[s : s + self.chunk], dtype=np.float32) for s in starts]
            )
            rows = {
                s + j: k
                for k, (s, j) in enumerate((s, j) for s in starts for j in range(min(self.chunk, self.n - s)))
            }
            self._buffer = ((epoch, b), data, rows)
        return self._buffer[1], self._buffer[2]

"""The material catalogue: a validated table of real engineering materials (E, nu, rho) and its chunks.

Units (SPEC 1): E in GPa, nu dimensionless, rho in g/cm^3. Property arrays are ordered (E, nu, rho).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from scipy.spatial import cKDTree

COLUMNS = ("name", "class", "E_GPa", "nu", "rho_g_cm3", "source")
NUMERIC_COLUMNS = ("E_GPa", "nu", "rho_g_cm3")
BOX_HI = np.array([500.0, 0.5, 10.0])
"""Upper corner of seed A's property box (E GPa, nu, rho g/cm^3); the lower corner is the origin."""
SEGMENTS = 10
"""Equal segments per axis of the box; 10**3 chunks in all."""
_BOUNDARY_TOL = 1e-9

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def chunk_index(props: Array) -> Array:
    """Chunk id iE*100 + inu*10 + irho of physical props (..., 3) -> (...,) ints; same array type as input.

    Segment i of an axis is [i, i+1) * hi/10 (the last one closed); a value on a boundary belongs to the
    upper segment, up to a 1e-9 tolerance on v/segment that absorbs round-off (0.35/0.05 = 6.999...).
    """
    scale = SEGMENTS / BOX_HI
    if isinstance(props, torch.Tensor):
        scaled = props.detach().double() * torch.as_tensor(scale, device=props.device)
        idx = torch.clamp(torch.floor(scaled + _BOUNDARY_TOL), 0, SEGMENTS - 1).long()
    else:
        scaled = np.asarray(props, dtype=np.float64) * scale
        idx = np.clip(np.floor(scaled + _BOUNDARY_TOL), 0, SEGMENTS - 1).astype(np.int64)
    return idx[..., 0] * SEGMENTS**2 + idx[..., 1] * SEGMENTS + idx[..., 2]


def _channel_constants(values: np.ndarray, like: Array) -> Array:
    """Per-channel constants (3,) as the array type, dtype and device of `like`."""
    if isinstance(like, torch.Tensor):
        dtype = like.dtype if like.is_floating_point() else torch.float64
        return torch.tensor(values.tolist(), dtype=dtype, device=like.device)
    return values


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Materials with names, classes, sources and properties E (GPa), nu, rho (g/cm^3), each (N,)."""

    names: list[str]
    classes: list[str]
    sources: list[str]
    E: np.ndarray
    nu: np.ndarray
    rho: np.ndarray
    hash: str

    def __len__(self) -> int:
        """Number of materials N."""
        return len(self.names)

    @functools.cached_property
    def props(self) -> np.ndarray:
        """Physical properties (N, 3) float64 in (E, nu, rho) order."""
        return _read_only(np.stack([self.E, self.nu, self.rho], axis=-1))

    @functools.cached_property
    def lo(self) -> np.ndarray:
        """Per-channel catalogue minimum (3,), mapped to -1 by `normalize`."""
        return _read_only(self.props.min(axis=0))

    @functools.cached_property
    def hi(self) -> np.ndarray:
        """Per-channel catalogue maximum (3,), mapped to +1 by `normalize`."""
        return _read_only(self.props.max(axis=0))

    @functools.cached_property
    def chunks(self) -> np.ndarray:
        """Chunk id (N,) int64 of every material."""
        return _read_only(chunk_index(self.props))

    @functools.cached_property
    def nonempty_chunks(self) -> np.ndarray:
        """Sorted unique chunk ids holding at least one material."""
        return _read_only(np.unique(self.chunks))

    @functools.cached_property
    def normalized_props(self) -> np.ndarray:
        """Catalogue properties (N, 3) in normalized [-1, 1] space."""
        return _read_only(self.normalize(self.props))

    def normalize(self, props: Array) -> Array:
        """Map physical (..., 3) to [-1, 1] per channel (catalogue min -> -1, max -> 1); numpy or torch."""
        lo, hi = _channel_constants(self.lo, props), _channel_constants(self.hi, props)
        return (props - lo) / (hi - lo) * 2 - 1

    def denormalize(self, x: Array) -> Array:
        """Map normalized (..., 3) back to physical E (GPa), nu, rho (g/cm^3); numpy or torch."""
        lo, hi = _channel_constants(self.lo, x), _channel_constants(self.hi, x)
        return (x + 1) / 2 * (hi - lo) + lo

    @functools.cached_property
    def _tree(self) -> cKDTree:
        """k-d tree of ``normalized_props`` for nearest-material queries."""
        return cKDTree(self.normalized_props)

    def nearest(self, x: Array) -> Array:
        """Index (...,) of the catalogue entry nearest to normalized points x (..., 3), Euclidean distance.

        A k-d tree query (scipy): snapping a batch of 16 64x64 fields (65,536 points) took 31 ms, the
        brute-force distance table it replaces 2.7 s (one thread, loaded machine); the "project" campaign of
        docs/results.md spent more time snapping than in network and FEM together."""
        if isinstance(x, torch.Tensor):
            return torch.from_numpy(self.nearest(x.detach().cpu().double().numpy())).to(x.device)
        points = np.asarray(x, dtype=np.float64)
        _, index = self._tree.query(points.reshape(-1, 3))
        return index.astype(np.int64).reshape(points.shape[:-1])


def _read_only(array: np.ndarray) -> np.ndarray:
    """The same array marked read-only, so a cached catalogue cannot be changed in place."""
    array.flags.writeable = False
    return array


def _row_error(line: int, name: str, problem: str) -> ValueError:
    """A ValueError that names the CSV line, the material and what is wrong with it."""
    return ValueError(f"catalogue line {line} ({name!r}): {problem}")


def _parse_number(row: dict[str, str], column: str, line: int, name: str) -> float:
    """The finite float in `column` of a CSV row; raises ValueError naming the row otherwise."""
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise _row_error(line, name, f"{column}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise _row_error(line, name, f"{column}={text!r} is not finite")
    return value


def _check_in_box(E: float, nu: float, rho: float, line: int, name: str) -> None:
    """Raise ValueError unless E in (0, 500] GPa, nu in (0, 0.5), rho in (0, 10] g/cm^3."""
    if not 0 < E <= BOX_HI[0]:
        raise _row_error(line, name, f"E_GPa={E} outside (0, {BOX_HI[0]:g}]")
    if not 0 < nu < BOX_HI[1]:
        raise _row_error(line, name, f"nu={nu} outside (0, {BOX_HI[1]:g})")
    if not 0 < rho <= BOX_HI[2]:
        raise _row_error(line, name, f"rho_g_cm3={rho} outside (0, {BOX_HI[2]:g}]")


def parse_catalogue(data: bytes) -> Catalogue:
    """Validate and parse catalogue CSV bytes (columns name,class,E_GPa,nu,rho_g_cm3,source); every property
    must take two distinct values (the field normalization maps [min, max] to [-1, 1])."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"catalogue header lacks required columns {missing}; found {reader.fieldnames}")
    names: list[str] = []
    classes: list[str] = []
    sources: list[str] = []
    values: list[tuple[float, float, float]] = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        name = (row["name"] or "").strip()
        if not name:
            raise _row_error(line, name, "empty name")
        if name in first_line:
            raise _row_error(line, name, f"duplicate name (first on line {first_line[name]})")
        first_line[name] = line
        E, nu, rho = (_parse_number(row, column, line, name) for column in NUMERIC_COLUMNS)
        _check_in_box(E, nu, rho, line, name)
        names.append(name)
        classes.append((row["class"] or "").strip())
        sources.append((row["source"] or "").strip())
        values.append((E, nu, rho))
    if not values:
        raise ValueError("catalogue has no materials")
    props = np.array(values, dtype=np.float64)
    constant = [c for c, lo, hi in zip(NUMERIC_COLUMNS, props.min(0), props.max(0), strict=True) if lo == hi]
    if constant:
        raise ValueError(
            f"catalogue has one value of {', '.join(constant)} for all {len(values)} material(s); fields are "
            "normalized by each property's [min, max], so every property needs two distinct values"
        )
    return Catalogue(
        names=names,
        classes=classes,
        sources=sources,
        E=_read_only(props[:, 0].copy()),
        nu=_read_only(props[:, 1].copy()),
        rho=_read_only(props[:, 2].copy()),
        hash=hashlib.sha256(data).hexdigest(),
    )


@functools.lru_cache(maxsize=1)
def _shipped_catalogue() -> Catalogue:
    """The catalogue shipped in `matdiff/materials/data/catalogue.csv`, parsed once."""
    data = resources.files("matdiff.materials").joinpath("data", "catalogue.csv").read_bytes()
    return parse_catalogue(data)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue CSV; None loads the shipped one (cached)."""
    if path is None:
        return _shipped_catalogue()
    return parse_catalogue(Path(path).read_bytes())

"""Orthotropic metamaterial unit cells in the family of seed B's dataset (Wang et al. 2020; METASET 2D).

A cell is a binary (size, size) array, 1 = solid, first row = top edge, mirror-symmetric about both centre
lines (orthotropic) and connected across the periodic boundary: a 3x3 tiling of the cell has exactly one solid
component (4-connectivity, scipy.ndimage.label). Two topology families (**chosen**), drawn with equal
probability, built on one quarter and mirrored:

- ``fourier``: a smooth random field sum_{k,l<=K} a_kl cos(2 pi k x) cos(2 pi l y) thresholded at the quantile
  that gives the drawn volume fraction (organic holes and ligaments);
- ``cutouts``: a solid cell with random rectangular and elliptical void pockets (the look of the METASET
  cells: a solid body with pockets at corners, edges and centre).

Volume fractions are drawn uniformly in ``vf_range`` (default (0.6, 0.9): the METASET reference cells span
0.70-0.96 with median 0.73, and seed B's targets C11 = 50-70 of a solid's 110 need roughly 0.6-0.85);
a drawn cell that misses the range by more than 0.05 or is not connected is redrawn.
Seed B's grayscale conversion (sec. 3.1.1) is ``grayscale_cells``: Gaussian noise (std 0.01) on the {0, 1}
cell, Gaussian filter (std 1.2 px, periodic), map to [-1, 1], bilinear resize to 32x32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

FAMILIES = ("fourier", "cutouts")


def mirror_quarter(quarter: np.ndarray) -> np.ndarray:
    """Full (2h, 2w) cell from its top-left (h, w) quarter, mirrored about both centre lines."""
    top = np.concatenate([quarter, quarter[:, ::-1]], axis=1)
    return np.concatenate([top, top[::-1]], axis=0)


def is_periodically_connected(cell: np.ndarray) -> bool:
    """True if the solid phase of a 3x3 tiling of `cell` (h, w) is one 4-connected component."""
    solid = np.asarray(cell, dtype=bool)
    if not solid.any():
        return False
    _, count = ndimage.label(np.tile(solid, (3, 3)))
    return count == 1


def is_orthotropic(cell: np.ndarray) -> bool:
    """True if `cell` is mirror-symmetric about its horizontal and vertical centre lines."""
    return bool(np.array_equal(cell, cell[::-1]) and np.array_equal(cell, cell[:, ::-1]))


def fourier_quarter(half: int, vf: float, rng: np.random.Generator, max_freq: int = 4) -> np.ndarray:
    """Top-left quarter (half, half) of a thresholded random cosine field with solid fraction ~vf."""
    size = 2 * half
    centres = (np.arange(half) + 0.5) / size
    k = np.arange(max_freq + 1)
    decay = rng.uniform(1.0, 2.5)
    amp = rng.normal(size=(max_freq + 1, max_freq + 1)) / (1.0 + k[:, None] ** 2 + k[None, :] ** 2) ** (
        decay / 2
    )
    amp[0, 0] = 0.0
    basis = np.cos(2 * np.pi * k[:, None] * centres[None, :])  # (K+1, half)
    field = basis.T @ amp @ basis  # (half, half): rows = y, cols = x
    threshold = np.quantile(field, 1.0 - vf)
    return field > threshold


def cutout_quarter(half: int, vf: float, rng: np.random.Generator, max_cuts: int = 4) -> np.ndarray:
    """Top-left quarter (half, half) of a solid cell with rectangular/elliptic void pockets, ~vf solid."""
    yy, xx = np.meshgrid(np.arange(half) + 0.5, np.arange(half) + 0.5, indexing="ij")
    solid = np.ones((half, half), dtype=bool)
    for _ in range(rng.integers(1, max_cuts + 1)):
        if solid.mean() <= vf:
            break
        cy, cx = rng.uniform(0, half, size=2)
        # pockets anchored at the cell edge or corner half of the time, like the METASET cells
        if rng.random() < 0.5:
            cy = rng.choice([0.0, cy])
            cx = rng.choice([0.0, cx]) if cy != 0.0 else cx
        ry, rx = rng.uniform(0.1, 0.45, size=2) * half
        if rng.random() < 0.5:
            pocket = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        else:
            pocket = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        solid &= ~pocket
    return solid


def metamaterial_cell(
    size: int, rng: np.random.Generator, vf_range: tuple[float, float] = (0.6, 0.9), max_tries: int = 200
) -> tuple[np.ndarray, str]:
    """One binary orthotropic, periodically connected cell (size, size) bool and the name of its family."""
    if size % 2:
        raise ValueError(f"size must be even (mirror symmetry about the centre lines), got {size}")
    half = size // 2
    for _ in range(max_tries):
        vf = rng.uniform(*vf_range)
        family = FAMILIES[rng.integers(len(FAMILIES))]
        quarter = fourier_quarter(half, vf, rng) if family == "fourier" else cutout_quarter(half, vf, rng)
        cell = mirror_quarter(quarter)
        realized = cell.mean()
        if (
            vf_range[0] - 0.05 <= realized <= vf_range[1] + 0.05
            and realized < 1.0
            and is_periodically_connected(cell)
        ):
            return cell, family
    raise RuntimeError(f"no connected cell found in {max_tries} tries for vf_range={vf_range}")


def metamaterial_cells(
    n: int, size: int = 50, rng: np.random.Generator | None = None, vf_range: tuple[float, float] = (0.6, 0.9)
) -> tuple[np.ndarray, list[str]]:
    """n binary cells (n, size, size) bool (1 = solid, row 0 = top) and their topology families."""
    rng = np.random.default_rng(0) if rng is None else rng
    cells, families = zip(*(metamaterial_cell(size, rng, vf_range) for _ in range(n)), strict=True)
    return np.stack(cells), list(families)


def grayscale_cells(
    cells: np.ndarray,
    rng: np.random.Generator,
    out_size: int = 32,
    noise_std: float = 0.01,
    blur_std: float = 1.2,
) -> np.ndarray:
    """Seed B's grayscale fields (n, 1, out_size, out_size) float32 in [-1, 1] from binary cells (n, s, s)."""
    x = np.asarray(cells, dtype=np.float64)
    x = x + rng.normal(scale=noise_std, size=x.shape)
    x = ndimage.gaussian_filter(x, sigma=(0, blur_std, blur_std), mode="wrap")
    x = np.clip(2.0 * x - 1.0, -1.0, 1.0)
    t = torch.as_tensor(x, dtype=torch.float32)[:, None]
    if t.shape[-1] != out_size:
        t = F.interpolate(t, size=(out_size, out_size), mode="bilinear", align_corners=False)
    return t.clamp(-1.0, 1.0).numpy()


def metamaterial_dataset(
    n: int,
    rng: np.random.Generator | None = None,
    size: int = 32,
    base_size: int = 50,
    vf_range: tuple[float, float] = (0.6, 0.9),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Grayscale metamaterial fields (n, 1, size, size) float32 in [-1, 1] (bright = solid), per-cell params.

    Cells are drawn binary at base_size x base_size (seed B's 50x50) and converted with `grayscale_cells`.
    Params: ``volume_fraction`` (n,) of the binary cell, ``family`` (n,) int index into FAMILIES.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    cells, families = metamaterial_cells(n, base_size, rng, vf_range)
    fields = grayscale_cells(cells, rng, out_size=size)
    params = {
        "volume_fraction": cells.reshape(n, -1).mean(axis=1),
        "family": np.array([FAMILIES.index(f) for f in families], dtype=np.int64),
    }
    return fields, params

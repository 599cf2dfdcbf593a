"""Figures shared by every stage: a PNG grid of fields (E channel, or the only channel of style images)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def field_image(field: np.ndarray, channel: int = 0) -> np.ndarray:
    """2D image of one channel of a field (C, *spatial): the field itself in 2D, the middle z slice in 3D."""
    image = np.asarray(field)[channel]
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def field_grid_png(
    path: str | Path,
    fields: np.ndarray,
    captions: Sequence[str] | None = None,
    title: str = "",
    channel: int = 0,
) -> Path:
    """Write a PNG grid of channel ``channel`` of normalized fields (N, C, *spatial) in [-1, 1]; returns path.

    One panel per field (viridis, -1 to 1, origin at the bottom left = (y, x) axis order), with an optional
    caption each; 3D fields show their middle z slice.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(fields)
    cols = min(max(n, 1), 8)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, field) in enumerate(zip(axes.flat, fields, strict=False)):
        ax.imshow(field_image(field, channel), cmap="viridis", vmin=-1, vmax=1, origin="lower")
        if captions is not None:
            ax.set_title(captions[i], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

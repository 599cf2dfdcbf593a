"""Files of a noise-space design run (seed B): result.json, arrays.npz and the pictures a person looks at.

- designs.png: initial and final densities per design, with their losses and binarization;
- tiling_5x5.png: each final cell tiled 5 x 5 (periodic microstructure);
- loss_curve.png: best loss in stage after every evaluation, stage changes dashed, the tolerance in red.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ARRAYS = (
    "noise_init",
    "noise_final",
    "image_init",
    "design_init",
    "design_final",
    "loss_history",
    "history_stage",
)


def tile(cell: np.ndarray, n: int = 5) -> np.ndarray:
    """An (n H, n W) periodic tiling of one cell (H, W)."""
    return np.tile(cell, (n, n))


def save_noise_figures(summary: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """designs.png, tiling_5x5.png and loss_curve.png from a run's summary and arrays (see ``ARRAYS``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    final, initial = arrays["design_final"], arrays["design_init"]
    B = final.shape[0]
    fig, axes = plt.subplots(2, B, figsize=(2.6 * B, 5.4), squeeze=False)
    for b in range(B):
        for row, (name, arr, loss) in enumerate(
            [("initial", initial, summary["loss_init"]), ("final", final, summary["loss_final"])]
        ):
            ax = axes[row, b]
            ax.imshow(arr[b], cmap="gray_r", vmin=0, vmax=1)
            title = f"{name} #{b}\nloss {loss[b]:.3g}"
            if row == 1:
                title += f", B {100 * summary['binarization'][b]:.1f}%"
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "designs.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, B, figsize=(3.2 * B, 3.2), squeeze=False)
    for b in range(B):
        axes[0, b].imshow(tile(final[b]), cmap="gray_r", vmin=0, vmax=1)
        axes[0, b].set_title(f"design #{b}, 5x5 cells", fontsize=8)
        axes[0, b].axis("off")
    fig.tight_layout()
    fig.savefig(out / "tiling_5x5.png", dpi=120)
    plt.close(fig)

    history, stage = arrays["loss_history"], arrays["history_stage"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for b in range(B):
        ax.semilogy(np.maximum(history[:, b], 1e-12), label=f"design #{b}")
    for k in np.flatnonzero(np.diff(stage)) + 1:
        ax.axvline(k, color="gray", lw=0.6, ls="--")
    ax.axhline(summary["config"]["tol"], color="red", lw=0.6)
    ax.set_xlabel("evaluation (dashed: next gamma)")
    ax.set_ylabel("best loss in stage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_curve.png", dpi=120)
    plt.close(fig)


def write_noise_report(out: Path, campaign, extra: dict[str, Any]) -> dict[str, Any]:
    """result.json (the run's summary, the re-evaluated C_hom and relative errors, ``extra``), arrays.npz
    and the figures of a one-target, one-unit noise-space campaign; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    rows = campaign.rows[0]
    summary = {
        **campaign.traces[0][0],
        "C_reevaluated": [r["value"] for r in rows],
        "relative_error": [r["relative_error"] for r in rows],
        **extra,
    }
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    arrays = {**campaign.arrays[0], "image_final": campaign.fields[0]}
    np.savez_compressed(out / "arrays.npz", **arrays)
    save_noise_figures(summary, arrays, out)
    return summary

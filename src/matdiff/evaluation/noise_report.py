"""Files of a noise-space design run (seed B): result.json, arrays.npz and the pictures a person looks at.

- designs.png: per design, the initial and final density of every designed field with the losses (final,
  thresholded) and binarization, then the fixed fields;
- tiling_5x5.png (periodic objectives, C_hom): each final cell tiled 5 x 5;
- loss_curve.png: best loss in stage after every evaluation, stage changes dashed, the tolerance in red;
- curves.png (curve objectives): the target curve against the initial, final and thresholded designs' curves;
- deformed.png (curve objectives): each final design on its mesh, deformed by the displacement of the last
  load step (magnified when small, as the title says), as seed B shows its designs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

QUANTITY_LABELS = {"C": "C_hom (GPa)", "energy": "strain energy", "stress": "mean sigma_yy (MPa)"}
"""Axis labels of the objectives' quantities (``describe()["quantity"]``)."""


def tile(cell: np.ndarray, n: int = 5) -> np.ndarray:
    """An (n H, n W) periodic tiling of one cell (H, W)."""
    return np.tile(cell, (n, n))


def display_scale(displacement: np.ndarray, visible: float = 0.1) -> float:
    """Magnification of a displacement (..., 2, H+1, W+1) on the unit square so that its largest nodal
    displacement shows as at least ``visible``; 1 when it already does (or is zero)."""
    largest = float(np.abs(displacement).max()) if displacement.size else 0.0
    return 1.0 if largest >= visible or largest == 0.0 else visible / largest


def deformed_nodes(displacement: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Deformed node coordinates (x, y), each (H+1, W+1), of the square-voxel grid whose nodal displacement
    (2, H+1, W+1) has row 0 at the top: x = column h + scale u_x, y = (H - row) h + scale u_y,
    h = 1 / max(H, W)."""
    H, W = displacement.shape[1] - 1, displacement.shape[2] - 1
    h = 1.0 / max(H, W)
    rows, cols = np.meshgrid(np.arange(H + 1), np.arange(W + 1), indexing="ij")
    return cols * h + scale * displacement[0], (H - rows) * h + scale * displacement[1]


def _plt():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_designs(summary: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """designs.png: initial and final densities of every designed field per design, then the fixed fields."""
    plt = _plt()
    fields, fixed = summary["objective"]["fields"], summary["objective"]["fixed"]
    initial, final = arrays["design_init"], arrays["design_final"]
    B = final.shape[0]
    rows = [(f"initial {f}", initial[:, i], "init") for i, f in enumerate(fields)]
    rows += [(f"final {f}", final[:, i], "final") for i, f in enumerate(fields)]
    rows += [(f"fixed {f}", np.broadcast_to(arrays[f"fixed_{f}"], final[:, 0].shape), "") for f in fixed]
    fig, axes = plt.subplots(len(rows), B, figsize=(2.6 * B, 2.7 * len(rows)), squeeze=False)
    for r, (label, images, kind) in enumerate(rows):
        for b in range(B):
            title = f"{label} #{b}"
            if kind:
                title += f"\nloss {summary[f'loss_{kind}'][b]:.3g}"
            if kind == "final":
                title += f", B {100 * summary['binarization'][b]:.1f}%"
                title += f"\nthresholded loss {summary['loss_thresholded'][b]:.3g}"
            axes[r, b].imshow(images[b], cmap="gray_r", vmin=0, vmax=1)
            axes[r, b].set_title(title, fontsize=8)
            axes[r, b].axis("off")
    fig.tight_layout()
    fig.savefig(out / "designs.png", dpi=120)
    plt.close(fig)


def save_tiling(arrays: dict[str, np.ndarray], out: Path) -> None:
    """tiling_5x5.png: each final (one-field, periodic) cell tiled 5 x 5."""
    plt = _plt()
    final = arrays["design_final"][:, 0]
    B = final.shape[0]
    fig, axes = plt.subplots(1, B, figsize=(3.2 * B, 3.2), squeeze=False)
    for b in range(B):
        axes[0, b].imshow(tile(final[b]), cmap="gray_r", vmin=0, vmax=1)
        axes[0, b].set_title(f"design #{b}, 5x5 cells", fontsize=8)
        axes[0, b].axis("off")
    fig.tight_layout()
    fig.savefig(out / "tiling_5x5.png", dpi=120)
    plt.close(fig)


def save_loss_history(summary: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """loss_curve.png: best loss in stage after every evaluation, per design."""
    plt = _plt()
    history, stage = arrays["loss_history"], arrays["history_stage"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for b in range(history.shape[1]):
        ax.semilogy(np.maximum(history[:, b], 1e-12), label=f"design #{b}")
    for k in np.flatnonzero(np.diff(stage)) + 1:
        ax.axvline(k, color="gray", lw=0.6, ls="--")
    ax.axhline(summary["config"]["tol"], color="red", lw=0.6)
    ax.set_xlabel("evaluation (dashed: next stage)")
    ax.set_ylabel("best loss in stage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_curve.png", dpi=120)
    plt.close(fig)


def save_curves(summary: dict[str, Any], out: Path) -> None:
    """curves.png: per design, the target curve and the initial, final and thresholded designs' curves."""
    plt = _plt()
    objective = summary["objective"]
    q, d = objective["quantity"], objective["displacements"]
    B = summary["n_designs"]
    fig, axes = plt.subplots(1, B, figsize=(4.2 * B, 3.6), squeeze=False)
    for b in range(B):
        ax = axes[0, b]
        ax.plot(d, objective["target"], "k-", lw=2, label="target")
        ax.plot(d, summary[f"{q}_init"][b], "--", color="gray", label="initial")
        ax.plot(d, summary[f"{q}_final"][b], "o-", ms=3, color="tab:blue", label="final")
        ax.plot(d, summary[f"{q}_thresholded"][b], ":", color="tab:orange", label="thresholded")
        ax.set_title(
            f"design #{b}: loss {summary['loss_final'][b]:.3g}, "
            f"thresholded {summary['loss_thresholded'][b]:.3g}",
            fontsize=8,
        )
        ax.set_xlabel("top displacement d")
        ax.set_ylabel(QUANTITY_LABELS.get(q, q))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


def save_deformed(summary: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """deformed.png: each final design's first designed field on its mesh, deformed by the displacement of
    the last load step."""
    plt = _plt()
    displacement, final = arrays["displacement_final"], arrays["design_final"]
    field, d_last = summary["objective"]["fields"][0], summary["objective"]["displacements"][-1]
    scale = display_scale(displacement)
    B = final.shape[0]
    fig, axes = plt.subplots(1, B, figsize=(3.4 * B, 3.6), squeeze=False)
    for b in range(B):
        x, y = deformed_nodes(displacement[b], scale)
        ax = axes[0, b]
        ax.pcolormesh(x, y, final[b, 0], cmap="gray_r", vmin=0, vmax=1, edgecolors="tab:blue", lw=0.1)
        ax.set_aspect("equal")
        magnified = f", displacement x{scale:.3g}" if scale != 1.0 else ""
        ax.set_title(f"design #{b} ({field}) at d = {d_last:g}{magnified}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "deformed.png", dpi=120)
    plt.close(fig)


def save_noise_figures(summary: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    """The run's figures (see the module docstring) from its summary and arrays (``NoiseOptResult``)."""
    save_designs(summary, arrays, out)
    save_loss_history(summary, arrays, out)
    if summary["objective"]["periodic"]:
        save_tiling(arrays, out)
    if "displacements" in summary["objective"]:
        save_curves(summary, out)
    if "displacement_final" in arrays:
        save_deformed(summary, arrays, out)


def write_noise_files(out: Path, summary: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """result.json (``summary``), arrays.npz and the figures in ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    np.savez_compressed(out / "arrays.npz", **arrays)
    save_noise_figures(summary, arrays, out)
    return summary


def write_noise_result(out: Path, result, extra: dict[str, Any]) -> dict[str, Any]:
    """The files of a ``guidance.noise_opt.NoiseOptResult`` (its summary with ``extra``); returns the
    summary."""
    return write_noise_files(out, {**result.summary(), **extra}, result.arrays())


def write_noise_report(out: Path, campaign, extra: dict[str, Any]) -> dict[str, Any]:
    """The files of a one-target, one-unit noise-space campaign (C_hom): its summary with the re-evaluated
    C_hom, relative errors and ``extra``; returns the summary."""
    rows = campaign.rows[0]
    summary = {
        **campaign.traces[0][0],
        "C_reevaluated": [r["value"] for r in rows],
        "relative_error": [r["relative_error"] for r in rows],
        **extra,
    }
    return write_noise_files(out, summary, campaign.arrays[0])

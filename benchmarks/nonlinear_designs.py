"""Table of seed B's nonlinear noise-space designs (issue 17): energy-curve (Figs. 9, 10) and stress-curve
(Fig. 15) runs of `matdiff optimize-noise`, read from their run folders.

Usage: python benchmarks/nonlinear_designs.py RUN_FOLDER [RUN_FOLDER ...] [--figure PNG]

Each folder is an `optimize-noise --out` folder (result.json). Prints one markdown row per design: the target,
the initial loss, the loss after seed B's last stage and its binarization B (tau = 1e-3), the loss of the
thresholded design (x > 0.5, what gets built) after seed B's stages and after the optional binary stage,
L-BFGS iterations over all stages and the wall time per design. --figure draws one row per design: the
initial and final fields (each designed or fixed field; dark = solid) and target, initial, final and
thresholded curves.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def target_label(result: dict) -> str:
    """A short name of the run's objective and target."""
    objective = result["objective"]
    source = ", ".join(f"{k} {v}" for k, v in objective.get("target_source", {}).items())
    fields = ",".join(objective.get("fields", []))
    return f"{objective.get('name', '?')} ({source}; designs {fields})"


def rows(folder: Path) -> list[list[str]]:
    """Markdown cells for every design of one run folder."""
    result = json.loads((folder / "result.json").read_text())
    stages = result["stages"]
    seed_b = [s for s in stages if not s.get("binary")]
    binary = [s for s in stages if s.get("binary")]
    out = []
    for i in range(result["n_designs"]):
        last = seed_b[-1]
        iterations = sum(s["iterations"][i] for s in stages)
        out.append(
            [
                folder.name,
                target_label(result),
                str(i),
                f"{result['loss_init'][i]:.3g}",
                f"{last['loss'][i]:.3g}",
                f"{100 * last['binarization'][i]:.1f}",
                f"{last['loss_thresholded'][i]:.3g}",
                f"{binary[-1]['loss_thresholded'][i]:.3g}" if binary else "-",
                str(iterations),
                f"{result['wall_time_per_design_s']:.0f}",
                result["failures"][i] or "",
            ]
        )
    return out


def draw(folders: list[Path], path: Path) -> None:
    """One row per design of every folder: its fields before / after, and its curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = []
    for folder in folders:
        if (folder / "result.json").exists():
            result = json.loads((folder / "result.json").read_text())
            runs.append((folder, result, np.load(folder / "arrays.npz")))
    n_rows = sum(r["n_designs"] for _, r, _ in runs)
    n_fields = max(a["design_final"].shape[1] for _, _, a in runs)
    fig, axes = plt.subplots(n_rows, 2 * n_fields + 1, figsize=(2.2 * (2 * n_fields + 1) + 1.5, 2.2 * n_rows),
                             squeeze=False)  # fmt: skip
    row = 0
    for folder, result, arrays in runs:
        objective = result["objective"]
        steps = np.asarray(objective["displacements"])
        names = objective.get("fields", [])
        for i in range(result["n_designs"]):
            ax_row = axes[row]
            for k in range(n_fields):
                for j, (key, when) in enumerate((("design_init", "initial"), ("design_final", "final"))):
                    ax = ax_row[2 * k + j]
                    ax.axis("off")
                    if k < arrays[key].shape[1]:
                        ax.imshow(arrays[key][i, k], cmap="gray_r", vmin=0, vmax=1)
                        ax.set_title(
                            f"{folder.name} #{i} {names[k] if k < len(names) else ''} {when}", fontsize=7
                        )
            ax = ax_row[-1]
            ax.plot(steps, objective["target"], "k--", label="target")
            for key, style in (
                ("quantity_init", ":"),
                ("quantity_final", "-"),
                ("quantity_thresholded", "-."),
            ):
                ax.plot(steps, arrays[key][i], style, label=key.split("_")[1])
            losses = result["loss_final"][i], result["loss_thresholded"][i]
            ax.set_title("loss {:.3g}, thresholded {:.3g}".format(*losses), fontsize=7)
            ax.tick_params(labelsize=6)
            if row == 0:
                ax.legend(fontsize=6)
            row += 1
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--figure", type=Path, help="also draw the designs and curves into this PNG")
    args = parser.parse_args()
    header = [
        "run", "target", "design", "initial loss", "loss (last gamma)", "B (%)", "thresholded loss",
        "thresholded after binary stage", "L-BFGS iterations", "wall s / design", "failure",
    ]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for folder in args.folders:
        if not (folder / "result.json").exists():
            print(f"| {folder.name} | (no result.json: not finished) |")
            continue
        for row in rows(folder):
            print("| " + " | ".join(row) + " |")
    if args.figure is not None:
        draw(args.folders, args.figure)


if __name__ == "__main__":
    main()

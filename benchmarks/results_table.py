"""Print markdown tables of `matdiff evaluate` runs side by side with seed A's 2D numbers; for refined runs
also the stages of seed A's table 5 (generated, backprojected, refined), cov and material pairs before/after.

.venv/bin/python benchmarks/results_table.py runs/results/tfg runs/results/unguided ...
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

# seed A, table 1(a): 2D, 200 samples per target, 3 seeds; targets 4.8 .. 332.2 GPa on its own catalogue
SEED_A = {
    "frac@1%": [0.003, 0.052, 0.110, 0.043, 0.033],
    "frac@5%": [0.033, 0.278, 0.500, 0.195, 0.107],
}


def main(runs: list[str]) -> None:
    for run in map(Path, runs):
        rows = list(csv.DictReader((run / "table.csv").open()))
        meta = json.loads((run / "evaluate.json").read_text())
        g = meta["guidance"]
        print(
            f"\n**{run.name}**: method {g['method']}, {g['steps']} steps, eta {g['eta']}, "
            f"snap_every {g['snap_every']}, density weight {meta['density_weight']}, "
            f"{meta['n']} samples per target, seed {meta['seed']}\n"
        )
        cols = ["frac@1%", "cov@1%", "frac@5%", "cov@5%", "frac@5GPa", "valid", "mean_density"]
        seed_a = len(rows) == 5
        extra = [f"seed A {k}" for k in SEED_A] if seed_a else []
        print("| target K* (GPa) | " + " | ".join(cols + extra) + " |")
        print("|---" * (len(cols) + len(extra) + 1) + "|")
        for i, r in enumerate(rows):
            vals = [f"{float(r[c]):.3f}" if c != "valid" else f"{r['valid']}/{r['n']}" for c in cols]
            vals += [f"{ref[i]:.3f}" for ref in SEED_A.values()] if seed_a else []
            print(f"| {float(r['target_GPa']):.2f} | " + " | ".join(vals) + " |")
        if rows and "frac@1%_before" in rows[0]:
            print_stages(rows)


def print_stages(rows: list[dict[str, str]]) -> None:
    """Where designs are won and lost (seed A's table 5 stages): frac of the generated sample, of the fitted
    "free" materials at the backprojected radius and volume fraction, of the backprojected catalogue design
    (both re-evaluated on the same microstructures), and of the refined design (re-evaluated on fresh ones);
    cov@1% and distinct material pairs before and after refinement."""
    names = {"_generated": "generated", "_free": "free", "_before": "backprojected", "": "refined"}
    stages = [s for s in names if f"frac@1%{s}" in rows[0]]  # "free": runs made after it was added
    head = [f"frac@{m} {names[s]}" for m in ("1%", "5%") for s in stages]
    head += ["cov@1% before / after", "pairs before / after", "refined"]
    print("\n| target K* (GPa) | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for r in rows:
        vals = [f"{float(r[f'frac@{m}{s}']):.3f}" for m in ("1%", "5%") for s in stages]
        vals += [f"{float(r['cov@1%_before']):.3f} / {float(r['cov@1%']):.3f}"]
        vals += [f"{r['pairs_before']} / {r['pairs']}", f"{r['refined']}/{r['valid']}"]
        print(f"| {float(r['target_GPa']):.2f} | " + " | ".join(vals) + " |")
    if "mean_material_distance" in rows[0]:
        pairs = [(float(r["mean_fitting_variance"]), float(r["mean_material_distance"])) for r in rows]
        fits = ", ".join(f"{v:.4f} / {d:.3f}" for v, d in pairs)
        print(f"\nmean material-fitting variance / nearest-material distance per target: {fits}")


if __name__ == "__main__":
    main(sys.argv[1:])

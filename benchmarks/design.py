"""Wall time of a guided 2D design campaign, split into network, FEM, backprojection and re-evaluation.

    .venv/bin/python benchmarks/design.py --n 200 --steps 100 --batch 50

Prints a table; compare with seed A: 1241 s per batch of 50 samples of 2D 64x64 at 100 steps (99.5% FEM),
on 16 CPU cores and an A40.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from matdiff.diffusion import load_model
from matdiff.evaluation import Evaluator, run_campaign
from matdiff.guidance import GuidanceConfig, target_bulk_modulus
from matdiff.materials import load_catalogue
from matdiff.methods import GuidedDiffusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled)")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--target", type=float, default=100.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    model = load_model(args.model, device=args.device)
    catalogue = load_catalogue()
    method = GuidedDiffusion(model, catalogue, GuidanceConfig(steps=args.steps), progress=False)
    evaluator = Evaluator(catalogue, model.dim, int(model.size), device=args.device)
    start = time.perf_counter()
    campaign = run_campaign(
        method, [target_bulk_modulus(args.target)], args.n, evaluator, batch=args.batch, seed=0
    )
    totals = campaign.seconds[0]
    wall = time.perf_counter() - start
    per_batch = wall / -(-args.n // args.batch)

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"device {args.device}; model {model.dim}D {model.size}^{model.dim}; {args.n} samples, "
        f"{args.steps} steps, batch {args.batch}"
    )
    print("| part | seconds | share |\n|---|---|---|")
    for key in ("network", "fem", "backprojection", "reevaluation"):
        print(f"| {key} | {totals.get(key, 0.0):.1f} | {totals.get(key, 0.0) / wall:.1%} |")
    print(f"| total | {wall:.1f} | 100% |")
    print(
        f"per batch of {args.batch}: {per_batch:.1f} s (seed A: 1241 s per batch of 50, 2D 64x64, 100 steps)"
    )


if __name__ == "__main__":
    main()

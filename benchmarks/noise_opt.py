"""Seed B noise-space design benchmark (issue 7): style models, generator statistics, seed B's targets.

    python benchmarks/noise_opt.py data                      # style stores under data/ (git-ignored)
    python benchmarks/noise_opt.py train --style digits      # seedB-preset model (optionally narrower) on CPU
    python benchmarks/noise_opt.py stats                     # metamaterial generator vs METASET reference
    python benchmarks/noise_opt.py samples --style digits    # range of the model's DDIM samples x0
    python benchmarks/noise_opt.py run --style digits        # seed B's targets, two initial noises each
    python benchmarks/noise_opt.py table runs/noise_opt/*    # results table of finished runs

Each subcommand prints a table; `run` also writes one optimize-noise output folder per target.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METASET = ROOT / ".." / "shared" / "data" / "metaset-2d"
STORES = {"digits": ROOT / "data" / "digits32.zarr", "metamaterial": ROOT / "data" / "metamaterial32.zarr"}


def make_data(args: argparse.Namespace) -> None:
    """Write both style stores (5,000 fields each) under data/."""
    from matdiff.styles import make_style_store

    for style, path in STORES.items():
        t0 = time.perf_counter()
        make_style_store(style, path, n=5000, seed=0, overwrite=True)
        print(f"{style:14s} {path}  {time.perf_counter() - t0:.1f} s")


def train_model(args: argparse.Namespace) -> None:
    """Train (or resume) a seedB-preset model for one style under runs/seedB-<style>-w<width>."""
    import torch

    from matdiff.diffusion import train
    from matdiff.diffusion.presets import width_overrides

    torch.set_num_threads(args.threads)
    out = ROOT / "runs" / f"seedB-{args.style}-w{args.width}"
    overrides = None if args.width == 48 else width_overrides("seedB", args.width)
    result = train(
        STORES[args.style],
        out,
        preset="seedB",
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        ema=args.ema,
        ckpt_every=args.ckpt_every,
        unet_overrides=overrides,
        time_limit=args.time_limit,
        device="cpu",
        progress=False,
        log_every=10,
    )
    tail = result.losses[-50:]
    print(
        f"{args.style}: step {result.step} in {result.seconds:.0f} s, mean loss of the last {len(tail)} "
        f"steps {np.mean(tail):.4f}; checkpoint {result.checkpoint}"
    )


def load_metaset() -> np.ndarray:
    """The 245 distinct METASET reference cells (N, 50, 50) bool (1 = solid, row 0 = top)."""
    cells = []
    for archive in sorted(METASET.glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            cells += [np.loadtxt(z.open(n), delimiter=",") > 0.5 for n in z.namelist() if n.endswith(".txt")]
    return np.unique(np.stack(cells), axis=0)


def stiffness_of_cells(cells: np.ndarray, batch: int = 64) -> np.ndarray:
    """C_hom (N, 3, 3) of binary cells (N, H, W) with seed B's phases (E 1 / 100, nu 0.3, plane stress)."""
    import torch

    from matdiff.fem import homogenized_stiffness

    out = []
    for i in range(0, len(cells), batch):
        E = 1.0 + 99.0 * torch.as_tensor(cells[i : i + batch][:, ::-1].copy(), dtype=torch.float64)
        out.append(homogenized_stiffness(E, torch.full_like(E, 0.3)).numpy())
    return np.concatenate(out)


def quantile_row(name: str, values: np.ndarray) -> str:
    """A table row: name, 5/25/50/75/95 % quantiles."""
    q = np.percentile(values, [5, 25, 50, 75, 95])
    return f"| {name} | " + " | ".join(f"{v:.3g}" for v in q) + " |"


def generator_stats(args: argparse.Namespace) -> None:
    """Volume fraction and C_hom quantiles: generated metamaterial cells vs the METASET reference."""
    import torch

    from matdiff.styles import is_orthotropic, is_periodically_connected, metamaterial_cells

    torch.set_num_threads(args.threads)
    ref = load_metaset()
    ours, families = metamaterial_cells(args.n, 50, np.random.default_rng(args.seed))
    print(
        f"reference: {len(ref)} METASET cells; ours: {len(ours)} cells "
        f"({families.count('fourier')} fourier, {families.count('cutouts')} cutouts)"
    )
    valid_ref = np.mean([is_orthotropic(c) and is_periodically_connected(c) for c in ref])
    valid_ours = np.mean([is_orthotropic(c) and is_periodically_connected(c) for c in ours])
    print(f"orthotropic and periodically connected: reference {valid_ref:.0%}, ours {valid_ours:.0%}")
    t0 = time.perf_counter()
    C_ref, C_ours = stiffness_of_cells(ref), stiffness_of_cells(ours)
    print(
        f"C_hom of {len(ref) + len(ours)} cells (50x50, E 1/100, nu 0.3): {time.perf_counter() - t0:.1f} s\n"
    )
    print("| quantity | set | 5% | 25% | 50% | 75% | 95% |\n|---|---|---|---|---|---|---|")
    for label, C, cells in (("METASET", C_ref, ref), ("matdiff", C_ours, ours)):
        rows = {
            "volume fraction": cells.mean(axis=(1, 2)),
            "C11": C[:, 0, 0],
            "C22": C[:, 1, 1],
            "C12": C[:, 0, 1],
            "C33": C[:, 2, 2],
            "C11/C22": C[:, 0, 0] / C[:, 1, 1],
            "abs(C13)+abs(C23)": np.abs(C[:, 0, 2]) + np.abs(C[:, 1, 2]),
        }
        for name, values in rows.items():
            print(quantile_row(f"{name} | {label}", values))
    for style, targets in (("metamaterial", ("orthotropic", "tetragonal")),):
        from matdiff.guidance.noise_opt import SEED_B_TARGETS

        for t in targets:
            T = np.array(SEED_B_TARGETS[style][t], dtype=float)
            for label, C in (("METASET", C_ref), ("matdiff", C_ours)):
                d = ((C - T) ** 2).sum(axis=(1, 2))
                print(f"seed B {style}/{t} target: nearest {label} cell has loss {d.min():.3g}")


def run_targets(args: argparse.Namespace) -> None:
    """Seed B's targets for one style, two initial noises each (one batch of 2 per target)."""
    import torch

    from matdiff.diffusion import load_model
    from matdiff.evaluation import Evaluator, run_campaign
    from matdiff.evaluation.noise_report import write_noise_report
    from matdiff.guidance import TargetObjective
    from matdiff.guidance.noise_opt import SEED_B_TARGETS, NoiseOptConfig
    from matdiff.materials import load_catalogue
    from matdiff.methods import NoiseSpace
    from matdiff.styles import bundled_model_path

    torch.set_num_threads(args.threads)
    model_path = Path(args.model) if args.model else bundled_model_path(args.style)
    net = load_model(model_path, device="cpu")
    overrides = {"gammas": tuple(float(g) for g in args.gammas.split(","))} if args.gammas else {}
    config = NoiseOptConfig.for_style(
        args.style,
        max_iter=args.max_iter,
        tol=args.tol,
        joint=args.joint,
        n_candidates=args.candidates,
        **overrides,
    )
    names = args.targets.split(",") if args.targets else list(SEED_B_TARGETS[args.style])
    rows = []
    for name in names:
        objective = TargetObjective("homogenized_stiffness", SEED_B_TARGETS[args.style][name])
        evaluator = Evaluator(load_catalogue())
        result = run_campaign(NoiseSpace(net, config), [objective], args.n_designs, evaluator, seed=args.seed)
        tag = f"-c{args.candidates}" if args.candidates else ""
        tag += "-joint" if args.joint else ""
        tag += "-g" + args.gammas.replace(",", "_") if args.gammas else ""
        tag += "-m" + Path(args.model).name if args.model else ""
        out = ROOT / "runs" / "noise_opt" / f"{args.style}-{name}-seed{args.seed}-it{args.max_iter}{tag}"
        command = (
            f"python benchmarks/noise_opt.py run --style {args.style} --targets {name} "
            f"--max-iter {args.max_iter} --seed {args.seed} --n-designs {args.n_designs} "
            f"--candidates {args.candidates}"
            + (" --joint" if args.joint else "")
            + (f" --gammas {args.gammas}" if args.gammas else "")
            + (f" --model {args.model}" if args.model else "")
        )
        write_noise_report(
            out,
            result,
            {
                "style": args.style,
                "target_name": name,
                "seed": args.seed,
                "model": str(model_path),
                "command": command,
            },
        )
        rows += result_rows(json.loads((out / "result.json").read_text()))
        print("\n".join(rows[-args.n_designs :]), flush=True)
    print_table(rows)


TABLE_HEADER = (
    "| style | target | design | initial loss | loss after each stage | final loss | B (%) | L-BFGS iters "
    "| wall s / design | final C11, C22, C12, C33, C13, C23 |\n|---|---|---|---|---|---|---|---|---|---|"
)


def result_rows(summary: dict) -> list[str]:
    """Markdown table rows, one per design, from an optimize-noise result.json summary."""
    rows = []
    for b in range(summary["n_designs"]):
        stages = summary["stages"]
        C = np.asarray(summary["C_final"][b])
        comps = ", ".join(f"{C[i, j]:.2f}" for i, j in ((0, 0), (1, 1), (0, 1), (2, 2), (0, 2), (1, 2)))
        rows.append(
            f"| {summary['style']} | {summary['target_name']} | {b} | {summary['loss_init'][b]:.3g} | "
            + " / ".join(f"{s['loss'][b]:.3g}" for s in stages)
            + f" | **{summary['loss_final'][b]:.3g}** | {100 * summary['binarization'][b]:.1f} | "
            f"{sum(s['iterations'][b] for s in stages)} | {summary['wall_time_per_design_s']:.0f} | {comps} |"
        )
    return rows


def print_table(rows: list[str]) -> None:
    """The results table with its header."""
    print(TABLE_HEADER)
    print("\n".join(rows))


def show_table(args: argparse.Namespace) -> None:
    """Results table of finished runs (their result.json)."""
    print_table(
        [row for run in args.runs for row in result_rows(json.loads((Path(run) / "result.json").read_text()))]
    )


def sample_range(args: argparse.Namespace) -> None:
    """Range of 10-step DDIM samples x0 of a style model (64 noises of seed 0)."""
    import torch

    from matdiff.diffusion import load_model
    from matdiff.guidance.noise_opt import DdimGenerator
    from matdiff.styles import bundled_model_path

    torch.set_num_threads(args.threads)
    path = Path(args.model) if args.model else bundled_model_path(args.style)
    noise = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x0 = DdimGenerator(load_model(path), 10, use_checkpoint=False)(noise).abs()
    print(
        f"{path}: max |x0| {float(x0.max()):.2f}, 99th percentile {float(x0.flatten().quantile(0.99)):.2f}, "
        f"share of |x0| > 1: {float((x0 > 1).float().mean()):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("data").set_defaults(fn=make_data)
    p = sub.add_parser("train")
    p.add_argument("--style", choices=sorted(STORES), required=True)
    p.add_argument("--width", type=int, default=32, help="base UNet width (seed B: 48)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--time-limit", type=float, default=None, help="seconds for this call (resumable)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=train_model)
    p = sub.add_parser("stats")
    p.add_argument("--n", type=int, default=245)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=generator_stats)
    p = sub.add_parser("run")
    p.add_argument("--style", choices=sorted(STORES), required=True)
    p.add_argument("--targets", default=None, help="comma-separated seed B target names (default: all)")
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the bundled model)")
    p.add_argument("--candidates", type=int, default=0, help="pick the initial noises from this many draws")
    p.add_argument("--joint", action="store_true", help="one L-BFGS over all designs (default: one each)")
    p.add_argument("--gammas", default=None, help="projection slopes, e.g. 5,10,20,40,80 (default: seed B's)")
    p.add_argument("--n-designs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=100, help="L-BFGS iterations per stage (seed B: 100)")
    p.add_argument("--tol", type=float, default=1e-2)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=run_targets)
    p = sub.add_parser("samples")
    p.add_argument("--style", choices=sorted(STORES), required=True)
    p.add_argument("--model", default=None, help="checkpoint or run folder (default: the bundled model)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(fn=sample_range)
    p = sub.add_parser("table")
    p.add_argument("runs", nargs="+", help="run folders holding result.json")
    p.set_defaults(fn=show_table)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

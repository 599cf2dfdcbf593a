"""Diffusion-prior training recipes side by side: quality of the prior against training CPU time.

    .venv/bin/python benchmarks/prior_recipes.py --data data/p2d64.zarr --minutes 22 --variants all
    .venv/bin/python benchmarks/prior_recipes.py --table runs/recipes     # print the table of finished runs
    .venv/bin/python benchmarks/prior_recipes.py --throughput matdiff-2d,seedA-2d --compile  # CPU levers

Each variant trains from scratch with one intra-op thread (`OMP_NUM_THREADS=1`, as a background run on the
2-core machine gets) for the same wall-clock budget, in its own process, one after the other; its run
folder keeps `monitor_log.jsonl` with the quality report (`matdiff.evaluation.quality`: two-phase-ness R,
contrast, median distance of 2-means centres to the catalogue, valid backprojections; 32 samples with eta 1
and 100 steps against 32 fresh data fields) at regular steps, with the training CPU seconds at that point.
The table gives, per variant, the CPU time per training sample and every report. Runs that exist are not
retrained (delete the folder to rerun one); `--table FOLDER` also reads other run folders, e.g. the main run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: name -> (train() keyword arguments, UNet overrides, steps between quality reports).
#: "min-snr" is the matdiff-2d preset (patches, symmetry augmentation, bf16, Min-SNR-5 weights); every other
#: variant changes one or a few things relative to it, except "seedA", which is seed A's own recipe
#: (appendix C UNet at 64x64, uniform weights, no augmentation, fp32) at the same batch. The main runs of
#: docs/benchmarks.md continue "min-snr" (and its second, uniform-weight phase) and "patch-aug".
BASE = {"preset": "matdiff-2d", "steps": 40_000}
UNIFORM = {"min_snr_gamma": 0.0}
#: seed A's recipe (preset seedA-2d: lr 1e-3, EMA 0.999, uniform weights, no augmentation, fp32) at the batch,
#: warm-up and schedule length of the other variants
SEED_A_AT_OUR_BATCH = {"steps": 40_000, "batch": 32, "warmup": 500}
VARIANTS: dict[str, tuple[dict, dict | str, int]] = {
    "seedA": ({"preset": "seedA-2d", **SEED_A_AT_OUR_BATCH}, {}, 100),
    "patch-fp32-plain": ({**BASE, **UNIFORM, "augment": False, "precision": "fp32"}, {}, 500),
    "patch-plain": ({**BASE, **UNIFORM, "augment": False}, {}, 500),
    "patch-aug": ({**BASE, **UNIFORM}, {}, 500),
    "min-snr": (dict(BASE), {}, 500),
    "min-snr-lr2e-3": ({**BASE, "lr": 2e-3}, {}, 500),
    "batch64": ({**BASE, "batch": 64}, {}, 250),
    "width48": (dict(BASE), "width48", 400),
    "attn8x8": (dict(BASE), {"attention_levels": [False, False, True]}, 500),
}


def unet_overrides(spec: dict | str) -> dict:
    """UNet overrides of a variant ("width48": the preset rescaled to stem width 48)."""
    if spec == "width48":
        from matdiff.diffusion.presets import width_overrides

        return width_overrides("matdiff-2d", 48)
    return dict(spec)


def run_one(name: str, data: Path, out: Path, minutes: float) -> None:
    """Train variant ``name`` for ``minutes`` of wall time with a quality monitor (this process)."""
    import torch

    from matdiff.diffusion import open_fields, train
    from matdiff.evaluation.quality import fresh_particle_fields, quality_monitor
    from matdiff.materials import load_catalogue

    torch.set_num_threads(1)
    kwargs, overrides, every = VARIANTS[name]
    _, attrs = open_fields(data)
    catalogue = load_catalogue()
    fresh = fresh_particle_fields(int(attrs["dim"]), int(attrs["size"]), 32, catalogue)
    train(
        data,
        out,
        **kwargs,
        unet_overrides=unet_overrides(overrides),
        ckpt_every=every,
        device="cpu",
        time_limit=60 * minutes,
        monitor=quality_monitor(catalogue, fresh),
        monitor_every=every,
        progress=False,
    )


def throughput(presets: list[str], batch: int, repeats: int, compile_too: bool) -> None:
    """Training CPU cost per sample (ms) of each preset's UNet on 3 x 64 x 64 fields, side by side in one
    process: fp32, bfloat16 autocast, channels_last, both, torch.compile (optional); one AdamW step each."""
    import time

    import torch

    from matdiff.diffusion import UNet, get_preset

    torch.set_num_threads(1)
    print("| preset | levers | ms per training sample, min / median | first step s |\n|---|---|---|---|")
    for name in presets:
        base = UNet(**get_preset(name)["unet"])
        for levers in ("fp32", "bf16", "channels_last", "channels_last+bf16", "compile", "compile+bf16"):
            if levers.startswith("compile") and not compile_too:
                continue
            net = UNet(**base.config)
            net.load_state_dict(base.state_dict())
            layout = torch.channels_last if "channels_last" in levers else torch.contiguous_format
            net = net.to(memory_format=layout)
            model = torch.compile(net) if levers.startswith("compile") else net
            optimizer = torch.optim.AdamW(net.parameters())
            x = torch.randn(batch, 3, 64, 64).contiguous(memory_format=layout)
            t = torch.randint(0, 1000, (batch,))
            seconds = []
            for _ in range(repeats + 1):
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled="bf16" in levers):
                    out = model(x, t)
                loss = out.float().square().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                seconds.append(time.perf_counter() - start)
            ms = sorted(1000 * s / batch for s in seconds[1:])
            row = f"| {name} | {levers} | {ms[0]:.1f} / {ms[len(ms) // 2]:.1f} | {seconds[0]:.1f} |"
            print(row, flush=True)


def read_reports(run: Path) -> tuple[list[dict], float | None]:
    """(quality reports of a run folder, median training seconds per sample from its train log)."""
    monitor = run / "monitor_log.jsonl"
    reports = [json.loads(line) for line in monitor.read_text().splitlines()] if monitor.exists() else []
    log = run / "train_log.jsonl"
    per_sample = None
    if log.exists():
        kept = run / "config.json"  # a run's logs kept without checkpoints (docs/runs/)
        if not kept.exists():
            kept = sorted((run / "checkpoints").glob("step_*"))[-1] / "config.json"
        config = json.loads(kept.read_text())
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        seconds = sorted(r["sec_per_step"] for r in rows)
        per_sample = seconds[len(seconds) // 2] / config["training"]["batch"]
    return reports, per_sample


def print_table(runs: list[Path]) -> None:
    """One line per quality report of every run: CPU minutes, step, R, contrast, centre distance, valid."""
    print(
        f"{'variant':>18} {'ms/sample':>9} {'step':>6} {'CPU min':>7} {'R':>6} {'R q10':>6} "
        f"{'contrast':>8} {'centre d':>8} {'valid':>6}"
    )
    for run in runs:
        reports, per_sample = read_reports(run)
        rate = f"{1000 * per_sample:9.1f}" if per_sample else f"{'-':>9}"
        for r in reports:
            print(
                f"{run.name:>18} {rate} {r['step']:6d} {r['cpu_seconds'] / 60:7.1f} {r['two_phase']:6.3f} "
                f"{r['two_phase_q10']:6.3f} {r['contrast']:8.3f} {r['centre_distance']:8.4f} "
                f"{r['valid_share']:6.3f}"
            )


def plot_curves(runs: list[Path], path: Path) -> None:
    """PNG of R, contrast, centre distance and valid share against training CPU minutes, one line per run,
    with the targets of a shipped prior dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matdiff.evaluation.quality import QUALITY_TARGETS

    keys = ("two_phase", "contrast", "centre_distance", "valid_share")
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for run in runs:
        reports, _ = read_reports(run)
        if not reports:
            continue
        minutes = [r["cpu_seconds"] / 60 for r in reports]
        for ax, key in zip(axes, keys, strict=True):
            ax.plot(minutes, [r[key] for r in reports], marker="o", ms=3, label=run.name)
    for ax, key in zip(axes, keys, strict=True):
        ax.axhline(QUALITY_TARGETS[key][1], color="gray", ls="--", lw=0.8)
        ax.set_xlabel("training CPU minutes (one thread)")
        ax.set_title(f"{key} (target {' '.join(map(str, QUALITY_TARGETS[key]))})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/p2d64.zarr"))
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--minutes", type=float, default=22.0, help="wall-clock budget per variant")
    parser.add_argument("--variants", default="all", help=f"comma-separated, or all: {', '.join(VARIANTS)}")
    parser.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--table", nargs="*", type=Path, default=None, help="print the table of these runs")
    parser.add_argument(
        "--throughput", default=None, help="comma-separated presets: time training levers instead"
    )
    parser.add_argument("--compile", action="store_true", help="with --throughput: also torch.compile")
    parser.add_argument("--plot", type=Path, default=None, help="with --table: PNG of the curves")
    args = parser.parse_args()
    if args.throughput:
        throughput(args.throughput.split(","), batch=32, repeats=4, compile_too=args.compile)
        return
    if args.run_one:
        run_one(args.run_one, args.data, args.out / args.run_one, args.minutes)
        return
    if args.table is not None:
        runs = [
            p
            for folder in args.table
            for p in ([folder] if (folder / "monitor_log.jsonl").exists() else sorted(folder.iterdir()))
        ]
        runs = [r for r in runs if r.is_dir()]
        print_table(runs)
        if args.plot:
            plot_curves(runs, args.plot)
        return
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    for name in names:
        if (args.out / name / "monitor_log.jsonl").exists():
            continue
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command = [
            sys.executable,
            __file__,
            "--run-one",
            name,
            "--data",
            str(args.data),
            "--out",
            str(args.out),
            "--minutes",
            str(args.minutes),
        ]
        subprocess.run(command, env=env, check=True)
    print_table([args.out / name for name in names])


if __name__ == "__main__":
    main()

"""`matdiff optimize-noise`: seed B's noise-space design of a microstructure with a target stiffness C_hom."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import typer


def register(app: typer.Typer) -> None:
    """Add the `optimize-noise` command to the app."""
    app.command("optimize-noise")(optimize_noise_command)


def resolve_target(text: str, style: str):
    """(name, (3, 3) float64 tensor) from a seed B target name of `style` or "c11,c12,c13;...;c31,c32,c33"."""
    from matdiff.guidance.noise_opt import SEED_B_TARGETS, parse_target, validate_target

    named = SEED_B_TARGETS.get(style, {})
    if text.strip().lower() in named:
        return text.strip().lower(), validate_target(named[text.strip().lower()])
    try:
        return "custom", parse_target(text)
    except ValueError as err:
        raise typer.BadParameter(
            f"{err}. Give 9 numbers 'c11,c12,c13;c21,c22,c23;c31,c32,c33' of a symmetric "
            f"matrix, or one of {sorted(named)}",
            param_hint="--target-C",
        ) from err


def resolve_model_path(style: str, model: Path | None) -> Path:
    """The checkpoint to use: `model`, else the bundled style model; BadParameter when there is none."""
    from matdiff.styles import MODELS_DIR, bundled_model_path

    if model is not None:
        return model
    bundled = bundled_model_path(style)
    if bundled is not None:
        return bundled
    raise typer.BadParameter(
        f"no bundled {style} model in {MODELS_DIR}; train one "
        f"(python benchmarks/noise_opt.py train --style {style}) and pass --model runs/<run>",
        param_hint="--model",
    )


def parse_gammas(text: str | None, style: str) -> tuple[float, ...]:
    """Projection slopes from "5,10,20,80", or seed B's for `style` when None."""
    from matdiff.guidance.noise_opt import SEED_B_GAMMAS

    if text is None:
        return SEED_B_GAMMAS[style]
    try:
        gammas = tuple(float(g) for g in text.split(","))
    except ValueError as err:
        raise typer.BadParameter(
            f"gammas {text!r} must be comma-separated numbers", param_hint="--gammas"
        ) from err
    if not gammas or any(not np.isfinite(g) or g <= 0 for g in gammas):
        raise typer.BadParameter(f"gammas {text!r} must be positive", param_hint="--gammas")
    return gammas


def tile(cell: np.ndarray, n: int = 5) -> np.ndarray:
    """An (n H, n W) periodic tiling of one cell (H, W)."""
    return np.tile(cell, (n, n))


def save_figures(result, out: Path) -> None:
    """designs.png (initial and final densities per design), tiling_5x5.png, loss_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    B = result.design_final.shape[0]
    fig, axes = plt.subplots(2, B, figsize=(2.6 * B, 5.4), squeeze=False)
    for b in range(B):
        for row, (name, arr, loss) in enumerate(
            [
                ("initial", result.design_init, result.loss_init),
                ("final", result.design_final, result.loss_final),
            ]
        ):
            ax = axes[row, b]
            ax.imshow(arr[b], cmap="gray_r", vmin=0, vmax=1)
            title = f"{name} #{b}\nloss {loss[b]:.3g}"
            if row == 1:
                title += f", B {100 * result.binarization[b]:.1f}%"
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "designs.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, B, figsize=(3.2 * B, 3.2), squeeze=False)
    for b in range(B):
        axes[0, b].imshow(tile(result.design_final[b]), cmap="gray_r", vmin=0, vmax=1)
        axes[0, b].set_title(f"design #{b}, 5x5 cells", fontsize=8)
        axes[0, b].axis("off")
    fig.tight_layout()
    fig.savefig(out / "tiling_5x5.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for b in range(B):
        ax.semilogy(np.maximum(result.loss_history[:, b], 1e-12), label=f"design #{b}")
    for k in np.flatnonzero(np.diff(result.history_stage)) + 1:
        ax.axvline(k, color="gray", lw=0.6, ls="--")
    ax.axhline(result.config.tol, color="red", lw=0.6)
    ax.set_xlabel("evaluation (dashed: next gamma)")
    ax.set_ylabel("best loss in stage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_curve.png", dpi=120)
    plt.close(fig)


def write_outputs(result, out: Path, extra: dict) -> None:
    """result.json (summary, config, command), arrays.npz and the PNG figures under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {**result.summary(), **extra}
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    np.savez_compressed(
        out / "arrays.npz",
        noise_init=result.noise_init,
        noise_final=result.noise_final,
        image_init=result.image_init,
        image_final=result.image_final,
        design_init=result.design_init,
        design_final=result.design_final,
        loss_history=result.loss_history,
        history_stage=result.history_stage,
    )
    save_figures(result, out)


def optimize_noise_command(
    style: str = typer.Option("digits", help="Style: digits or metamaterial (sets seed B's gammas)."),
    target_c: str = typer.Option(
        ...,
        "--target-C",
        help="Target C_hom (Voigt, engineering shear) 'c11,c12,c13;c21,c22,c23;c31,c32,c33' "
        "or a seed B target name (digits: biclinic, orthotropic, tetragonal; "
        "metamaterial: orthotropic, tetragonal).",
    ),
    seed: int = typer.Option(0, help="Seed of the initial noises."),
    out: Path = typer.Option(..., help="Output folder (result.json, arrays.npz, PNGs)."),
    model: Path | None = typer.Option(
        None, help="Checkpoint or run folder; default: the bundled style model."
    ),
    n_designs: int = typer.Option(1, min=1, help="Independent designs (initial noises)."),
    candidates: int = typer.Option(
        0,
        min=0,
        help="Draw this many noises and start from the n-designs with the lowest loss at the first gamma "
        "(seed B hand-picked its starting noises from 2,000 draws); 0: the first n-designs draws.",
    ),
    joint: bool = typer.Option(
        False, help="One L-BFGS over all designs as one batch (GPU) instead of one L-BFGS per design."
    ),
    gammas: str | None = typer.Option(
        None,
        help="Projection slopes, e.g. '5,10,20,80' (default: seed B's). With the bundled models an extra "
        "stage, '5,10,20,40,80', reaches the tolerance more often (docs/results.md).",
    ),
    max_iter: int = typer.Option(100, min=1, help="L-BFGS iterations per stage."),
    tol: float = typer.Option(1e-2, help="Stage tolerance on the loss sum_ij (C_ij - C*_ij)^2."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's)."),
) -> None:
    """Optimize the DDIM input noise so the generated cell's homogenized stiffness matches --target-C."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from matdiff.diffusion import load_model
    from matdiff.guidance.noise_opt import SEED_B_GAMMAS, NoiseOptConfig, optimize_noise

    if style not in SEED_B_GAMMAS:
        raise typer.BadParameter(
            f"unknown style {style!r}; choose one of {sorted(SEED_B_GAMMAS)}", param_hint="--style"
        )
    target_name, target = resolve_target(target_c, style)
    if candidates and candidates < n_designs:
        raise typer.BadParameter(
            f"--candidates {candidates} must be 0 or at least --n-designs {n_designs}",
            param_hint="--candidates",
        )
    config = NoiseOptConfig(
        gammas=parse_gammas(gammas, style), max_iter=max_iter, tol=tol, joint=joint, n_candidates=candidates
    )
    if threads:
        torch.set_num_threads(threads)
    model_path = resolve_model_path(style, model)
    net = load_model(model_path, device="cpu")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f} iters"),
        TimeElapsedColumn(),
    ) as bar:
        per_stage = config.max_iter * n_designs
        task = bar.add_task("starting", total=len(config.gammas) * per_stage)

        def progress(stage: int, gamma: float, losses: torch.Tensor, iters: torch.Tensor) -> None:
            shown = ", ".join(f"{v:.3g}" for v in losses.tolist())
            bar.update(
                task,
                completed=stage * per_stage + int(iters.sum()),
                description=f"stage {stage + 1}/{len(config.gammas)} gamma={gamma:g} best loss [{shown}]",
            )

        result = optimize_noise(net, target, n_designs=n_designs, seed=seed, config=config, progress=progress)

    extra = {
        "style": style,
        "target_name": target_name,
        "seed": seed,
        "model": str(model_path),
        "command": " ".join(shlex.quote(a) for a in ["matdiff", *sys.argv[1:]]),
    }
    write_outputs(result, out, extra)
    for b in range(n_designs):
        typer.echo(
            f"design {b}: loss {result.loss_final[b]:.4g}, B {100 * result.binarization[b]:.2f}%, "
            f"C_hom {np.round(result.C_final[b], 3).tolist()}"
        )
    typer.echo(f"wall time {result.wall_time_s:.1f} s for {n_designs} design(s); results in {out}")

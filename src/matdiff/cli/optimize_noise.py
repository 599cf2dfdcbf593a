"""`matdiff optimize-noise`: seed B's noise-space design of a microstructure with a target stiffness C_hom."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import typer

from matdiff.cli.common import finite, one_line, writable_folder


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


def optimize_noise_command(
    style: str = typer.Option("digits", help="Style: digits or metamaterial (sets seed B's gammas)."),
    target_c: str = typer.Option(
        ...,
        "--target-C",
        help="Target C_hom (Voigt, engineering shear) 'c11,c12,c13;c21,c22,c23;c31,c32,c33' "
        "or a seed B target name (digits: biclinic, orthotropic, tetragonal; "
        "metamaterial: orthotropic, tetragonal).",
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the initial noises."),
    out: Path = typer.Option(
        ..., callback=writable_folder, help="Output folder (result.json, arrays.npz, PNGs)."
    ),
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
    tol: float = typer.Option(
        1e-2, min=0.0, callback=finite, help="Stage tolerance on the loss sum_ij (C_ij - C*_ij)^2."
    ),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's)."),
) -> None:
    """Optimize the DDIM input noise so the generated cell's homogenized stiffness matches --target-C."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from matdiff.diffusion import load_model
    from matdiff.evaluation import Evaluator, run_campaign
    from matdiff.evaluation.noise_report import write_noise_report
    from matdiff.guidance import TargetObjective
    from matdiff.guidance.noise_opt import SEED_B_GAMMAS, NoiseOptConfig, require_density_model
    from matdiff.materials import load_catalogue
    from matdiff.methods import NoiseSpace

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
    with one_line("--model"):
        net = load_model(model_path, device="cpu")
        require_density_model(net)
    objective = TargetObjective("homogenized_stiffness", target.tolist())

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

        method = NoiseSpace(net, config, progress=progress)
        campaign = run_campaign(method, [objective], n_designs, Evaluator(load_catalogue()), seed=seed)

    extra = {
        "style": style,
        "target_name": target_name,
        "seed": seed,
        "model": str(model_path),
        "command": " ".join(shlex.quote(a) for a in ["matdiff", *sys.argv[1:]]),
    }
    summary = write_noise_report(out, campaign, extra)
    for b in range(n_designs):
        typer.echo(
            f"design {b}: loss {summary['loss_final'][b]:.4g}, B {100 * summary['binarization'][b]:.2f}%, "
            f"C_hom {np.round(summary['C_final'][b], 3).tolist()}"
        )
    typer.echo(f"wall time {summary['wall_time_s']:.1f} s for {n_designs} design(s); results in {out}")

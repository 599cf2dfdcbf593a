"""`matdiff optimize-noise`: seed B's noise-space design of a density image for a target response: the
homogenized stiffness C_hom of a periodic cell (sec. 3.2), a Neo-Hookean strain-energy curve (sec. 3.3) or a
J2 stress curve of two fields, E and sigma0 (sec. 3.4)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import typer

from matdiff.cli.common import finite, one_line, writable_folder

OBJECTIVES = ("stiffness", "energy-curve", "stress-curve")


def register(app: typer.Typer) -> None:
    """Add the `optimize-noise` command to the app."""
    app.command("optimize-noise")(optimize_noise_command)


def resolve_target(text: str, style: str):
    """(name, (3, 3) float64 tensor) from a seed B target name of `style` or "c11,c12,c13;...;c31,c32,c33"."""
    from matdiff.guidance.noise_objectives import SEED_B_TARGETS, parse_target, validate_target

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


def parse_gammas(text: str) -> tuple[float, ...]:
    """Projection slopes from "5,10,20,80"."""
    try:
        gammas = tuple(float(g) for g in text.split(","))
    except ValueError as err:
        raise typer.BadParameter(
            f"gammas {text!r} must be comma-separated numbers", param_hint="--gammas"
        ) from err
    if not gammas or any(not np.isfinite(g) or g <= 0 for g in gammas):
        raise typer.BadParameter(f"gammas {text!r} must be positive", param_hint="--gammas")
    return gammas


def parse_fields(text: str | None, names: tuple[str, ...]) -> tuple[str, ...]:
    """The designed fields from "E,sigma0", each one of ``names`` and named once; all of ``names`` if None."""
    if text is None:
        return names
    fields = tuple(f.strip() for f in text.split(","))
    if any(f not in names for f in fields) or len(set(fields)) != len(fields):
        raise typer.BadParameter(
            f"{text!r}: this objective's fields are {','.join(names)}; name each designed field once",
            param_hint="--fields",
        )
    return fields


def parse_seed_pair(text: str) -> tuple[int, int]:
    """(SEED_E, SEED_S) from "SEED_E,SEED_S", two non-negative integers."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise typer.BadParameter(
            f"{text!r}: give two seeds 'SEED_E,SEED_S' (non-negative integers)", param_hint="--target-digits"
        )
    return int(parts[0]), int(parts[1])


def experiment_of(
    objective: str,
    style: str,
    target_c: str | None,
    alpha: float | None,
    group: int | None,
    target_digits: str | None,
) -> str:
    """Seed B's experiment (a key of ``SEED_B_STAGES``) of the options; BadParameter when a target option
    is missing, unknown or belongs to another objective."""
    from matdiff.guidance.noise_objectives import STRESS_GROUPS

    given = {"--target-C": target_c, "--alpha": alpha, "--group": group, "--target-digits": target_digits}
    own = {
        "stiffness": ("--target-C",),
        "energy-curve": ("--alpha",),
        "stress-curve": ("--group", "--target-digits"),
    }[objective]
    for option, value in given.items():
        if value is not None and option not in own:
            raise typer.BadParameter(f"{option} does not apply to --objective {objective}", param_hint=option)
    if objective == "stiffness" and target_c is None:
        raise typer.BadParameter("--objective stiffness needs a target C_hom", param_hint="--target-C")
    if objective == "stress-curve" and (group is None) == (target_digits is None):
        raise typer.BadParameter(
            "--objective stress-curve needs exactly one target: --group (seed B Table 1) or --target-digits",
            param_hint="--group",
        )
    if group is not None and group not in STRESS_GROUPS:
        raise typer.BadParameter(
            f"unknown group {group}; seed B's Table 1 has groups {sorted(STRESS_GROUPS)}",
            param_hint="--group",
        )
    if objective == "stiffness":
        return style
    if objective == "stress-curve":
        return "stress-curve-groups" if group is not None else "stress-curve-digits"
    return objective


def designed_fields(objective: str, text: str | None, group: int | None) -> tuple[str, ...]:
    """The fields to design from ``--fields`` (all of the objective's by default); BadParameter for a field
    the objective does not have, or a --group target with a fixed field (it has no field to fix it to)."""
    from matdiff.guidance.noise_objectives import CURVE_OBJECTIVES, StiffnessObjective

    names = StiffnessObjective.fields if objective == "stiffness" else CURVE_OBJECTIVES[objective].field_names
    fields = parse_fields(text, names)
    if group is not None and set(fields) != set(names):
        raise typer.BadParameter(
            "a --group target designs both fields; to keep one fixed, use --target-digits",
            param_hint="--fields",
        )
    return fields


def curve_objective(
    net,
    objective: str,
    alpha: float,
    group: int | None,
    pair: tuple[int, int] | None,
    fields: tuple[str, ...],
):
    """The curve objective of the options: seed B's energy target of ``alpha``, Table 1's ``group``, or the
    curve of the digit pair generated from the seeds ``pair`` (projected at gamma 100)."""
    from matdiff.guidance.noise_objectives import EnergyCurveObjective, StressCurveObjective
    from matdiff.guidance.noise_opt import generated_densities

    if objective == "energy-curve":
        return EnergyCurveObjective.seed_b(alpha, fields=fields)
    if group is not None:
        return StressCurveObjective.seed_b(group, fields=fields)
    densities = dict(zip(("E", "sigma0"), generated_densities(net, pair, gamma=100.0), strict=True))
    return StressCurveObjective.matching(densities, fields, source={"digits": list(pair), "gamma": 100.0})


def curve_target_name(objective: str, alpha: float, group: int | None, pair: tuple[int, int] | None) -> str:
    """A short name of a curve target: "alpha 0.3", "group 1" or "digits 3,7"."""
    if objective == "energy-curve":
        return f"alpha {alpha:g}"
    return f"group {group}" if group is not None else f"digits {pair[0]},{pair[1]}"


def progress_display(bar, n_stages: int, per_stage: int):
    """progress(stage, gamma, best losses, iterations) showing a run on the rich progress ``bar``."""
    task = bar.add_task("starting", total=n_stages * per_stage)

    def progress(stage: int, gamma: float, losses, iters) -> None:
        shown = ", ".join(f"{v:.3g}" for v in losses.tolist())
        bar.update(
            task,
            completed=stage * per_stage + int(iters.sum()),
            description=f"stage {stage + 1}/{n_stages} gamma={gamma:g} best loss [{shown}]",
        )

    return progress


def design_line(summary: dict, b: int) -> str:
    """One line on design b of a run: losses, binarization, C_hom (stiffness) and any FEM failure."""
    line = (
        f"design {b}: loss {summary['loss_final'][b]:.4g}, thresholded {summary['loss_thresholded'][b]:.4g}, "
        f"B {100 * summary['binarization'][b]:.2f}%"
    )
    if "C_final" in summary:
        line += f", C_hom {np.round(summary['C_final'][b], 3).tolist()}"
    failure = summary["failures"][b]
    return line + (f" (FEM: {failure})" if failure else "")


def optimize_noise_command(
    objective: str = typer.Option(
        "stiffness",
        help="What to design for: stiffness (C_hom of a periodic cell, --target-C), energy-curve "
        "(Neo-Hookean strain energy at top displacements 0.05..0.5, seed B eq. 34 target, --alpha) or "
        "stress-curve (J2 mean sigma_yy at 0.0005..0.01 of an E field and a sigma0 field, --group or "
        "--target-digits).",
    ),
    style: str = typer.Option(
        "digits", help="Style of the prior: digits or metamaterial (the bundled model; stiffness: gammas)."
    ),
    target_c: str | None = typer.Option(
        None,
        "--target-C",
        help="stiffness: target C_hom (Voigt, engineering shear) 'c11,c12,c13;c21,c22,c23;c31,c32,c33' "
        "or a seed B target name (digits: biclinic, orthotropic, tetragonal; "
        "metamaterial: orthotropic, tetragonal).",
    ),
    alpha: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        callback=finite,
        help="energy-curve: target P* = (1 - alpha) P1 + alpha P0 between the solid (P1) and void (P0) "
        "curves of seed B eq. 34; default 0.3.",
    ),
    group: int | None = typer.Option(
        None, help="stress-curve: target curve of seed B's Table 1 group 1, 2 or 3 (eq. 39)."
    ),
    target_digits: str | None = typer.Option(
        None,
        help="stress-curve: target = the curve of a generated digit pair 'SEED_E,SEED_S' (an E-field digit "
        "and a sigma0-field digit from the noises of these seeds, projected at gamma 100); a field not in "
        "--fields stays that digit.",
    ),
    fields: str | None = typer.Option(
        None,
        help="Designed fields, comma-separated: 'density' (stiffness, energy-curve); 'E', 'sigma0' or "
        "'E,sigma0' (stress-curve). Fields not designed stay fixed; default: all.",
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
        help="Projection slopes, e.g. '5,10,20,80'. Default seed B's: stiffness digits 5,10,20,80, "
        "metamaterial 5,10,20,100 (an extra stage, '5,10,20,40,80', reaches the tolerance more often, "
        "docs/results.md); energy-curve 2,5,10,20,100; stress-curve --group 10,20,100, --target-digits "
        "5,10,20,100.",
    ),
    max_iter: int | None = typer.Option(
        None,
        min=1,
        help="L-BFGS iterations per stage. Default seed B's: 100 (stiffness, stress-curve --group), "
        "30 (energy-curve), 50 (stress-curve --target-digits).",
    ),
    tol: float | None = typer.Option(
        None,
        min=0.0,
        callback=finite,
        help="Stage tolerance on the loss (stiffness: sum_ij (C_ij - C*_ij)^2; curves: mean squared error "
        "over the load steps). Default seed B's: 1e-2 (stiffness), 1e-3 (energy-curve), 0.5 (stress-curve "
        "--group), 0.2 (stress-curve --target-digits).",
    ),
    binary_stage: bool = typer.Option(
        False,
        "--binary-stage/--no-binary-stage",
        help="Beyond seed B: add a last stage on the thresholded (built) design, x0 > 0, with the last "
        "gamma's gradient (straight-through), driving the binary design itself to the tolerance.",
    ),
    threads: int | None = typer.Option(None, min=1, help="torch CPU threads (default: torch's)."),
) -> None:
    """Optimize the DDIM input noise so the generated design's response (C_hom, energy or stress curve)
    matches its target."""
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from matdiff.diffusion import load_model
    from matdiff.evaluation import Evaluator, run_campaign
    from matdiff.evaluation.noise_report import write_noise_report, write_noise_result
    from matdiff.guidance import TargetObjective
    from matdiff.guidance.noise_opt import SEED_B_GAMMAS, NoiseOptConfig, require_density_model, schedule
    from matdiff.materials import load_catalogue
    from matdiff.methods import NoiseSpace

    if objective not in OBJECTIVES:
        raise typer.BadParameter(
            f"unknown objective {objective!r}; choose one of {OBJECTIVES}", param_hint="--objective"
        )
    if style not in SEED_B_GAMMAS:
        raise typer.BadParameter(
            f"unknown style {style!r}; choose one of {sorted(SEED_B_GAMMAS)}", param_hint="--style"
        )
    experiment = experiment_of(objective, style, target_c, alpha, group, target_digits)
    designed = designed_fields(objective, fields, group)
    pair = parse_seed_pair(target_digits) if target_digits is not None else None
    alpha = 0.3 if alpha is None else alpha
    if objective == "stiffness":
        target_name, target = resolve_target(target_c, style)
    else:
        target_name = curve_target_name(objective, alpha, group, pair)
    if candidates and candidates < n_designs:
        raise typer.BadParameter(
            f"--candidates {candidates} must be 0 or at least --n-designs {n_designs}",
            param_hint="--candidates",
        )
    given = {"gammas": gammas and parse_gammas(gammas), "tol": tol, "max_iter": max_iter}
    config = NoiseOptConfig.for_experiment(
        experiment,
        **{k: v for k, v in given.items() if v is not None},
        joint=joint,
        n_candidates=candidates,
        binary_stage=binary_stage,
    )
    if threads:
        torch.set_num_threads(threads)
    model_path = resolve_model_path(style, model)
    with one_line("--model"):
        net = load_model(model_path, device="cpu")
        require_density_model(net)
    wanted = (
        TargetObjective("homogenized_stiffness", target.tolist())
        if objective == "stiffness"
        else curve_objective(net, objective, alpha, group, pair, designed)
    )

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f} iters"))
    with Progress(*columns, TimeElapsedColumn()) as bar:
        progress = progress_display(bar, len(schedule(config)), config.max_iter * n_designs)
        method = NoiseSpace(net, config, progress=progress)
        if objective == "stiffness":
            found = run_campaign(method, [wanted], n_designs, Evaluator(load_catalogue()), seed=seed)
        else:
            found = method.design(wanted, n_designs, seed)

    extra = {
        "style": style,
        "target_name": target_name,
        "seed": seed,
        "model": str(model_path),
        "command": " ".join(shlex.quote(a) for a in ["matdiff", *sys.argv[1:]]),
    }
    write = write_noise_report if objective == "stiffness" else write_noise_result
    summary = write(out, found, extra)
    for b in range(n_designs):
        typer.echo(design_line(summary, b))
    typer.echo(f"wall time {summary['wall_time_s']:.1f} s for {n_designs} design(s); results in {out}")

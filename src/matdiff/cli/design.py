"""`matdiff design` and `evaluate`: guided inverse design on a diffusion prior (seed A)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from matdiff.cli.common import check_steps, console, device_option, finite, one_line, writable_folder

GUIDANCE_HELP = (
    "Guidance: tfg (seed A's code: training-free guidance, gradients clipped at L2 norm 2.5), "
    "dps (Chung et al.: zeta times the gradient of the residual norm, unclipped), dps-paper (seed A's paper: "
    "DPS with zeta 1 and the FEM gradients scaled 0.5 for E and 0.02 for nu) or none (unguided ablation)."
)


def register(app: typer.Typer) -> None:
    """Add the `design` and `evaluate` commands to the app."""
    app.command("design")(design)
    app.command("evaluate")(evaluate)


def _load(model_path: Path | None, device: str):
    """Load the model (bundled default when None) and the catalogue it was trained with."""
    from matdiff.diffusion import load_model, resolve_device
    from matdiff.guidance import require_particle_model
    from matdiff.materials import load_catalogue

    catalogue = load_catalogue()
    with one_line("--model"):
        model = load_model(model_path, device=resolve_device(device), catalogue=catalogue)
        require_particle_model(model)
    return model, catalogue


def _method(model_path, device, method, steps, eta, strength, snap_every, realizations, progress=True):
    """(GuidedDiffusion design method, Evaluator) from the command's options; BadParameter on bad input."""
    from matdiff.evaluation import Evaluator
    from matdiff.guidance import GuidanceConfig
    from matdiff.methods import GuidedDiffusion

    with one_line():
        config = GuidanceConfig(method=method, strength=strength, steps=steps, eta=eta, snap_every=snap_every)
    net, catalogue = _load(model_path, device)
    check_steps(net, steps)
    evaluator = Evaluator(catalogue, net.dim, int(net.size), realizations, str(net.device))
    return GuidedDiffusion(net, catalogue, config, progress=progress), evaluator


def refine_option():
    """The `--refine/--no-refine` switch (on by default, see `_refinement`)."""
    return typer.Option(
        True,
        "--refine/--no-refine",
        help="Refine each backprojected design toward the target in its catalogue neighbourhood (k nearest "
        "materials per phase, volume fraction) on common microstructures, then re-evaluate it on fresh ones; "
        "tables show before and after.",
    )


def neighbours_option():
    """The `--refine-neighbours` option: k nearest catalogue materials per phase searched by refinement
    (default: ``Refinement.neighbours``, not imported here to keep the CLI's start light)."""
    return typer.Option(12, min=1, help="Refinement: nearest catalogue materials per phase (own included).")


def _refinement(on: bool, neighbours: int):
    """The refinement settings (None when off); BadParameter names a bad --refine-neighbours.

    On by default for `design` and `evaluate`: it is what makes a proposal meet its target once built from
    catalogue materials, and it costs no information, since the rows keep every design's unrefined values
    (``before_*``, identical to --no-refine) and the tables show both."""
    from matdiff.evaluation.refine import Refinement
    from matdiff.materials import load_catalogue

    if not on:
        return None
    with one_line("--refine-neighbours"):
        refinement = Refinement(neighbours=neighbours)
        refinement.check(load_catalogue())
    return refinement


def _objective(target: float, density_weight: float, hint: str = "--target-bulk"):
    """Seed A's objective for one target bulk modulus (GPa); BadParameter names a bad target."""
    from matdiff.guidance import target_bulk_modulus

    with one_line(hint):
        return target_bulk_modulus(target, density_weight)


def design(
    target_bulk: float = typer.Option(..., help="Target bulk modulus K* in GPa."),
    n: int = typer.Option(16, min=1, help="Number of proposals (one guided batch)."),
    model: Path = typer.Option(None, help="Model folder; default: the bundled 2D model."),
    density_weight: float = typer.Option(
        0.0, min=0.0, callback=finite, help="Weight of seed A's mean-density term (per g/cm^3)."
    ),
    method: str = typer.Option("tfg", help=GUIDANCE_HELP),
    steps: int = typer.Option(100, min=1, help="DDIM steps."),
    eta: float = typer.Option(1.0, min=0.0, max=1.0, help="DDIM eta (1 = strided DDPM as in seed A)."),
    strength: float = typer.Option(
        1.0, min=0.0, callback=finite, help="Guidance strength (TFG rho / DPS zeta)."
    ),
    snap_every: int = typer.Option(
        0, min=0, help="Snap x0 to catalogue materials every k-th step (seed A's 'project'; 0 = off)."
    ),
    realizations: int = typer.Option(10, min=1, help="Fresh microstructures per design in re-evaluation."),
    refine: bool = refine_option(),
    refine_neighbours: int = neighbours_option(),
    seed: int = typer.Option(0, min=0, help="Random seed (noise, re-evaluation)."),
    out: Path = typer.Option(
        Path("runs/design"), callback=writable_folder, help="Output folder (JSON, CSV, PNG)."
    ),
    device: str = device_option(),
) -> None:
    """Propose n microstructures whose bulk modulus meets --target-bulk, backproject and re-evaluate them."""
    from matdiff.evaluation import run_campaign
    from matdiff.evaluation.campaign import refinement_settings
    from matdiff.evaluation.report import proposals_table, write_design_report

    objective = _objective(target_bulk, density_weight)
    refinement = _refinement(refine, refine_neighbours)
    designer, evaluator = _method(model, device, method, steps, eta, strength, snap_every, realizations)
    start = time.perf_counter()
    campaign = run_campaign(designer, [objective], n, evaluator, seed=seed, refine=refinement)
    wall = time.perf_counter() - start
    console.print(proposals_table(campaign.rows[0], f"proposals for K* = {target_bulk:g} GPa"))
    settings = {
        "command": "design",
        "target_bulk_GPa": target_bulk,
        "n": n,
        "density_weight": density_weight,
        "seed": seed,
        "model_path": str(model) if model else "bundled",
        **designer.settings(),
        "evaluation": evaluator.settings(),
        "refine": refinement_settings(refinement),
        "catalogue_hash": evaluator.catalogue.hash,
        "wall_seconds": wall,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_design_report(out, campaign, settings)
    metrics = campaign.table[0]
    hits = f"{metrics['frac@5%'] * n:.0f}/{n} proposals within 5% after re-evaluation"
    if "frac@5%_before" in metrics:
        hits += f" ({metrics['frac@5%_before'] * n:.0f}/{n} before refinement)"
    console.print(
        f"{hits}; wall time {wall:.1f} s; results in {out}/ (design.json, proposals.csv, designs.png)"
    )


def _given_targets(text: str, density_weight: float):
    """Objectives of a comma list of target bulk moduli (GPa), each checked; None for 'auto'."""
    if text == "auto":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"targets must be 'auto' or numbers, got {text!r}") from None
    return [_objective(value, density_weight, "--targets") for value in values]


def _auto_targets(model, target_samples: int) -> list[float]:
    """Seed A's 5 target bulk moduli (GPa) between the K quantiles of fresh samples of the model's kind."""
    import numpy as np

    from matdiff.evaluation import select_targets

    values, K = select_targets(model.dim, model.size, target_samples, device=model.device)
    console.print(
        f"targets from {target_samples} fresh samples: K quantiles 1%={np.quantile(K, 0.01):.2f}, "
        f"99%={np.quantile(K, 0.99):.2f} GPa"
    )
    return [float(v) for v in values]


def evaluate(
    model: Path = typer.Option(None, help="Model folder; default: the bundled 2D model."),
    targets: str = typer.Option(
        "auto", help="'auto' (5 targets between the 1% and 99% K quantiles) or comma-separated GPa values."
    ),
    n: int = typer.Option(200, min=1, help="Samples per target."),
    batch: int = typer.Option(50, min=1, help="Samples per guided batch (one work unit)."),
    target_samples: int = typer.Option(10_000, min=10, help="Fresh samples for 'auto' target selection."),
    density_weight: float = typer.Option(
        0.0, min=0.0, callback=finite, help="Weight of the mean-density term."
    ),
    method: str = typer.Option("tfg", help=GUIDANCE_HELP),
    steps: int = typer.Option(100, min=1),
    eta: float = typer.Option(1.0, min=0.0, max=1.0),
    strength: float = typer.Option(1.0, min=0.0, callback=finite),
    snap_every: int = typer.Option(0, min=0, help="'project' ablation: snap every k-th step."),
    realizations: int = typer.Option(10, min=1),
    refine: bool = refine_option(),
    refine_neighbours: int = neighbours_option(),
    seed: int = typer.Option(0, min=0),
    out: Path = typer.Option(Path("runs/evaluate"), callback=writable_folder),
    device: str = device_option(),
) -> None:
    """Seed A's table 1(a): frac and cov at 1% and 5% for several targets; resumes finished work units."""
    from matdiff.evaluation import ResumeMismatch, run_campaign
    from matdiff.evaluation.campaign import refinement_settings
    from matdiff.evaluation.report import metrics_table, write_campaign_report

    objectives = _given_targets(targets, density_weight)
    refinement = _refinement(refine, refine_neighbours)
    designer, evaluator = _method(
        model, device, method, steps, eta, strength, snap_every, realizations, progress=False
    )
    if objectives is None:
        objectives = [_objective(v, density_weight) for v in _auto_targets(designer.model, target_samples)]
    out.mkdir(parents=True, exist_ok=True)
    try:
        campaign = run_campaign(
            designer,
            objectives,
            n,
            evaluator,
            batch=batch,
            seed=seed,
            out=out,
            log=console.print,
            refine=refinement,
        )
    except ResumeMismatch as err:
        raise typer.BadParameter(str(err), param_hint="--out") from None
    title = f"guided design, {method}, {steps} steps, {n} samples per target (all columns: CSV)"
    console.print(metrics_table(campaign.table, title))
    settings = {
        "command": "evaluate",
        "n": n,
        "batch": batch,
        "seed": seed,
        "density_weight": density_weight,
        "model_path": str(model) if model else "bundled",
        **designer.settings(),
        "evaluation": evaluator.settings(),
        "refine": refinement_settings(refinement),
    }
    write_campaign_report(out, campaign, settings)
    console.print(f"table in {out}/table.csv, plot in {out}/frac_cov.png")

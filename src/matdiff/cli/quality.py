"""`matdiff quality`: how well a prior's unguided samples match fresh fields of its training distribution."""

from __future__ import annotations

from pathlib import Path

import typer

from matdiff.cli.common import check_steps, console, device_option, one_line, writable_folder


def register(app: typer.Typer) -> None:
    """Add the `quality` command to the app."""
    app.command("quality")(quality)


def quality(
    model: Path = typer.Option(None, help="Model folder; default: the bundled 2D model."),
    style: str = typer.Option(None, help="A bundled seed B style prior instead: digits or metamaterial."),
    n: int = typer.Option(1000, min=2, help="Unguided samples (and as many data fields)."),
    steps: int = typer.Option(100, min=1, help="DDIM steps."),
    eta: float = typer.Option(1.0, min=0.0, max=1.0, help="DDIM eta (1 = strided DDPM, as guided design)."),
    batch: int = typer.Option(100, min=1, help="Samples per network batch."),
    seed: int = typer.Option(0, min=0, help="Seed of the samples and of the fresh data."),
    out: Path = typer.Option(
        Path("runs/quality"), callback=writable_folder, help="Output folder: quality.json, quality.png."
    ),
    device: str = device_option(),
) -> None:
    """Samples against data: two-phase-ness, contrast, distance to the catalogue, seed A's table 6, a PNG."""
    from matdiff.diffusion import load_model, resolve_device
    from matdiff.evaluation.quality import format_report, prior_quality, quality_png
    from matdiff.evaluation.report import write_json
    from matdiff.materials import load_catalogue
    from matdiff.styles import STYLES, bundled_model_path

    if style is not None:
        if model is not None or style not in STYLES:
            raise typer.BadParameter(f"give --model or --style (one of {', '.join(STYLES)}), not both")
        model = bundled_model_path(style)
    with one_line("--model"):
        net = load_model(model, device=resolve_device(device))
    check_steps(net, steps)
    catalogue = load_catalogue() if net.channels == 3 else None
    report, samples, data = prior_quality(net, catalogue, n=n, steps=steps, batch=batch, eta=eta, seed=seed)
    for line in format_report(report):
        console.print(line)
    picture = quality_png(out / "quality.png", data, samples)
    model_name = str(model) if model else "bundled"
    payload = {"command": "quality", "model": model_name, **report["samples"], **report}
    write_json(out / "quality.json", payload)
    console.print(f"report in {out / 'quality.json'}, picture in {picture}")

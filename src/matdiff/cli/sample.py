"""`matdiff sample`: unconditional DDIM samples from a diffusion prior, saved as .npy and a PNG grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from matdiff.cli.common import check_steps, device_option, one_line, writable_folder


def register(app: typer.Typer) -> None:
    """Add the `sample` command to the app."""
    app.command("sample")(sample)


def sample(
    model: Path | None = typer.Option(None, help="Checkpoint or run folder; default: the bundled 2D model."),
    n: int = typer.Option(64, min=1, help="Number of samples."),
    steps: int = typer.Option(100, min=1, help="DDIM steps."),
    eta: float = typer.Option(0.0, min=0.0, max=1.0, help="DDIM stochasticity (0 = deterministic)."),
    out: Path = typer.Option(
        ..., callback=writable_folder, help="Output folder for samples.npy, grid.png, sample.json."
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the initial noise."),
    batch: int = typer.Option(64, min=1, help="Samples per network batch."),
    device: str = device_option(),
) -> None:
    """Draw unconditional samples (n, C, *spatial) in [-1, 1] and save them with a PNG grid."""
    import torch

    from matdiff.diffusion import load_model, resolve_device
    from matdiff.figures import field_grid_png

    with one_line("--model"):
        net = load_model(model, device=resolve_device(device))
    check_steps(net, steps)
    generator = torch.Generator("cpu").manual_seed(seed)
    chunks = [
        net.sample(min(batch, n - i), steps=steps, eta=eta, generator=generator).cpu()
        for i in range(0, n, batch)
    ]
    samples = torch.cat(chunks).numpy().astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "samples.npy", samples)
    field_grid_png(out / "grid.png", samples, title=f"{n} unconditional samples, {steps} steps (channel 0)")
    meta = {
        "model": str(model) if model else "bundled",
        "n": n,
        "steps": steps,
        "eta": eta,
        "seed": seed,
        "shape": list(samples.shape),
        "model_step": net.config.get("step"),
        "catalogue_hash": net.config.get("catalogue_hash"),
        "normalization": net.config.get("normalization"),
    }
    (out / "sample.json").write_text(json.dumps(meta, indent=2))
    typer.echo(f"{n} samples {tuple(samples.shape[1:])} -> {out / 'samples.npy'}, {out / 'grid.png'}")

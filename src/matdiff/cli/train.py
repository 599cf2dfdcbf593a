"""`matdiff train`: train (or resume) a diffusion prior on a zarr field store."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the `train` command to the app."""
    app.command("train")(train)


def train(
    data: Path = typer.Option(..., help="Zarr store with a 'fields' array (N, C, *spatial) in [-1, 1]."),
    out: Path = typer.Option(..., help="Run folder; re-running with the same folder resumes."),
    preset: str = typer.Option("seedA-2d", help="seedA-2d, seedA-3d, seedB or tiny."),
    steps: int | None = typer.Option(None, help="Total optimizer steps (default: preset / resumed run)."),
    batch: int | None = typer.Option(None, help="Batch size (default: preset / resumed run)."),
    lr: float | None = typer.Option(None, help="Peak learning rate of the cosine schedule."),
    warmup: int | None = typer.Option(None, help="Linear warm-up steps."),
    ema: float | None = typer.Option(None, help="EMA decay of the weights."),
    ckpt_every: int = typer.Option(1000, help="Checkpoint every K steps (and at the end)."),
    seed: int | None = typer.Option(None, help="Seed of initialization, data order and noise (default 0)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    log_every: int = typer.Option(50, help="Write a train_log.jsonl line every K steps."),
    stop_after: int | None = typer.Option(None, help="Stop this call after K steps (checkpointed)."),
    time_limit: float | None = typer.Option(None, help="Stop this call after S seconds (checkpointed)."),
    width: int | None = typer.Option(
        None, help="Rescale the preset's UNet to this stem width (e.g. seedB 32)."
    ),
) -> None:
    """Train a diffusion prior (AdamW, cosine warm-up, EMA, atomic checkpoints, exact resume)."""
    from matdiff.diffusion import train as run
    from matdiff.diffusion.presets import width_overrides

    try:
        overrides = width_overrides(preset, width) if width is not None else None
    except (KeyError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    result = run(
        data,
        out,
        preset=preset,
        steps=steps,
        batch=batch,
        lr=lr,
        warmup=warmup,
        ema=ema,
        ckpt_every=ckpt_every,
        seed=seed,
        device=device,
        log_every=log_every,
        stop_after=stop_after,
        time_limit=time_limit,
        unet_overrides=overrides,
    )
    tail = result.losses[-min(50, len(result.losses)) :]
    loss = f", mean loss of the last {len(tail)} steps {sum(tail) / len(tail):.4f}" if tail else ""
    typer.echo(f"step {result.step} reached in {result.seconds:.1f} s{loss}; checkpoint {result.checkpoint}")

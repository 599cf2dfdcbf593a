"""`matdiff train`: train (or resume) a diffusion prior on a zarr field store."""

from __future__ import annotations

from pathlib import Path

import typer

from matdiff.cli.common import device_option, finite, one_line, writable_folder


def register(app: typer.Typer) -> None:
    """Add the `train` command to the app."""
    app.command("train")(train)


def train(
    data: Path = typer.Option(..., help="Zarr store with a 'fields' array (N, C, *spatial) in [-1, 1]."),
    out: Path = typer.Option(
        ..., callback=writable_folder, help="Run folder; re-running with the same folder resumes."
    ),
    preset: str | None = typer.Option(
        None,
        help="matdiff-2d, seedA-2d, seedA-3d, seedB or tiny (default: the resumed run's, else seedA-2d).",
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Total optimizer steps (default: preset / resumed run)."
    ),
    batch: int | None = typer.Option(None, min=1, help="Batch size (default: preset / resumed run)."),
    lr: float | None = typer.Option(None, callback=finite, help="Peak learning rate of the cosine schedule."),
    warmup: int | None = typer.Option(None, min=0, help="Linear warm-up steps."),
    ema: float | None = typer.Option(None, callback=finite, help="EMA decay of the weights."),
    ckpt_every: int = typer.Option(1000, min=1, help="Checkpoint every K steps (and at the end)."),
    seed: int | None = typer.Option(
        None, min=0, help="Seed of initialization, data order and noise (default 0)."
    ),
    device: str = device_option(),
    log_every: int = typer.Option(50, min=1, help="Write a train_log.jsonl line every K steps."),
    stop_after: int | None = typer.Option(None, min=1, help="Stop this call after K steps (checkpointed)."),
    time_limit: float | None = typer.Option(
        None, callback=finite, help="Stop this call after S seconds (checkpointed)."
    ),
    width: int | None = typer.Option(
        None, min=1, help="Rescale the preset's UNet to this stem width (e.g. seedB 32)."
    ),
    min_snr_gamma: float | None = typer.Option(
        None,
        min=0.0,
        callback=finite,
        help="Min-SNR-gamma loss weights (e.g. 5; 0 = uniform); default: preset / resumed run.",
    ),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="Random grid symmetries (flips, rotations) of each sample."
    ),
    precision: str | None = typer.Option(None, help="fp32 or bf16 (autocast where the hardware has it)."),
    monitor_every: int = typer.Option(
        0, min=0, help="Every K steps, measure the prior's quality on --monitor-n samples (0: never)."
    ),
    monitor_n: int = typer.Option(32, min=2, help="Samples (and fresh data fields) per quality check."),
    init_from: Path | None = typer.Option(
        None, help="Start a new run from this run's weights (second phase with other arguments)."
    ),
) -> None:
    """Train a diffusion prior (AdamW, cosine warm-up, EMA, atomic checkpoints, exact resume).

    With --monitor-every, the run appends quality reports (two-phase-ness, contrast, distance to the
    catalogue, valid backprojections; see `matdiff quality`) with the training CPU time to
    OUT/monitor_log.jsonl, and keeps the EMA weights of each reported step in OUT/reported/step_N
    (12 MB each for matdiff-2d; `matdiff sample --model` and `export_model` read them).
    """
    from matdiff.diffusion import train as run
    from matdiff.diffusion.presets import width_overrides
    from matdiff.diffusion.train import DEFAULT_PRESET, check_preset

    with one_line("--preset / --width"):
        overrides = width_overrides(check_preset(preset or DEFAULT_PRESET), width) if width else None
    with one_line("--data"):
        monitor = _quality_monitor(data, monitor_n) if monitor_every else None
    checked_run = one_line()(run)  # a missing or incomplete store, a resume with other arguments, a bad value
    result = checked_run(
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
        min_snr_gamma=min_snr_gamma,
        augment=augment,
        precision=precision,
        monitor=monitor,
        monitor_every=monitor_every,
        init_from=init_from,
    )
    tail = result.losses[-min(50, len(result.losses)) :]
    loss = f", mean loss of the last {len(tail)} steps {sum(tail) / len(tail):.4f}" if tail else ""
    typer.echo(f"step {result.step} reached in {result.seconds:.1f} s{loss}; checkpoint {result.checkpoint}")


def _quality_monitor(data: Path, n: int):
    """A quality monitor against n fresh fields like those of the store ``data`` (particle stores only)."""
    from matdiff.diffusion import open_fields
    from matdiff.evaluation.quality import fresh_particle_fields, quality_monitor
    from matdiff.materials import load_catalogue

    _, attrs = open_fields(data)
    if "dim" not in attrs or "catalogue_hash" not in attrs:
        raise typer.BadParameter("--monitor-every needs a particle dataset (`matdiff dataset generate`)")
    catalogue = load_catalogue()
    if catalogue.hash != attrs["catalogue_hash"]:
        raise typer.BadParameter(f"{data} was made with another catalogue than the shipped one")
    fresh = fresh_particle_fields(int(attrs["dim"]), int(attrs["size"]), n, catalogue)
    return quality_monitor(catalogue, fresh)

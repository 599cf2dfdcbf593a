"""Training loop: AdamW + cosine warm-up, grad-norm clipping, EMA, periodic atomic checkpoints, exact resume.

``train(data, out, ...)`` trains a preset on a zarr field store and writes ``out/checkpoints/step_*/``
(see ``checkpoint``), ``out/train_log.jsonl`` (one line per ``log_every`` steps: step, mean loss, lr,
seconds per step). Re-running with the same ``out`` resumes from the latest checkpoint at the same step,
with the same optimizer, LR-scheduler, EMA and RNG states and the same data order (the batch of step k is a
function of (seed, k)), so 2 + 2 steps give bit-identical weights to 4 steps on the same device.

Loss: squared error between the UNet output and the target of the schedule's prediction type
(v = sqrt(a) eps - sqrt(1 - a) x0 for seed A, eps for seed B), timesteps uniform in 0..T-1, per-sample
weights uniform or Min-SNR-gamma (``min_snr_gamma``, see ``schedule.loss_weights``). ``augment`` maps every
training sample by a random symmetry of the grid (``data.symmetry_augment``). ``precision`` "bf16" runs the
forward pass under bfloat16 autocast (weights, optimizer and loss stay float32) on CPUs with AVX-512 BF16 /
AMX and CUDA devices that support it; "fp32" everywhere else. A ``monitor`` callback (e.g. the prior quality
report of ``matdiff.evaluation``) is called on the EMA network every ``monitor_every`` steps; its result is
appended to ``out/monitor_log.jsonl`` with the training CPU seconds so far (process time, summed across
resumes, without the monitor's own time): the quality-against-CPU-time curve. The EMA weights of every
reported step stay in ``out/reported/step_N/`` (a model folder for ``load_model`` / ``export_model``; the
checkpoints keep only the newest ``keep``), so the best report can be shipped.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from tqdm.auto import tqdm

from matdiff.diffusion.checkpoint import (
    RAW_WEIGHTS,
    TRAIN_STATE,
    WEIGHTS,
    CheckpointError,
    build_unet,
    checkpoint_dirs,
    integer_at_least,
    load_state,
    read_config,
    read_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from matdiff.diffusion.data import BatchStream, data_normalization, open_fields
from matdiff.diffusion.presets import PRESETS, get_preset
from matdiff.diffusion.schedule import add_noise, alphas_cumprod, loss_weights, training_target
from matdiff.diffusion.unet import UNet

#: Training arguments that fix the optimization trajectory: a resumed run must use the same values.
TRAJECTORY_ARGS = (
    "preset",
    "batch",
    "lr",
    "warmup",
    "ema",
    "seed",
    "cache_bytes",
    "min_snr_gamma",
    "augment",
    "precision",
)
PRECISIONS = ("fp32", "bf16")
DEFAULT_PRESET = "seedA-2d"

#: ``monitor(ema_unet, config, step) -> dict`` of JSON-able numbers; see ``train``.
Monitor = Callable[[UNet, dict[str, Any], int], dict[str, Any]]


@dataclass
class TrainResult:
    """What one ``train`` call did: the run folder, the step reached, this call's per-step losses."""

    out: Path
    step: int
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_enabled(device: torch.device, precision: str) -> bool:
    """Whether bfloat16 autocast runs on ``device``: never for "fp32", where supported for "bf16"."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16()


def _cpu_has_bf16() -> bool:
    """True when this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """ema <- d ema + (1 - d) model with d = min(decay, (1 + step) / (10 + step)) (diffusers' EMA warm-up)."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p, 1 - d)
        for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)


def _model_config(preset: str, unet: UNet, scheduler: dict, fields: Any, attrs: dict, data: Path) -> dict:
    """The config.json content describing the model and its data (training args and step added later)."""
    spatial = list(fields.shape[2:])
    return {
        "format": "matdiff-diffusion",
        "version": 1,
        "preset": preset,
        "unet": unet.config,
        "scheduler": scheduler,
        "prediction_type": scheduler["prediction_type"],
        "dim": len(spatial),
        "size": spatial[0] if len(set(spatial)) == 1 else None,
        "spatial": spatial,
        "channels": int(fields.shape[1]),
        "catalogue_hash": attrs.get("catalogue_hash"),
        "normalization": data_normalization(attrs),
        "data": {"path": str(data), "n": int(fields.shape[0]), "attrs": attrs},
    }


def _resolve_args(preset: str, given: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Training args: explicit values, else the resumed run's, else the preset's; clashes raise."""
    if previous is None:
        defaults = get_preset(preset)["training"]
        return {k: (defaults.get(k) if v is None else v) for k, v in given.items()}
    args = {k: (previous.get(k) if v is None else v) for k, v in given.items()}
    conflicts = {
        k: (previous[k], args[k]) for k in TRAJECTORY_ARGS if k in previous and previous[k] != args[k]
    }
    if conflicts:
        raise CheckpointError(
            f"cannot resume: arguments differ from the run's checkpoint (was, now): {conflicts}"
        )
    return args


@dataclass
class Checkpoint:
    """A training checkpoint read whole: its directory, config, raw and EMA weights and training state."""

    directory: Path
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    state: dict[str, Any]


def read_checkpoint(directory: Path) -> Checkpoint:
    """Every file of a training checkpoint; CheckpointError when one is missing, truncated or corrupt."""
    config = read_config(directory)
    weights, ema = read_weights(directory / RAW_WEIGHTS), read_weights(directory / WEIGHTS)
    try:
        state = torch.load(directory / TRAIN_STATE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        raise CheckpointError(f"cannot read training state {directory / TRAIN_STATE}: {err}") from err
    return Checkpoint(directory, config, weights, ema, state)


def starting_point(directory: Path) -> Checkpoint:
    """A checkpoint to start a new run from: a training checkpoint read whole, or an exported model (config
    and EMA weights only, e.g. the bundled one), whose EMA weights then also stand for the raw weights."""
    if (directory / RAW_WEIGHTS).exists():
        return read_checkpoint(directory)
    config = read_config(directory)
    ema = read_weights(directory / WEIGHTS)
    if "training" not in config or "step" not in config:
        raise CheckpointError(f"{directory} is not a trained model (its config records no training)")
    state = {"step": config["step"], "cpu_seconds": config.get("cpu_seconds", 0.0)}
    return Checkpoint(directory, config, ema, ema, state)


def _resume_state(run: Path) -> Checkpoint | None:
    """The newest readable checkpoint of a run folder (warning about each newer one that is not, e.g.
    truncated by a full disk), None for a fresh run; CheckpointError when none can be read."""
    found = checkpoint_dirs(run)
    for directory in reversed(found):
        try:
            return read_checkpoint(directory)
        except CheckpointError as err:
            warnings.warn(f"skipping unreadable checkpoint {directory.name}: {err}", stacklevel=3)
    if found:
        raise CheckpointError(f"no readable checkpoint in {run / 'checkpoints'}; delete the run folder")
    return None


def check_preset(name: str) -> str:
    """``name`` if it names a preset, else ValueError listing them."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name


def check_arguments(args: dict[str, Any], schedule: dict[str, Any]) -> None:
    """ValueError naming the first training argument that cannot train: ``args`` (the resolved training
    args) and ``schedule`` (ckpt_every, log_every, keep, stop_after, time_limit, monitor_every)."""
    counts = {"steps": 1, "batch": 1, "warmup": 0, "seed": 0, "cache_bytes": 1, "stop_after": 1}
    counts |= {"ckpt_every": 1, "log_every": 1, "keep": 1, "monitor_every": 0}
    given = {**args, **schedule}
    for name, least in counts.items():
        value = given[name]
        if (value is not None or name != "stop_after") and not integer_at_least(value, least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    checks = {
        "lr": (given["lr"], "a finite number > 0", lambda v: math.isfinite(v) and v > 0),
        "ema": (given["ema"], "a number in [0, 1)", lambda v: 0 <= v < 1),
        "min_snr_gamma": (given["min_snr_gamma"] or 0.0, "finite and >= 0", lambda v: 0 <= v < math.inf),
        "time_limit": (given["time_limit"] or 1.0, "finite and > 0 seconds", lambda v: 0 < v < math.inf),
    }
    for name, (value, wanted, ok) in checks.items():
        if not isinstance(value, int | float) or not ok(value):
            raise ValueError(f"{name} must be {wanted}, got {given[name]!r}")
    if given["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {given['precision']!r}")


def check_resume(previous: dict[str, Any], fields: Any, attrs: dict[str, Any], data: Path, overrides) -> None:
    """CheckpointError unless the data and UNet overrides of a resumed call are the run's: the same store
    (sample count and attrs; its path may move) and no override that differs from the run's UNet."""
    stored = previous.get("data") or {}
    now = {"n": int(fields.shape[0]), "attrs": json.loads(json.dumps(attrs))}
    differs = sorted(key for key in now if key in stored and stored[key] != now[key])
    if differs:
        raise CheckpointError(
            f"cannot resume: {data} is not the store the run was trained on "
            f"(differs in: {', '.join(differs)})"
        )
    changed = {
        k: (previous["unet"].get(k), v) for k, v in (overrides or {}).items() if previous["unet"].get(k) != v
    }
    if changed:
        raise CheckpointError(
            f"cannot resume: UNet overrides differ from the run's UNet (was, now): {changed}"
        )


def cut_logs(out: Path, step: int) -> None:
    """Drop the lines after ``step`` (and any torn line) from the run's JSONL logs: a run killed after its
    last checkpoint logged steps that the resumed run repeats."""
    for path in (out / "train_log.jsonl", out / "monitor_log.jsonl"):
        if not path.exists():
            continue
        kept = [line for line in path.read_text().splitlines(keepends=True) if _logged_step(line) <= step]
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)


def _logged_step(line: str) -> float:
    """The step of a JSONL log line; infinity for a torn or foreign line (dropped)."""
    try:
        return float(json.loads(line)["step"]) if line.endswith("\n") else math.inf
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return math.inf


def train(
    data: str | Path,
    out: str | Path,
    preset: str | None = None,
    steps: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    warmup: int | None = None,
    ema: float | None = None,
    ckpt_every: int = 1000,
    seed: int | None = None,
    device: str | torch.device = "auto",
    unet_overrides: dict[str, Any] | None = None,
    log_every: int = 50,
    keep: int = 2,
    stop_after: int | None = None,
    time_limit: float | None = None,
    cache_bytes: int | None = None,
    min_snr_gamma: float | None = None,
    augment: bool | None = None,
    precision: str | None = None,
    monitor: Monitor | None = None,
    monitor_every: int = 0,
    init_from: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) a diffusion prior on the zarr store ``data``, writing checkpoints under ``out``.

    Unset arguments come from the resumed checkpoint, else from the preset (None: the resumed run's, else
    seedA-2d; "training" defaults; seed 0, uniform loss weights, no augmentation, fp32). ``stop_after``
    (steps) and ``time_limit`` (seconds) end this call early with a checkpoint; calling again continues. The
    UNet's channel count follows the data. ``monitor`` is called every ``monitor_every`` steps (0: never).
    ``init_from`` (a checkpoint, run or exported model folder) starts a new run from its raw and EMA
    weights, preset and UNet, with a fresh optimizer and LR schedule (a second training phase with other
    arguments, e.g. other loss weights); its step and CPU seconds are recorded; the CPU seconds carry over.
    All arguments are checked before any work (ValueError); a resume whose arguments, data or UNet overrides
    differ from the run's raises CheckpointError. A newest checkpoint that cannot be read (truncated) is
    skipped with a warning; the run's logs are cut back to the step resumed from. Returns a TrainResult.
    """
    out, data = Path(out), Path(data)
    started = time.perf_counter()
    resumed = _resume_state(out)
    previous = resumed.config if resumed else None
    start = starting_point(resolve_checkpoint(init_from)) if init_from is not None and not resumed else None
    if start is not None:
        preset = preset or start.config["preset"]
        if preset != start.config["preset"] or unet_overrides:
            raise ValueError("a run started from another run keeps that run's preset and UNet")
    preset = check_preset(preset or (previous["preset"] if previous else DEFAULT_PRESET))
    given = dict(
        preset=preset,
        steps=steps,
        batch=batch,
        lr=lr,
        warmup=warmup,
        ema=ema,
        seed=seed,
        cache_bytes=cache_bytes,
        min_snr_gamma=min_snr_gamma,
        augment=augment,
        precision=precision,
    )
    args = _resolve_args(preset, given, previous["training"] if previous else None)
    args["seed"] = 0 if args["seed"] is None else args["seed"]
    args["cache_bytes"] = args["cache_bytes"] or 2**30
    args["augment"] = bool(args["augment"])
    args["precision"] = args["precision"] or "fp32"
    schedule = {"ckpt_every": ckpt_every, "log_every": log_every, "keep": keep}
    schedule |= {"stop_after": stop_after, "time_limit": time_limit, "monitor_every": monitor_every}
    check_arguments(args, schedule)
    dev = resolve_device(device)
    amp = autocast_enabled(dev, args["precision"])

    fields, attrs = open_fields(data)
    if previous:
        check_resume(previous, fields, attrs, data, unet_overrides)
    stream = BatchStream(
        fields, args["batch"], args["seed"], cache_bytes=args["cache_bytes"], augment=args["augment"]
    )
    torch.manual_seed(args["seed"])
    if previous:
        unet = build_unet(previous)
        config = previous
    elif start is not None:
        unet = build_unet(start.config)
        config = _model_config(preset, unet, start.config["scheduler"], fields, attrs, data)
        config["init_from"] = {
            "path": str(start.directory),
            "step": int(start.state["step"]),
            "cpu_seconds": float(start.state.get("cpu_seconds", 0.0)),
            "training": start.config["training"],
        }
    else:
        spec = get_preset(preset)
        unet_kwargs = {
            **spec["unet"],
            **(unet_overrides or {}),
            "in_channels": int(fields.shape[1]),
            "out_channels": int(fields.shape[1]),
        }
        if fields.ndim - 2 != unet_kwargs["spatial_dims"]:
            raise ValueError(
                f"preset {preset!r} is {unet_kwargs['spatial_dims']}D but the data {data} is "
                f"{fields.ndim - 2}D (fields {tuple(fields.shape)})"
            )
        unet = UNet(**unet_kwargs)
        config = _model_config(preset, unet, spec["scheduler"], fields, attrs, data)
    if list(fields.shape[1:]) != [config["channels"], *config["spatial"]]:
        raise CheckpointError(
            f"data {tuple(fields.shape[1:])} does not match the run's "
            f"{[config['channels'], *config['spatial']]}"
        )
    if attrs.get("catalogue_hash") != config.get("catalogue_hash"):
        raise CheckpointError(f"data {data} was normalized with another catalogue than the run's")
    unet.to(dev).train()
    ema_unet = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args["lr"])
    lr_schedule = get_cosine_schedule_with_warmup(optimizer, args["warmup"], args["steps"])
    generator = torch.Generator(dev).manual_seed(args["seed"])
    step, cpu_seconds = 0, 0.0
    if start is not None:
        load_state(unet, start.weights, start.directory / RAW_WEIGHTS)
        load_state(ema_unet, start.ema, start.directory / WEIGHTS)
        cpu_seconds = config["init_from"]["cpu_seconds"]
    if resumed is not None:
        step, cpu_seconds = _load_train_state(resumed, unet, ema_unet, optimizer, lr_schedule, generator)
        cut_logs(out, step)

    abar = alphas_cumprod(config["scheduler"]).to(dev)
    prediction, T = config["prediction_type"], len(abar)
    ema_offset = config.get("init_from", {}).get("step", 0)  # the EMA's warm-up continues, not restarts
    end = args["steps"] if stop_after is None else min(args["steps"], step + stop_after)
    result = TrainResult(out=out, step=step, checkpoint=resumed.directory if resumed else None)
    log, window = out / "train_log.jsonl", []
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=args["steps"], initial=step, desc=f"train {preset}", disable=not progress)
    tick, cpu_tick = time.perf_counter(), time.process_time()
    while step < end:
        x0 = torch.from_numpy(stream.batch(step)).to(dev, non_blocking=True)
        t = torch.randint(0, T, (x0.shape[0],), generator=generator, device=dev)
        noise = torch.randn(x0.shape, generator=generator, device=dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            output = unet(add_noise(x0, noise, t, abar), t)
        squared = (output.float() - training_target(x0, noise, t, abar, prediction)) ** 2
        weights = loss_weights(abar, t, prediction, args["min_snr_gamma"])
        loss = (squared.flatten(1).mean(1) * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        ema_update(ema_unet, unet, args["ema"], ema_offset + step)
        step += 1
        result.losses.append(loss.item())
        window.append(result.losses[-1])
        bar.update(1)
        bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
        if step % log_every == 0 or step == end:
            now = time.perf_counter()
            _append_log(log, step, window, lr_schedule.get_last_lr()[0], (now - tick) / len(window))
            window, tick = [], now
        out_of_time = time_limit is not None and time.perf_counter() - started > time_limit
        if step % ckpt_every == 0 or step == end or out_of_time:
            cpu_seconds, cpu_tick = cpu_seconds + time.process_time() - cpu_tick, time.process_time()
            config = {**config, "training": args, "step": step, "cpu_seconds": cpu_seconds}
            state = (optimizer, lr_schedule, generator, cpu_seconds)
            result.checkpoint = _save(out, config, ema_unet, unet, state, step, keep)
        if monitor is not None and monitor_every > 0 and step % monitor_every == 0:
            cpu_seconds, cpu_tick = cpu_seconds + time.process_time() - cpu_tick, time.process_time()
            reported = {**config, "training": args, "step": step, "cpu_seconds": cpu_seconds}
            report = monitor(ema_unet, reported, step)
            save_checkpoint(out / "reported" / f"step_{step:08d}", reported, ema_unet)
            _append_jsonl(out / "monitor_log.jsonl", {"step": step, "cpu_seconds": cpu_seconds, **report})
            cpu_tick = time.process_time()
        if out_of_time:
            break
    bar.close()
    result.step, result.seconds = step, time.perf_counter() - started
    return result


def _append_log(path: Path, step: int, losses: list[float], lr: float, sec_per_step: float) -> None:
    """Append one JSON line (step, mean loss over the window, lr, seconds per step) to the run log."""
    record = {"step": step, "loss": sum(losses) / len(losses), "lr": lr, "sec_per_step": sec_per_step}
    _append_jsonl(path, record)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` with the wall-clock time as one JSON line to ``path``."""
    with open(path, "a") as handle:
        handle.write(json.dumps({**record, "time": time.time()}) + "\n")


def _save(out: Path, config: dict, ema_unet: UNet, unet: UNet, state: tuple, step: int, keep: int) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep`` checkpoints.

    ``state``: (optimizer, LR scheduler, generator, training CPU seconds so far).
    """
    optimizer, lr_schedule, generator, cpu_seconds = state
    state = {
        "step": step,
        "cpu_seconds": cpu_seconds,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_schedule.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    path = save_checkpoint(out / "checkpoints" / f"step_{step:08d}", config, ema_unet, unet, state)
    stale = checkpoint_dirs(out)[:-keep] + list((out / "checkpoints").glob("*.tmp"))  # interrupted saves
    for old in stale:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _load_train_state(
    checkpoint: Checkpoint, unet: UNet, ema_unet: UNet, optimizer, lr_schedule, generator
) -> tuple[int, float]:
    """Restore weights, EMA, optimizer, LR-schedule and RNG states from a checkpoint read whole.

    Returns (step, training CPU seconds so far; 0 for checkpoints that did not record them).
    """
    load_state(unet, checkpoint.weights, checkpoint.directory / RAW_WEIGHTS)
    load_state(ema_unet, checkpoint.ema, checkpoint.directory / WEIGHTS)
    state = checkpoint.state
    try:
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    except (RuntimeError, KeyError, ValueError) as err:
        path = checkpoint.directory / TRAIN_STATE
        raise CheckpointError(f"cannot restore training state from {path}: {err}") from err
    return int(state["step"]), float(state.get("cpu_seconds", 0.0))

"""Checkpoints: a directory with config.json + model.safetensors (+ training state), written atomically.

Layout of a checkpoint directory (what ``load_model`` reads; the bundled default has only the first two):

- ``config.json``: preset, "unet" (UNet kwargs), "scheduler" (diffusers config), "prediction_type", "dim",
  "size", "spatial", "channels", "catalogue_hash", "normalization" ({"channels", "lo", "hi"} or null),
  "data" (store path, N, attrs), "training" (args), "step";
- ``model.safetensors``: EMA weights of the UNet (the weights used for sampling);
- ``weights.safetensors``: raw (non-EMA) UNet weights, training checkpoints only;
- ``train_state.pt``: optimizer, LR scheduler and RNG states, training checkpoints only.

A run directory holds ``checkpoints/step_XXXXXXXX/``; each is written to a ``.tmp`` sibling and renamed into
place, so an interruption leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from matdiff.diffusion.schedule import make_scheduler
from matdiff.diffusion.unet import UNet

REQUIRED_KEYS = ("unet", "scheduler", "prediction_type", "dim", "channels")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
CONFIG, WEIGHTS = "config.json", "model.safetensors"
RAW_WEIGHTS, TRAIN_STATE = "weights.safetensors", "train_state.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match its config or the given catalogue."""


def _state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of a module's state dict (safetensors needs them)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    directory: str | Path,
    config: dict[str, Any],
    ema: torch.nn.Module,
    model: torch.nn.Module | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write config + EMA weights (+ raw weights, training state) to ``directory`` atomically; returns it."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    save_file(_state_dict(ema), str(tmp / WEIGHTS))
    if model is not None:
        save_file(_state_dict(model), str(tmp / RAW_WEIGHTS))
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    for f in tmp.iterdir():
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
    if directory.exists():  # re-saving the same step: drop the old copy first
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint directory; CheckpointError when missing, corrupt or lacking keys."""
    path = Path(directory) / CONFIG
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CheckpointError(f"no {CONFIG} in checkpoint {directory}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"corrupt {path}: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{path} lacks required keys {missing}")
    return config


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The safetensors state dict at ``path``; CheckpointError when it is missing, truncated or corrupt."""
    try:
        return load_file(str(path))
    except FileNotFoundError as err:
        raise CheckpointError(f"missing weights file {path}") from err
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for truncated files
        raise CheckpointError(f"cannot read weights {path} (truncated or corrupt?): {err}") from err


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load the state dict read from ``path`` into ``module`` strictly; CheckpointError on a mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights {path} do not match the UNet config: {err}") from err


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a safetensors state dict into ``module`` strictly; CheckpointError on a bad file or mismatch."""
    load_state(module, read_weights(path), path)


def build_unet(config: dict[str, Any]) -> UNet:
    """The UNet described by config["unet"], checked against the rest of the config (``check_config``);
    CheckpointError when the config cannot build one or does not describe it."""
    try:
        unet = UNet(**config["unet"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"invalid UNet config {config['unet']}: {err}") from err
    problems = config_problems(config, unet)
    if problems:
        raise CheckpointError(f"invalid model config: {'; '.join(problems)}")
    return unet


def integer_at_least(value: Any, least: int = 1) -> bool:
    """Whether value is an int (bool excluded) >= least."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def config_problems(config: dict[str, Any], unet: UNet) -> list[str]:
    """What in a model config would fail only at sampling time: dim, channels, size, prediction type,
    schedule, normalization, and their agreement with the UNet built from it ([] when none)."""
    dim, channels, size = config["dim"], config["channels"], config.get("size")
    problems = []
    if dim not in (2, 3) or isinstance(dim, bool):
        problems.append(f"dim must be 2 or 3, got {dim!r}")
    if not integer_at_least(channels):
        problems.append(f"channels must be a positive integer, got {channels!r}")
    unet_channels = (unet.config["in_channels"], unet.config["out_channels"] or unet.config["in_channels"])
    if unet.config["spatial_dims"] != dim or unet_channels != (channels, channels):
        problems.append(f"dim {dim!r} / channels {channels!r} differ from the UNet's {unet.config}")
    factor = unet.patch_size * 2 ** sum(unet.pools)
    if size is not None and not (integer_at_least(size) and size % factor == 0):
        problems.append(
            f"size must be a positive multiple of {factor} (the UNet's down-sampling), got {size!r}"
        )
    if config["prediction_type"] not in PREDICTION_TYPES:
        problems.append(
            f"prediction_type must be one of {PREDICTION_TYPES}, got {config['prediction_type']!r}"
        )
    problems += _schedule_problems(config)
    normalization = config.get("normalization")
    if normalization is not None and not _normalization_ok(normalization, channels):
        problems.append(
            f"normalization must hold lo < hi, one finite pair per channel, got {normalization!r}"
        )
    return problems


def _schedule_problems(config: dict[str, Any]) -> list[str]:
    """Problems of config["scheduler"]: a diffusers DDIM schedule of the config's prediction type."""
    scheduler = config["scheduler"]
    try:
        built = make_scheduler(scheduler) if isinstance(scheduler, dict) else None
    except Exception as err:  # noqa: BLE001 - diffusers raises many types for a bad schedule
        return [f"scheduler config cannot build a schedule: {err}"]
    if built is None:
        return [f"scheduler must be a dict, got {scheduler!r}"]
    if built.config.prediction_type != config["prediction_type"]:
        return [f"scheduler prediction_type {built.config.prediction_type!r} differs from the model's"]
    return []


def _normalization_ok(normalization: Any, channels: Any) -> bool:
    """Whether a normalization dict maps each of ``channels`` channels through a finite lo < hi."""
    if not isinstance(normalization, dict):
        return False
    try:
        lo = np.asarray(normalization["lo"], dtype=np.float64)
        hi = np.asarray(normalization["hi"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return False
    return lo.shape == hi.shape == (channels,) and bool(np.isfinite([lo, hi]).all() and (hi > lo).all())


def check_catalogue(config: dict[str, Any], catalogue: Any | None) -> None:
    """CheckpointError when ``catalogue`` is given and its hash is not the model's training one."""
    trained = config.get("catalogue_hash")
    if catalogue is not None and trained is not None and catalogue.hash != trained:
        raise CheckpointError(
            f"model was trained on catalogue {trained[:12]}..., the given catalogue is "
            f"{catalogue.hash[:12]}...; "
            "its normalization would not match"
        )


def checkpoint_dirs(run: str | Path) -> list[Path]:
    """Complete checkpoint directories of a run, oldest first (``.tmp`` leftovers are ignored)."""
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and "." not in p.name
    )


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory at ``path``, or the latest checkpoint when ``path`` is a run directory."""
    path = Path(path)
    if (path / CONFIG).exists():
        return path
    found = checkpoint_dirs(path)
    if not found:
        raise CheckpointError(
            f"{path} is neither a checkpoint directory (no {CONFIG}) nor a run with checkpoints"
        )
    return found[-1]


def export_model(path: str | Path, dest: str | Path) -> Path:
    """Copy a checkpoint's (or a run's latest) config.json and EMA model.safetensors to ``dest``; no training
    state. Returns ``dest``, a folder that ``load_model`` reads."""
    source = resolve_checkpoint(path)
    read_config(source)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS):
        tmp = dest / (name + ".tmp")
        shutil.copyfile(source / name, tmp)
        os.replace(tmp, dest / name)
    return dest

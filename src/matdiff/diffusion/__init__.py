"""Diffusion prior: seed A's UNet (2D/3D), diffusers noise schedules, training, checkpoints, sampling.

Separation follows diffusers: ``unet`` knows nothing of sampling, ``schedule`` nothing of the network, and a
checkpoint folder (config.json + model.safetensors) carries everything needed to rebuild the model.
Timesteps are integers 0..999; fields are normalized to [-1, 1], shaped (B, C, *spatial).
"""

from matdiff.diffusion.checkpoint import CheckpointError, export_model, save_checkpoint
from matdiff.diffusion.data import BatchStream, open_fields
from matdiff.diffusion.model import DiffusionModel, load_model, untrained_model
from matdiff.diffusion.presets import PRESETS, get_preset
from matdiff.diffusion.schedule import ddim_update, make_scheduler
from matdiff.diffusion.train import TrainResult, resolve_device, train
from matdiff.diffusion.unet import UNet

__all__ = [
    "PRESETS",
    "BatchStream",
    "CheckpointError",
    "DiffusionModel",
    "TrainResult",
    "UNet",
    "ddim_update",
    "export_model",
    "get_preset",
    "load_model",
    "make_scheduler",
    "open_fields",
    "resolve_device",
    "save_checkpoint",
    "train",
    "untrained_model",
]

"""A trained diffusion prior: UNet (EMA weights) + its schedule config, loadable from a checkpoint folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from matdiff.diffusion.checkpoint import (
    WEIGHTS,
    CheckpointError,
    build_unet,
    check_catalogue,
    load_weights,
    read_config,
    resolve_checkpoint,
)
from matdiff.diffusion.presets import get_preset
from matdiff.diffusion.sampling import PlainRule, ddim_loop, ddim_steps
from matdiff.diffusion.schedule import alphas_cumprod, make_scheduler, x0_eps_from_output
from matdiff.diffusion.unet import UNet

DEFAULT_MODEL = "default_model"


class DiffusionModel:
    """A diffusion prior over normalized fields (C, *spatial) in [-1, 1] (conditional if its UNet is).

    Attributes: ``config`` (dict, the checkpoint's config.json: "unet", "scheduler", "prediction_type",
    "dim", "size", "channels", "catalogue_hash", "normalization", "training", "step"), ``unet`` (EMA weights,
    eval mode, no parameter gradients), ``device``, ``dim``, ``size``, ``channels``, ``sample_shape``.

    Timesteps are integers 0..T-1 (T = 1000); t = T-1 is pure noise under zero terminal SNR. ``predict`` is
    differentiable w.r.t. x_t (the guidance and noise-space optimization code rely on it).
    """

    def __init__(self, unet: UNet, config: dict[str, Any], device: str | torch.device | None = None) -> None:
        self.config = config
        self.unet = unet.eval().requires_grad_(False)
        self.prediction_type = config["prediction_type"]
        self._abar = alphas_cumprod(config["scheduler"])
        self.device = torch.device("cpu")
        self.to(device or next(unet.parameters()).device)

    @property
    def dim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return int(self.config["dim"])

    @property
    def size(self) -> int | None:
        """Edge length of the training fields in elements (None if unknown)."""
        return self.config.get("size")

    @property
    def channels(self) -> int:
        """Data channels C (3 for (E, nu, rho), 1 for seed B images)."""
        return int(self.config["channels"])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """(C, *spatial) of one sample at the training size."""
        if self.size is None:
            raise ValueError("the model config records no training size; pass shape= explicitly")
        return (self.channels,) + (int(self.size),) * self.dim

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """(T,) float32 alphas_cumprod of the training schedule, on ``device``."""
        return self._abar

    def to(self, device: str | torch.device) -> DiffusionModel:
        """Move the network and schedule tensors to ``device`` in place; returns self.

        On the CPU a 2D network keeps its convolution weights channels-last (NHWC): oneDNN's NHWC kernels
        made the seed B priors' forward + input gradient ~10-25% faster and seed A's UNet ~1.6x, at the
        same results to ~1e-6 (``benchmarks/network.py``, docs/benchmarks.md).
        """
        self.device = torch.device(device)
        nhwc = self.device.type == "cpu" and int(self.config.get("dim", 0)) == 2
        self.unet.to(self.device, memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        self._abar = self._abar.to(self.device)
        return self

    def scheduler(self, kind: str = "ddim"):
        """A fresh diffusers scheduler ("ddim" or "ddpm") configured like the training schedule."""
        return make_scheduler(self.config["scheduler"], kind)

    def _timesteps(self, t: torch.Tensor | int, batch: int) -> torch.Tensor:
        """Integer timesteps (B,) on ``device`` from a scalar or (B,) tensor."""
        t = torch.as_tensor(t, device=self.device).long().reshape(-1)
        return t.expand(batch) if t.numel() == 1 else t

    def predict(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | int,
        clip: bool = False,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat), each (B, C, *spatial), for noisy fields x_t (B, C, *spatial) at timesteps t.

        ``t``: int or (B,) integers in 0..T-1. Differentiable w.r.t. x_t. ``clip`` clamps x0_hat to [-1, 1]
        (eps_hat stays the network's, as in diffusers' DDIM step). ``condition``: (B, K) labels of a
        conditional model, None for its unconditional (null) prediction.
        """
        t = self._timesteps(t, x_t.shape[0])
        output = self.unet(x_t, t) if condition is None else self.unet(x_t, t, condition)
        x0, eps = x0_eps_from_output(output, x_t, t, self._abar, self.prediction_type)
        return (x0.clamp(-1, 1) if clip else x0), eps

    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int = 100,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        progress: bool = True,
        shape: tuple[int, ...] | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n unconditional samples (n, C, *spatial) in [-1, 1] by DDIM with ``steps`` steps and ``eta``.

        Runs ``sampling.ddim_loop`` with the plain rule (x0 clipped when the schedule says clip_sample). Our
        own update rather than ``DDIMScheduler.step``: diffusers takes sqrt(1 - a_prev - sigma^2) unclamped,
        which is NaN at the zero-SNR first step when eta = 1. The initial noise and the DDIM noise (eta > 0)
        come from ``generator`` (on any device); eta = 0 with the same generator seed is deterministic.
        ``shape`` (C, *spatial) overrides the training shape; ``condition`` (n, K) conditions the samples.
        """
        shape = tuple(shape or self.sample_shape)
        clip = bool(self.config["scheduler"].get("clip_sample", False))
        gen_device = generator.device if generator is not None else self.device
        x = torch.randn((n, *shape), generator=generator, device=gen_device).to(self.device)
        rule = PlainRule(clip=clip, condition=condition)
        x = ddim_loop(self, x, ddim_steps(self.scheduler(), steps), eta, rule, generator, progress=progress)
        return x.clamp(-1, 1)


def untrained_model(
    preset: str, size: int, channels: int = 3, catalogue_hash: str | None = None, seed: int = 0
) -> DiffusionModel:
    """A 2D DiffusionModel of ``preset`` with seeded random weights for (channels, size, size) fields: what
    tests and timings need (a network's cost does not depend on its weights)."""
    spec = get_preset(preset)
    torch.manual_seed(seed)
    unet = UNet(**{**spec["unet"], "in_channels": channels, "out_channels": channels})
    config = {
        "preset": preset,
        "unet": unet.config,
        "scheduler": spec["scheduler"],
        "prediction_type": spec["scheduler"]["prediction_type"],
        "dim": 2,
        "size": size,
        "channels": channels,
        "catalogue_hash": catalogue_hash,
    }
    return DiffusionModel(unet, config)


def load_model(
    path: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    catalogue: Any | None = None,
) -> DiffusionModel:
    """Load a DiffusionModel (EMA weights) from a checkpoint or run folder; None loads the bundled default.

    Raises CheckpointError for a missing, truncated or mismatched checkpoint, or when ``catalogue`` (with a
    ``.hash``) differs from the catalogue the model was trained with.
    """
    if path is None:
        path = Path(str(resources.files("matdiff.diffusion") / DEFAULT_MODEL))
        if not (path / "config.json").exists():
            raise CheckpointError(f"the bundled default model is missing from {path}")
    directory = resolve_checkpoint(path)
    config = read_config(directory)
    check_catalogue(config, catalogue)
    unet = build_unet(config)
    load_weights(unet, directory / WEIGHTS)
    return DiffusionModel(unet, config, device=device)

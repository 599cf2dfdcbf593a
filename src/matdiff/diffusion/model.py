"""A trained diffusion prior: UNet (EMA weights) + its schedule config, loadable from a checkpoint folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from matdiff.diffusion.checkpoint import (
    WEIGHTS,
    CheckpointError,
    build_unet,
    check_catalogue,
    load_weights,
    read_config,
    resolve_checkpoint,
)
from matdiff.diffusion.schedule import alphas_cumprod, ddim_update, make_scheduler, x0_eps_from_output
from matdiff.diffusion.unet import UNet

DEFAULT_MODEL = "default_model"


class DiffusionModel:
    """An unconditional diffusion prior over normalized fields (C, *spatial) in [-1, 1].

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
        """Move the network and schedule tensors to ``device`` in place; returns self."""
        self.device = torch.device(device)
        self.unet.to(self.device)
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
        self, x_t: torch.Tensor, t: torch.Tensor | int, clip: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0_hat, eps_hat), each (B, C, *spatial), for noisy fields x_t (B, C, *spatial) at timesteps t.

        ``t``: int or (B,) integers in 0..T-1. Differentiable w.r.t. x_t. ``clip`` clamps x0_hat to [-1, 1]
        (eps_hat stays the network's, as in diffusers' DDIM step).
        """
        t = self._timesteps(t, x_t.shape[0])
        output = self.unet(x_t, t)
        x0, eps = x0_eps_from_output(output, x_t, t, self._abar, self.prediction_type)
        return (x0.clamp(-1, 1) if clip else x0), eps

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor | int, clip: bool = False) -> torch.Tensor:
        """x0_hat (B, C, *spatial) for x_t at timesteps t; see ``predict``."""
        return self.predict(x_t, t, clip)[0]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int = 100,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        progress: bool = True,
        shape: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """n unconditional samples (n, C, *spatial) in [-1, 1] by DDIM with ``steps`` steps and ``eta``.

        Timesteps come from the configured diffusers DDIM scheduler (trailing spacing: 999, ..., for seed A);
        each step is ``ddim_update`` on ``predict`` (x0 clipped when the schedule says clip_sample). Our own
        update rather than ``DDIMScheduler.step``: diffusers takes sqrt(1 - a_prev - sigma^2) unclamped, which
        is NaN at the zero-SNR first step when eta = 1. The initial noise and the DDIM noise (eta > 0) come
        from ``generator`` (on any device); eta = 0 with the same generator seed is deterministic. ``shape``
        (C, *spatial) overrides the training shape.
        """
        shape = tuple(shape or self.sample_shape)
        scheduler = self.scheduler("ddim")
        scheduler.set_timesteps(steps)
        timesteps = [int(t) for t in scheduler.timesteps]
        abar = self._abar.double()
        clip = bool(self.config["scheduler"].get("clip_sample", False))
        gen_device = generator.device if generator is not None else self.device
        x = torch.randn((n, *shape), generator=generator, device=gen_device).to(self.device)
        for i, t in enumerate(tqdm(timesteps, desc="sampling", disable=not progress)):
            x0, eps = self.predict(x, t, clip=clip)
            a_prev = abar[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.ones((), dtype=abar.dtype)
            noise = None
            if eta > 0:
                noise = torch.randn(x.shape, generator=generator, device=gen_device).to(self.device)
            x = ddim_update(x0, eps, abar[t], a_prev, eta, noise)
        return x.clamp(-1, 1)


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
